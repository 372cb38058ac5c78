#!/bin/sh
# Runs a browser test with TETHER_CHROMIUM set to the Chromium binary, or reports SKIP
# (exit 77, Meson's code for it) with the reason when no Chromium is installed, so that a
# machine without a browser still runs every other suite. A Chromium that is installed
# but cannot start is a failure of the test, not a skip.
# Usage: with_chromium.sh TEST-PROGRAM [ARGS...]
for candidate in "${TETHER_CHROMIUM:-}" /usr/lib/chromium/chromium chromium chromium-browser; do
  [ -n "$candidate" ] || continue
  if path=$(command -v "$candidate" 2>/dev/null) && [ -x "$path" ]; then
    TETHER_CHROMIUM=$path
    export TETHER_CHROMIUM
    exec "$@"
  fi
done
echo "SKIP: no Chromium found (TETHER_CHROMIUM, /usr/lib/chromium/chromium, chromium, chromium-browser);" \
  "install Debian's 'chromium' (scripts/install-deps does) to run the browser tests"
exit 77
