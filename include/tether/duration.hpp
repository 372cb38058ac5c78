// tether/duration.hpp - the durations tether's settings take, and their literals, without
// all of <chrono>.
/// @file
/// `tether::milliseconds`, `tether::seconds`, ... (std::chrono's own types, by name) and
/// `using namespace tether::literals;` for `25s`, `100ms`: what a program needs to set a
/// timeout or start a timer, at a fraction of `<chrono>`'s compile time.
//
// Since C++20, libstdc++'s <chrono> also holds the calendar, time zones and their
// formatting: including it costs a program as much compile time as tether's server
// (docs/performance.md). The names below are std::chrono's, not copies: a program that
// includes <chrono> as well mixes them freely. Other standard libraries get <chrono>
// (tether/detail/chrono.hpp).
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>

TETHER_BEGIN_NAMESPACE

/// std::chrono::nanoseconds.
using nanoseconds = std::chrono::nanoseconds;
/// std::chrono::microseconds.
using microseconds = std::chrono::microseconds;
/// std::chrono::milliseconds: the unit of tether's timeouts.
using milliseconds = std::chrono::milliseconds;
/// std::chrono::seconds.
using seconds = std::chrono::seconds;
/// std::chrono::minutes.
using minutes = std::chrono::minutes;
/// std::chrono::hours.
using hours = std::chrono::hours;
/// std::chrono::steady_clock: the clock of tether's deadlines.
using steady_clock = std::chrono::steady_clock;

/// std::chrono_literals (`25s`, `100ms`, `1min`): `using namespace tether::literals;`.
namespace literals {
using namespace std::chrono_literals;
}  // namespace literals

TETHER_END_NAMESPACE
