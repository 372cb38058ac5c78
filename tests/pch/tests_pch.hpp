// Precompiled for every test program: Catch2's single header and tether's umbrella are
// most of what each test translation unit compiles (tests/meson.build, cpp_pch).
// Catch2's listener interfaces too, for the tests that install process-wide state first.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>
#include <tether/tether.hpp>
