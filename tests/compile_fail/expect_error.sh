#!/bin/sh
# Usage: expect_error.sh PATTERN COMPILER [ARGS...]
# Passes only if the compiler FAILS and its diagnostics match PATTERN (grep -E), so a
# case that fails for an unrelated reason (a typo) does not pass. A PATTERN of several
# lines passes only if every line matches somewhere in the diagnostics (a sentence, and
# the name of what is at fault, are often on different lines).
#
# It also passes only if the compiler reports exactly ONE error: the sentence is the whole
# diagnosis, and no cascade follows it (issue 12). Notes under it are welcome.
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
if [ -n "$missing" ]; then
  echo "compilation failed, but the diagnostics do not match: $missing"
  printf '%s\n' "$out" | head -40
  exit 1
fi
errors=$(printf '%s\n' "$diagnostics" | grep -Ec '^[^ :]+:[0-9]+:[0-9]+: (fatal )?error: ')
if [ "$errors" -ne 1 ]; then
  echo "expected exactly one error (the sentence), but the compiler reported $errors:"
  printf '%s\n' "$diagnostics" | grep -E '^[^ :]+:[0-9]+:[0-9]+: (fatal )?error: ' | cut -c1-300
  exit 1
fi
exit 0
