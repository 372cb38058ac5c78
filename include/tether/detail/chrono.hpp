// tether/detail/chrono.hpp - std::chrono's durations and clocks without the rest of
// <chrono>.
//
// tether's settings and events carry std::chrono durations and steady_clock time points.
// Since C++20, libstdc++'s <chrono> also holds the calendar, time zones and their
// formatting (it includes <sstream>): it costs more compile time than any other header a
// hello server needs (docs/performance.md). libstdc++ keeps durations, clocks,
// duration_cast and the chrono_literals in <bits/chrono.h>, which <chrono> includes
// first; other standard libraries get <chrono>. A program that uses more of std::chrono
// includes <chrono> itself, as it should (tether/tether.hpp includes it for everyone).
#pragma once

#include <version>  // names the standard library (__GLIBCXX__) and nothing else

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif
