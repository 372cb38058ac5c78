#!/bin/sh
# Compiles every complete program in a Markdown file: each ```cpp block whose first line
# is an #include, as a translation unit of its own (fragments in between are not
# programs and are skipped).
# Usage: doc_programs.sh FILE.md COMPILER [ARGS...]
set -eu
doc=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '
  /^```cpp/ { on = 1; first = 1; next }
  /^```/ { if (on && keep) close(file); on = 0; keep = 0; next }
  on && first { first = 0; if ($0 ~ /^#include/) { n++; keep = 1; file = dir "/program" n ".cpp" } }
  on && keep { print > file }
' "$doc"
set -- "$@"
found=0
for program in "$tmp"/program*.cpp; do
  [ -e "$program" ] || continue
  found=$((found + 1))
  "$@" -c "$program" -o "$program.o" || { echo "in $doc: program $found does not compile"; exit 1; }
done
[ "$found" -gt 0 ] || { echo "no complete C++ program in $doc"; exit 1; }
echo "$doc: $found programs compile"
