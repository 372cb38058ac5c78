#!/bin/sh
# Builds tests/consumer/main.cpp (a server that answers one request from itself) against
# this checkout in one of the ways docs/install.md documents, then runs it.
#
#   run.sh WAY SOURCE_ROOT SCRATCH_DIR
#
# The Meson ways also build tls_main.cpp with dependency('tether-tls'), the CMake way with
# tether::tls (docs/tls.md), unless TETHER_CONSUMER_TLS=no (tether built without TLS).
#
#   subproject  Meson: the checkout symlinked at subprojects/tether (the CLI11 way, with
#               --force-fallback-for so that an installed tether cannot stand in)
#   wrap        Meson: subprojects/tether.wrap, [wrap-git] with [provide], cloning a git
#               snapshot of the working tree (a local path: no network)
#   pkgconfig   installed tree: g++ with `pkg-config --cflags --libs tether`, and a Meson
#               project whose dependency('tether') finds tether.pc (no fallback allowed)
#   cmake       installed tree: find_package(tether COMPONENTS tls), tether::tether and
#               tether::tls, built with CMake
#   include     no build system: -I<checkout>/include and libevent's pkg-config flags,
#               then the same with tether's headers precompiled by hand (-x c++-header)
#
# The Meson builds precompile the headers main.cpp uses (cpp_pch), the CMake build too
# (target_precompile_headers): docs/install.md, "Faster builds". Each checks that its .gch
# was built and used; -Winvalid-pch makes one that GCC cannot use an error.
#
# The installed tree (meson setup --prefix + meson install) lives in SCRATCH_DIR/install
# and is shared by the ways that need it; it is redone when a header or build file is
# newer than it. Compiles with -Wall -Wextra -Wpedantic -Werror; CXX picks the compiler.
set -eu
way=$1
src=$(cd "$2" && pwd)
scratch=$3
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
work=$scratch/$way
rm -rf "$work"
mkdir -p "$work"
cxx=${CXX:-g++}
warnings="-Wall -Wextra -Wpedantic -Werror"
# A precompiled header that GCC finds but cannot use (other flags) is an error, not a
# silent full parse.
pch_warning="-Winvalid-pch"

drop_fallback=  # yes: the copy of tests/consumer/meson.build asks for tether-tls without a fallback
tls=${TETHER_CONSUMER_TLS:-yes}

fail() {  # fail MESSAGE [LOG...]
  echo "consumer_$way: $1"
  shift
  for log in "$@"; do cat "$log"; done
  exit 1
}

# setup, build, run a copy of tests/consumer as a Meson project in DIR; extra args go to setup
meson_consumer() {
  dir=$1
  shift
  cp -r "$src/tests/consumer/meson.build" "$src/tests/consumer/main.cpp" "$src/tests/consumer/tls_main.cpp" \
    "$src/tests/consumer/pch" "$dir/"
  [ -z "$drop_fallback" ] || sed -i "s/, fallback : 'tether'//" "$dir/meson.build"
  [ "$tls" = yes ] || sed -i '/tether-tls\|tether_tls_dep/d' "$dir/meson.build"
  (cd "$dir" && meson setup build -Dwarning_level=3 -Dwerror=true -Dcpp_args="$pch_warning" "$@") \
    >"$dir/setup.log" 2>&1 || fail "meson setup failed" "$dir/setup.log"
  ninja -C "$dir/build" >"$dir/build.log" 2>&1 || fail "build failed" "$dir/build.log"
  # cpp_pch: main.cpp is compiled with -include consumer_pch.hpp beside its .gch
  [ -n "$(find "$dir/build" -name consumer_pch.hpp.gch)" ] \
    && grep -q -- "-include.*consumer_pch.hpp" "$dir/build/build.ninja" \
    || fail "the precompiled header was not built or not used" "$dir/build/build.ninja"
  "$dir/build/consumer"
  [ "$tls" != yes ] || "$dir/build/consumer_tls" || fail "the TLS consumer (dependency('tether-tls')) failed"
}

