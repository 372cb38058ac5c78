// tether/event_loop.hpp - owns a libevent event_base and runs it.
/// @file
/// tether::event_loop: owns a libevent event_base and runs it.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/libevent_use.hpp>
#include <tether/detail/owner.hpp>
#include <tether/detail/sigpipe.hpp>

#include <event2/event.h>

#include <new>

TETHER_BEGIN_NAMESPACE

/// Options for creating an event loop (an `event_config` in libevent terms).
struct loop_options {
  /// Batch readiness changes and apply them once per loop iteration
  /// (EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST): evhttp switches reads and writes on and off
  /// several times per request, and the changelist turns those into fewer epoll_ctl calls.
  bool epoll_changelist = false;
  /// Read the clock whenever libevent needs the time (EVENT_BASE_FLAG_NO_CACHE_TIME)
  /// instead of once per loop iteration, libevent's default: more exact timers, more
  /// clock calls.
  bool no_cache_time = false;
};

/// An event loop: one `event_base`, run on one thread.
///
/// Everything created on a loop (servers, timers, streams) must be used from the thread
/// that runs it and destroyed before it. The constructor ignores SIGPIPE for the process
/// unless the application set its own disposition first: libevent writes with writev()
/// without MSG_NOSIGNAL, so a write to a socket the peer has reset would otherwise kill
/// the process (docs/security.md).
class event_loop {
 public:
  /// Creates a loop with libevent's default backend. Throws std::bad_alloc if libevent
  /// cannot create the event_base.
  event_loop() : event_loop(loop_options{}) {}

  /// Creates a loop with the libevent flags `options` asks for (loop_options). Throws
  /// std::bad_alloc if libevent cannot create the event_base.
  explicit event_loop(const loop_options& options) {
    detail::note_libevent_use();  // from now on, install_memory_policy refuses (memory_policy.hpp)
    detail::ignore_sigpipe_unless_handled();
    detail::unique_event_config cfg{event_config_new()};
    if (!cfg) throw std::bad_alloc{};
    int flags = 0;
    if (options.epoll_changelist) flags |= EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST;
    if (options.no_cache_time) flags |= EVENT_BASE_FLAG_NO_CACHE_TIME;
    if (flags != 0) event_config_set_flag(cfg.get(), flags);
    base_.reset(event_base_new_with_config(cfg.get()));
    if (!base_) throw std::bad_alloc{};
  }

  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;
  /// Takes over another loop's event_base. Only before anything was created on it: servers,
  /// timers and streams keep the event_base, not the event_loop object.
  event_loop(event_loop&&) noexcept = default;
  /// Frees this loop's event_base and takes over another's (same caveat as the move
  /// constructor).
  event_loop& operator=(event_loop&&) noexcept = default;

  /// Runs until there is nothing left to wait for, or until stop()/stop_after().
  /// Returns false if libevent reported an error.
  bool run() noexcept { return event_base_dispatch(base_.get()) != -1; }

  /// Runs one iteration, waiting for at least one event.
  bool run_once() noexcept { return event_base_loop(base_.get(), EVLOOP_ONCE) != -1; }

  /// Runs the callbacks that are ready now, without waiting.
  bool poll() noexcept { return event_base_loop(base_.get(), EVLOOP_NONBLOCK) != -1; }

  /// Runs for at most `d`, then returns (sooner if stop() is called or nothing is left).
  template <class Rep, class Period>
  bool run_for(std::chrono::duration<Rep, Period> d) noexcept {
    stop_after(d);
    return run();
  }

  /// Makes run() return after the callbacks of the current iteration.
  void stop() noexcept { event_base_loopbreak(base_.get()); }

  /// Makes run() return once `d` has passed.
  template <class Rep, class Period>
  void stop_after(std::chrono::duration<Rep, Period> d) noexcept {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    event_base_loopexit(base_.get(), &tv);
  }

  /// True if the last run() ended because of stop().
  bool stopped() const noexcept { return event_base_got_break(base_.get()) != 0; }

  /// The name of the backend libevent chose ("epoll", "poll", ...).
  const char* backend() const noexcept { return event_base_get_method(base_.get()); }

  /// The underlying libevent base, for calls tether does not wrap.
  event_base* native() const noexcept { return base_.get(); }

 private:
  detail::unique_event_base base_;
};

TETHER_END_NAMESPACE
