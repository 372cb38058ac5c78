// tether/wakeup.hpp - how another thread makes a loop run something on its own thread.
//
// libevent's own cross-thread calls (event_active, event_base_loopbreak from another
// thread) are safe only after evthread_use_pthreads(), which must run before any
// event_base exists and then adds a lock and unlock to every event operation of every
// loop in the process, on the request path too. tether never calls libevent across
// threads. Another thread only writes to an eventfd; the loop that owns it sees the fd
// readable and runs the callback itself. So a single-loop program pays nothing, and
// evthread_use_pthreads() is needed only by code that calls libevent across threads on
// its own (docs/scaling.md).
//
// trigger() coalesces: while a wake-up is pending, further triggers are one atomic
// exchange each and no system call. The callback runs once per wake-up, after the flag
// is cleared, so a trigger that races with the callback is never lost: it either is
// seen by the running callback's work or causes one more wake-up.
/// @file
/// tether::wakeup: runs a callback on a loop's thread when another thread asks it to (an
/// eventfd). See docs/scaling.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/libevent_use.hpp>
#include <tether/detail/owner.hpp>
#include <tether/detail/sync.hpp>
#include <tether/event_loop.hpp>

#include <event2/event.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <concepts>
#include <cstdint>
#include <new>
#include <system_error>
#include <utility>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// An eventfd with a pending flag: signal() from any thread, consume() on the loop's.
class wake_fd {
 public:
  /// Throws std::system_error if the kernel refuses an eventfd (descriptor limit).
  wake_fd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "eventfd");
  }
  wake_fd(const wake_fd&) = delete;
  wake_fd& operator=(const wake_fd&) = delete;
  ~wake_fd() { ::close(fd_); }

  /// Any thread. Writes to the eventfd only when no wake-up is pending.
  void signal() noexcept {
    if (pending_.exchange(true, order::acq_rel)) return;
    const std::uint64_t one = 1;
    // EAGAIN only when the counter is at its maximum, i.e. already readable.
    while (::write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
  /// The loop's thread, before doing the work the signal asked for: clears the fd and
  /// the flag, so that a signal from now on wakes the loop again.
  void consume() noexcept {
    std::uint64_t n = 0;
    while (::read(fd_, &n, sizeof n) < 0 && errno == EINTR) {
    }
    pending_.store(false, order::seq_cst);
  }

  int fd() const noexcept { return fd_; }

 private:
  int fd_;
  detail::atomic_value<bool> pending_{false};
};

}  // namespace detail

/// Runs `f()` on `loop`'s thread after trigger() was called from any thread.
///
/// Create and destroy it on the loop's thread (it registers an event on the loop);
/// trigger() may be called from any thread while it exists. Several triggers before the
/// loop gets to it make one call. Not movable (libevent holds its address).
///
///     tether::wakeup drain{loop, [&] { for (auto& job : queue.take()) job(); }};
///     // another thread:
///     queue.push(job);
///     drain.trigger();
template <std::invocable<> F>
class wakeup {
 public:
  /// Throws std::bad_alloc if libevent cannot create the event, std::system_error if no
  /// eventfd can be had.
  wakeup(event_loop& loop, F f) : wakeup(loop.native(), std::move(f)) {}
  /// As above, on a loop the application runs itself.
  wakeup(event_base* base, F f) : f_(std::move(f)) {
    detail::note_libevent_use();
    ev_.reset(event_new(base, fd_.fd(), EV_READ | EV_PERSIST, &fire, this));
    if (!ev_ || event_add(ev_.get(), nullptr) != 0) throw std::bad_alloc{};
  }
  wakeup(const wakeup&) = delete;
  wakeup& operator=(const wakeup&) = delete;

  /// Any thread: makes the loop call f() soon (once, however many triggers came first).
  void trigger() noexcept { fd_.signal(); }

  /// The stored callable, to reach its state (on the loop's thread).
  F& callback() noexcept { return f_; }

 private:
  static void fire(evutil_socket_t, short, void* self) noexcept {
    auto* w = static_cast<wakeup*>(self);
    w->fd_.consume();
    try {
      w->f_();
    } catch (...) {
      detail::report_exception("a wakeup callback");
    }
  }

  detail::wake_fd fd_;
  [[no_unique_address]] F f_;
  detail::unique_event ev_;
};

template <class F>
wakeup(event_loop&, F) -> wakeup<F>;

TETHER_END_NAMESPACE
