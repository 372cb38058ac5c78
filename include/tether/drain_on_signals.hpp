// tether/drain_on_signals.hpp - SIGTERM and SIGINT drain a server (or a server group).
//
// What a service manager (systemd, Kubernetes, docker stop) or Ctrl-C sends is turned
// into a graceful drain on the loop's own thread: libevent's signal events
// (evsignal_new) run the callback from the loop, never from the signal handler, so the
// drain may do anything a callback may. The first signal drains with the deadline given;
// a second one closes what is left at once (drain(0s)).
//
//     tether::event_loop loop;
//     tether::server server{loop};
//     ...
//     tether::drain_on_signals stop{loop, server, std::chrono::seconds(10)};
//     loop.run();   // returns once the server drained
//     return 0;
//
// While it lives, libevent owns the two signals' dispositions (one event_base per process
// may handle signals); destroying it restores the previous ones. libevent would let a
// second base take the signals silently, leaving the first one's servers undrained (a
// process that never exits on SIGTERM); tether refuses it instead (errc::signals_in_use).
// Several drain_on_signals on the same loop are fine: each drains its target.
/// @file
/// tether::drain_on_signals: SIGTERM and SIGINT drain a server or a server group.
/// See docs/drain.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/owner.hpp>
#include <tether/detail/sync.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>

#include <event2/event.h>

#include <concepts>
#include <csignal>
#include <new>

TETHER_BEGIN_NAMESPACE

/// Something that drains within a deadline: basic_server, basic_server_group.
template <class T>
concept drain_target = requires(T& t, std::chrono::milliseconds deadline) { t.drain(deadline); };

namespace detail {
/// The one event_base of the process whose drain_on_signals watch SIGTERM and SIGINT.
class signal_watchers {
 public:
  /// Registers a watcher on `base`; errc::signals_in_use if another base has some.
  static std::error_code add(event_base* base) noexcept {
    const scoped_lock lock(mutex_);
    if (count_ != 0 && base_ != base) return make_error_code(errc::signals_in_use);
    base_ = base;
    ++count_;
    return {};
  }
  static void remove() noexcept {
    const scoped_lock lock(mutex_);
    if (--count_ == 0) base_ = nullptr;
  }

 private:
  static inline process_mutex mutex_;
  static inline event_base* base_ = nullptr;
  static inline unsigned count_ = 0;
};
}  // namespace detail

/// Drains `Target` when SIGTERM or SIGINT arrives (see the file comment).
template <drain_target Target>
class drain_on_signals {
 public:
  /// Watches SIGTERM and SIGINT on `loop`. Throws std::system_error with
  /// errc::signals_in_use if a drain_on_signals on another loop watches them (libevent
  /// lets one loop per process handle signals: drain everything from that one), and
  /// std::bad_alloc if libevent cannot allocate or register the signal events.
  template <class Rep, class Period>
  drain_on_signals(event_loop& loop, Target& target, std::chrono::duration<Rep, Period> deadline)
      : drain_on_signals(loop.native(), target, std::chrono::ceil<std::chrono::milliseconds>(deadline)) {}
  /// The same on a loop the application runs itself.
  drain_on_signals(event_base* base, Target& target, std::chrono::milliseconds deadline)
      : target_(&target), deadline_(deadline) {
    if (auto ec = detail::signal_watchers::add(base)) throw std::system_error(ec);
    term_.reset(evsignal_new(base, SIGTERM, &on_signal, this));
    int_.reset(evsignal_new(base, SIGINT, &on_signal, this));
    if (!term_ || !int_ || event_add(term_.get(), nullptr) != 0 || event_add(int_.get(), nullptr) != 0) {
      term_.reset();
      int_.reset();
      detail::signal_watchers::remove();
      throw std::bad_alloc{};
    }
  }
  drain_on_signals(const drain_on_signals&) = delete;
  drain_on_signals& operator=(const drain_on_signals&) = delete;
  ~drain_on_signals() {
    term_.reset();  // libevent gives the signals back before another loop may take them
    int_.reset();
    detail::signal_watchers::remove();
  }

  /// Signals received so far.
  unsigned received() const noexcept { return received_; }
  /// The last signal received (0 if none).
  int last_signal() const noexcept { return last_; }

 private:
  static void on_signal(evutil_socket_t signo, short, void* self) noexcept {
    auto* s = static_cast<drain_on_signals*>(self);
    s->last_ = static_cast<int>(signo);
    (void)s->target_->drain(++s->received_ == 1 ? s->deadline_ : std::chrono::milliseconds{0});
  }

  Target* target_;
  std::chrono::milliseconds deadline_;
  detail::unique_event term_;
  detail::unique_event int_;
  unsigned received_ = 0;
  int last_ = 0;
};

template <class Target, class Rep, class Period>
drain_on_signals(event_loop&, Target&, std::chrono::duration<Rep, Period>) -> drain_on_signals<Target>;

TETHER_END_NAMESPACE
