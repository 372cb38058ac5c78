#!/bin/sh
# Builds tests/consumer against this checkout as a subproject (the CLI11 way: a symlink
# in subprojects/ and --force-fallback-for, so an installed tether cannot stand in) and
# runs it. Usage: run.sh SOURCE_ROOT SCRATCH_DIR
set -eu
src=$(cd "$1" && pwd)
work=$2
rm -rf "$work"
mkdir -p "$work/subprojects"
cp "$src/tests/consumer/meson.build" "$src/tests/consumer/main.cpp" "$work/"
ln -s "$src" "$work/subprojects/tether"
cd "$work"
meson setup build --force-fallback-for=tether >setup.log 2>&1 || { cat setup.log; exit 1; }
grep -q "Dependency tether from subproject subprojects/tether found: YES\|Dependency tether found: YES.*overridden" setup.log || { echo "tether was not taken from the subproject"; cat setup.log; exit 1; }
ninja -C build >build.log 2>&1 || { cat build.log; exit 1; }
./build/consumer
