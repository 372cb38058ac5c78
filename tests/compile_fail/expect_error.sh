#!/bin/sh
# Usage: expect_error.sh PATTERN COMPILER [ARGS...]
# Passes only if the compiler FAILS and its diagnostics match PATTERN (grep -E), so a
# case that fails for an unrelated reason (a typo) does not pass.
pattern=$1
shift
out=$("$@" 2>&1)
status=$?
if [ $status -eq 0 ]; then
  echo "expected a compile error, but compilation succeeded: $*"
  exit 1
fi
if printf '%s\n' "$out" | grep -Eq -- "$pattern"; then
  exit 0
fi
echo "compilation failed, but the diagnostics do not match: $pattern"
printf '%s\n' "$out" | head -40
exit 1
