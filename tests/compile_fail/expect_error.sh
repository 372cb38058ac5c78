#!/bin/sh
# Usage: expect_error.sh PATTERN COMPILER [ARGS...]
# Passes only if the compiler FAILS and its diagnostics match PATTERN (grep -E), so a
# case that fails for an unrelated reason (a typo) does not pass. A PATTERN of several
# lines passes only if every line matches somewhere in the diagnostics (a sentence, and
# the name of what is at fault, are often on different lines).
#
# Only the compiler's own lines count ("file:line:col: error: ...", "file: In
# instantiation of ..."), not the source lines it quotes under them: a quoted line of
# tether's source mentions the concept or the member whatever went wrong.
pattern=$1
shift
out=$("$@" 2>&1)
status=$?
if [ $status -eq 0 ]; then
  echo "expected a compile error, but compilation succeeded: $*"
  exit 1
fi
diagnostics=$(printf '%s\n' "$out" | grep -E '^[^ :]+:([0-9]+:[0-9]+:)? ')
missing=$(printf '%s\n' "$pattern" | while IFS= read -r p; do
  [ -z "$p" ] && continue
  printf '%s\n' "$diagnostics" | grep -Eq -- "$p" || printf '%s\n' "$p"
done)
if [ -z "$missing" ]; then
  exit 0
fi
echo "compilation failed, but the diagnostics do not match: $missing"
printf '%s\n' "$out" | head -40
exit 1
