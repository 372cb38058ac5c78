// tether/timer.hpp - a one-shot or periodic timer with a typed callback.
/// @file
/// tether::timer: a one-shot or periodic timer on an event loop, with its callback stored
/// by type.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/owner.hpp>
#include <tether/event_loop.hpp>

#include <event2/event.h>

#include <concepts>
#include <new>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// A timer on an event loop whose callback is stored by value (no std::function).
///
/// The callback is called as `f()`; an exception escaping it is caught and reported.
/// Not movable (libevent holds its address). Destroying it cancels it.
///
///     tether::timer tick{loop, [&] { std::puts("tick"); }};
///     tick.start_periodic(std::chrono::seconds(1));
template <std::invocable<> F>
class timer {
 public:
  /// A stopped timer on `loop` that will call `f`. Throws std::bad_alloc if libevent cannot
  /// allocate its event. The loop must outlive the timer.
  timer(event_loop& loop, F f) : timer(loop.native(), std::move(f)) {}
  /// A stopped timer on a loop the application runs itself. Throws std::bad_alloc.
  timer(event_base* base, F f)
      : f_(std::move(f)), ev_((detail::note_libevent_use(), event_new(base, -1, 0, &fire, this))) {
    if (!ev_) throw std::bad_alloc{};
  }
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;

  /// Fires once after `d` (re-arming an active timer restarts it).
  template <class Rep, class Period>
  void start_once(std::chrono::duration<Rep, Period> d) noexcept {
    arm(d, false);
  }
  /// Fires every `d` until stop().
  template <class Rep, class Period>
  void start_periodic(std::chrono::duration<Rep, Period> d) noexcept {
    arm(d, true);
  }
  /// Cancels the timer; the callback does not run until the next start. Safe if not started.
  void stop() noexcept { event_del(ev_.get()); }
  /// True while the timer is armed (a one-shot timer is not once it has fired).
  bool active() const noexcept { return event_pending(ev_.get(), EV_TIMEOUT, nullptr) != 0; }

  /// The stored callable, to reach its state.
  F& callback() noexcept { return f_; }

 private:
  template <class Rep, class Period>
  void arm(std::chrono::duration<Rep, Period> d, bool periodic) noexcept {
    event_del(ev_.get());
    event_assign(ev_.get(), event_get_base(ev_.get()), -1, periodic ? EV_PERSIST : 0, &fire, this);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    event_add(ev_.get(), &tv);
  }

  static void fire(evutil_socket_t, short, void* self) noexcept {
    try {
      static_cast<timer*>(self)->f_();
    } catch (...) {
      detail::report_exception("a timer callback");
    }
  }

  [[no_unique_address]] F f_;
  detail::unique_event ev_;
};

template <class F>
timer(event_loop&, F) -> timer<F>;

TETHER_END_NAMESPACE
