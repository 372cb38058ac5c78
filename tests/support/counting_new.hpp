// tests/support/counting_new.hpp - C++ heap allocations of a test binary, counted by the
// global operator new that tests/integration/counting_new.cpp replaces (link it in).
#pragma once

#include "loopback.hpp"

#include <catch2/catch.hpp>

/// Allocations through the replaced operator new so far.
long allocations_so_far() noexcept;

/// Allocates through both paths a test may count, and says whether the counter saw
/// both: code compiled into the binary (tether, the test) calling operator new, and code
/// in libstdc++.so (std::string's out-of-line members) calling it through the PLT.
bool allocation_counting_works();

/// First line of a test that bounds allocations. Under valgrind it ends the test with a
/// warning that says why nothing was checked: memcheck replaces operator new for
/// libstdc++'s calls, so the counter misses them and a bound could hold trivially.
/// Anywhere else, a counter that misses either path fails the test.
#define TT_REQUIRE_ALLOCATION_COUNTING()                                                                      \
  do {                                                                                                         \
    if (tt::under_valgrind()) {                                                                                \
      WARN("skipped: under valgrind, memcheck's operator new serves libstdc++, so this binary's counter is " \
           "blind");                                                                                           \
      return;                                                                                                  \
    }                                                                                                          \
    REQUIRE(allocation_counting_works());                                                                      \
  } while (false)