# The shared installed tree; prints its prefix.
installed_prefix() {
  prefix=$scratch/install
  (
    flock 9
    stamp=$prefix/.installed
    if [ ! -f "$stamp" ] || [ -n "$(find "$src/include" "$src/cmake" "$src/meson.build" \
        "$src/meson_options.txt" -newer "$stamp" -print 2>/dev/null | head -n 1)" ]; then
      rm -rf "$prefix" "$scratch/install-build"
      meson setup "$scratch/install-build" "$src" --prefix "$prefix" \
        -Dtests=disabled -Dexamples=disabled -Dbench=disabled -Ddocs=disabled \
        >"$scratch/install.log" 2>&1 \
        && meson install -C "$scratch/install-build" >>"$scratch/install.log" 2>&1 \
        || fail "meson install failed" "$scratch/install.log"
      # Header-only: nothing may depend on the architecture (no lib/, lib64/, lib/<triplet>/).
      for d in "$prefix"/lib*; do
        [ -e "$d" ] && fail "the install put files in ${d#"$prefix"/}: tether.pc and the CMake files belong in share/"
      done
      touch "$stamp"
    fi
  ) 9>"$scratch/install.lock" >&2
  echo "$prefix"
}

case $way in
subproject)
  mkdir -p "$work/subprojects"
  ln -s "$src" "$work/subprojects/tether"
  meson_consumer "$work" --force-fallback-for=tether,tether-tls
  grep -q "Dependency tether found: YES.*(overridden)" "$work/setup.log" \
    && { [ "$tls" != yes ] || grep -q "Dependency tether-tls found: YES.*(overridden)" "$work/setup.log"; } \
    || fail "tether and tether-tls were not taken from the subproject" "$work/setup.log"
  ;;

wrap)
  # A repository holding the working tree as it is (uncommitted edits too), so that the
  # wrap tests this checkout rather than its last commit.
  repo=$work/tether.git-snapshot
  mkdir -p "$repo" "$work/app/subprojects"
  if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$src" ls-files -z --cached --others --exclude-standard \
      | tar -C "$src" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$repo" -xf -
  else
    tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$repo" -xf -
  fi
  (cd "$repo" && git init -q -b main && git add -A \
    && git -c user.name=consumer-test -c user.email=consumer-test@localhost commit -q -m snapshot) \
    || fail "could not make the git snapshot"
  cat >"$work/app/subprojects/tether.wrap" <<EOF
[wrap-git]
url = file://$repo
revision = main
depth = 1

[provide]
dependency_names = tether, tether-tls
EOF
  drop_fallback=yes
  meson_consumer "$work/app" --force-fallback-for=tether,tether-tls
  [ "$tls" != yes ] || grep -q "dependency('tether-tls')" "$work/app/meson.build" \
    || fail "the wrap way's copy still has a fallback" "$work/app/meson.build"
  grep -q "Dependency tether found: YES.*(overridden)" "$work/app/setup.log" \
    && [ -d "$work/app/subprojects/tether/.git" ] \
    || fail "tether was not cloned through the wrap file" "$work/app/setup.log"
  ;;

pkgconfig)
  prefix=$(installed_prefix)
  PKG_CONFIG_PATH=$prefix/share/pkgconfig
  export PKG_CONFIG_PATH
  flags=$(pkg-config --cflags --libs tether) || fail "pkg-config does not find tether.pc"
  case " $flags " in
    *" -I$prefix/include "*) ;;
    *) fail "pkg-config --cflags tether does not name the installed headers: $flags" ;;
  esac
  # shellcheck disable=SC2086  # flags are words by design
  $cxx -std=c++20 $warnings "$src/tests/consumer/main.cpp" $flags -o "$work/consumer" \
    || fail "g++ with pkg-config's flags failed"
  "$work/consumer"
  mkdir -p "$work/meson"
  meson_consumer "$work/meson" --wrap-mode=nofallback
  grep -q "Run-time dependency tether found: YES" "$work/meson/setup.log" \
    && grep -q -- "-I$prefix/include" "$work/meson/build/build.ninja" \
    || fail "dependency('tether') did not come from the installed tether.pc" "$work/meson/setup.log"
  [ "$tls" != yes ] || grep -q "Run-time dependency tether-tls found: YES" "$work/meson/setup.log" \
    || fail "dependency('tether-tls') did not come from the installed tether-tls.pc" "$work/meson/setup.log"
  ;;

