#!/bin/sh
# Compiles the first C++ block of a Markdown file (README.md, docs/routing.md), so the
# programs the documentation shows cannot rot.
# Usage: readme_snippet.sh README.md COMPILER [ARGS...]
set -eu
readme=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```cpp/{on=1; next} /^```/{if(on) exit} on' "$readme" > "$tmp/readme.cpp"
[ -s "$tmp/readme.cpp" ] || { echo "no C++ block in $readme"; exit 1; }
"$@" -c "$tmp/readme.cpp" -o "$tmp/readme.o"
