// The Catch2 v2 main, compiled once into a static library shared by every test binary.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