cmake)
  prefix=$(installed_prefix)
  version=$(PKG_CONFIG_PATH=$prefix/share/pkgconfig pkg-config --modversion tether)
  # Without tether.pc on the path: the CMake package stands on its own.
  (cd "$work" && env -u PKG_CONFIG_PATH cmake -S "$src/tests/consumer" -B build -G Ninja \
    -DCMAKE_PREFIX_PATH="$prefix" -DTETHER_EXPECTED_VERSION="$version" -DTETHER_CONSUMER_TLS="$tls" \
    -DCMAKE_CXX_FLAGS="$warnings $pch_warning" -DCMAKE_CXX_COMPILER="$cxx") >"$work/setup.log" 2>&1 \
    || fail "cmake configure failed" "$work/setup.log"
  grep -q "tether $version from $prefix/share/cmake/tether" "$work/setup.log" \
    || fail "find_package(tether) did not find the installed tree" "$work/setup.log"
  cmake --build "$work/build" >"$work/build.log" 2>&1 || fail "cmake build failed" "$work/build.log"
  # target_precompile_headers: cmake_pch.hxx.gch, put before main.cpp with -include
  [ -n "$(find "$work/build" -name cmake_pch.hxx.gch)" ] \
    || fail "CMake did not precompile the headers" "$work/build.log"
  "$work/build/consumer"
  [ "$tls" != yes ] || "$work/build/consumer_tls" || fail "the TLS consumer (tether::tls) failed"
  ;;

include)
  # shellcheck disable=SC2046,SC2086  # flags are words by design
  $cxx -std=c++20 $warnings -I"$src/include" "$src/tests/consumer/main.cpp" \
    $(pkg-config --cflags --libs libevent_core libevent_extra) -o "$work/consumer" \
    || fail "g++ -I include failed"
  "$work/consumer"
  # The same with the headers precompiled by hand (docs/install.md, "Faster builds"):
  # -H lists the headers GCC reads, "! FILE.gch" when it loads a precompiled one.
  printf '#include <tether/event_loop.hpp>\n#include <tether/server.hpp>\n' >"$work/tether_pch.hpp"
  # shellcheck disable=SC2046,SC2086  # flags are words by design
  $cxx -std=c++20 $warnings -I"$src/include" $(pkg-config --cflags libevent_core) \
    -x c++-header "$work/tether_pch.hpp" -o "$work/tether_pch.hpp.gch" \
    || fail "precompiling tether's headers failed"
  # shellcheck disable=SC2046,SC2086
  $cxx -std=c++20 $warnings $pch_warning -include "$work/tether_pch.hpp" -H -I"$src/include" \
    "$src/tests/consumer/main.cpp" $(pkg-config --cflags --libs libevent_core libevent_extra) \
    -o "$work/consumer-pch" 2>"$work/pch.log" || fail "g++ with the precompiled header failed" "$work/pch.log"
  grep -q "^! .*tether_pch.hpp.gch" "$work/pch.log" \
    || fail "g++ did not use the precompiled header" "$work/pch.log"
  "$work/consumer-pch"
  ;;

*)
  echo "usage: run.sh subproject|wrap|pkgconfig|cmake|include SOURCE_ROOT SCRATCH_DIR"
  exit 2
  ;;
esac
