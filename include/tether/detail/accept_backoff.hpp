// tether/detail/accept_backoff.hpp - stops accepting when accept() runs out of a
// resource, and retries from a timer.
//
// libevent's listener calls accept() until it would block. When accept() fails with
// EMFILE (or ENFILE, ENOBUFS, ENOMEM), the connection stays in the kernel's listen queue,
// so the socket stays readable and the loop calls accept() again at once: measured on
// 2.1.12, about 530,000 failed calls and "Error from accept() call" lines a second, half
// a core, for as long as the descriptors stay in use. nginx answers the same failure by
// disabling its accept events and re-enabling them from a timer (ngx_event_accept.c,
// "accept() failed" with EMFILE/ENFILE). tether does the same per server:
//
//   accepting --error--> paused --timer--> probation --timer--> accepting
//                          ^                   |
//                          +-------error-------+   (delay doubles, 10 ms .. 1 s)
//
// Every listening socket of the server is disabled while paused (descriptor exhaustion is
// process-wide). Probation re-enables them for one delay: a queued connection makes the
// listener readable at once, so a failure comes back at once if nothing was freed. The
// server's sink hears accept_paused once when an episode starts and accept_resumed once
// when it ends.
//
// libevent calls a listener's error callback with the evhttp as its argument (evhttp owns
// the listener's callback slot), so the backoff of a server is found through a small
// registry keyed by evhttp. It is read only on accept failures.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/sync.hpp>
#include <tether/server_event.hpp>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <cerrno>
#include <cstdint>
#include <new>
#include <system_error>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// The engine-neutral part: the state machine above, its timer and its reports. The
/// engine says how to switch its listening sockets (`toggle`) and where events go
/// (`report`): the evhttp engine's accept_backoff below, the lean engine's accept loop
/// (lean_server.hpp), which calls fail() when accept4() runs out of a resource.
class accept_pause {
 public:
  static constexpr std::chrono::milliseconds first_delay{10};
  static constexpr std::chrono::milliseconds max_delay{1000};
  using toggle_fn = void (*)(void* owner, bool enable) noexcept;
  using report_fn = void (*)(void* owner, const server_event& e) noexcept;

  /// Throws std::bad_alloc if libevent cannot allocate the retry timer.
  accept_pause(event_base* base, void* owner, toggle_fn toggle, report_fn report)
      : owner_(owner), toggle_(toggle), report_(report) {
    timer_ = event_new(base, -1, 0, &on_timer, this);
    if (!timer_) throw std::bad_alloc{};
  }
  accept_pause(const accept_pause&) = delete;
  accept_pause& operator=(const accept_pause&) = delete;
  ~accept_pause() { shutdown(); }

  /// Frees the timer: nothing reaches the owner afterwards. Idempotent.
  void shutdown() noexcept {
    if (timer_) event_free(timer_);
    timer_ = nullptr;
  }

  /// True from an accept failure until the retries succeed.
  bool paused() const noexcept { return state_ != state::accepting; }
  /// True while the listeners should be off (paused by a failure, or held).
  bool off() const noexcept { return state_ == state::paused || held_; }

  /// Holds (or releases) the listeners for a reason other than a failure: a server group
  /// that balances its loops (server_group.hpp, accept_balance) holds a loop that has more
  /// than its share of connections. The listeners accept only when neither a failure nor
  /// a hold stops them; a retry's probation does not enable a held listener.
  void hold(bool on) noexcept {
    if (held_ == on) return;
    held_ = on;
    if (state_ != state::paused) toggle_(owner_, !on);
  }
  /// True while hold(true) holds the listeners.
  bool held() const noexcept { return held_; }

  /// accept() failed with `err`, a resource error: every listener off, a retry later.
  void fail(int err) noexcept {
    if (!timer_) return;
    toggle_(owner_, false);
    if (state_ == state::accepting) {
      state_ = state::paused;
      delay_ = first_delay;
      retries_ = 0;
      since_ = std::chrono::steady_clock::now();
      arm();
      server_event ev{server_event_kind::accept_paused};
      ev.error = std::error_code(err, std::system_category());
      ev.duration = delay_;
      report_(owner_, ev);
      return;
    }
    if (state_ == state::probation) {
      ++retries_;
      delay_ = delay_ * 2 < max_delay ? delay_ * 2 : max_delay;
      state_ = state::paused;
      arm();
    }
  }

 private:
  enum class state : std::uint8_t { accepting, paused, probation };

  static void on_timer(evutil_socket_t, short, void* self) noexcept {
    auto* b = static_cast<accept_pause*>(self);
    if (b->state_ == state::paused) {
      b->state_ = state::probation;
      if (!b->held_) b->toggle_(b->owner_, true);
      b->arm();
      return;
    }
    if (b->state_ == state::probation) {
      b->state_ = state::accepting;
      server_event ev{server_event_kind::accept_resumed};
      ev.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - b->since_);
      ev.retries = b->retries_;
      b->report_(b->owner_, ev);
    }
  }

  void arm() noexcept {
    const auto ms = delay_.count();
    const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    event_add(timer_, &tv);
  }

  void* owner_;
  toggle_fn toggle_;
  report_fn report_;
  event* timer_ = nullptr;
  std::chrono::steady_clock::time_point since_{};
  std::chrono::milliseconds delay_ = first_delay;
  std::uint32_t retries_ = 0;
  state state_ = state::accepting;
  bool held_ = false;
};

/// True for an accept() error that means "out of a resource": accepting pauses.
inline bool accept_resource_error(int err) noexcept {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/// The evhttp engine's back-off: accept_pause over the evhttp's bound sockets.
class accept_backoff {
 public:
  static constexpr std::chrono::milliseconds first_delay = accept_pause::first_delay;
  static constexpr std::chrono::milliseconds max_delay = accept_pause::max_delay;

  /// Throws std::bad_alloc if libevent cannot allocate the retry timer.
  accept_backoff(server_core& core, event_base* base, evhttp* http)
      : core_(&core), http_(http), pause_(base, this, &toggle, &report) {
    registry& reg = registry::get();
    const scoped_lock lock(reg.mutex);
    next_ = reg.head;
    reg.head = this;
  }
  accept_backoff(const accept_backoff&) = delete;
  accept_backoff& operator=(const accept_backoff&) = delete;
  ~accept_backoff() { shutdown(); }

  /// Forgets the server: no callback reaches this object afterwards. Idempotent; the
  /// server calls it before it frees its evhttp.
  void shutdown() noexcept {
    if (!registered_) return;
    registered_ = false;
    {
      registry& reg = registry::get();
      const scoped_lock lock(reg.mutex);
      for (accept_backoff** p = &reg.head; *p; p = &(*p)->next_) {
        if (*p == this) {
          *p = next_;
          break;
        }
      }
    }
    pause_.shutdown();
  }

  /// Takes over `listener`'s accept errors; a listener added while paused (or held)
  /// starts paused.
  void watch(evconnlistener* listener) noexcept {
    evconnlistener_set_error_cb(listener, &on_accept_error);
    if (pause_.off()) evconnlistener_disable(listener);
  }

  /// True from an accept failure until the retries succeed.
  bool paused() const noexcept { return pause_.paused(); }
  /// Holds (or releases) the listeners (accept_pause::hold).
  void hold(bool on) noexcept { pause_.hold(on); }
  /// True while hold(true) holds the listeners.
  bool held() const noexcept { return pause_.held(); }

 private:
  struct registry {
    process_mutex mutex;
    accept_backoff* head = nullptr;
    static registry& get() noexcept {
      static registry instance;
      return instance;
    }
  };

  static void on_accept_error(evconnlistener* listener, void* http) noexcept {
    const int err = EVUTIL_SOCKET_ERROR();
    accept_backoff* found = nullptr;
    {
      registry& reg = registry::get();
      const scoped_lock lock(reg.mutex);
      for (accept_backoff* b = reg.head; b; b = b->next_)
        if (b->http_ == http) found = b;
    }
    if (found) found->pause_.fail(err);
    else evconnlistener_disable(listener);  // not tether's: at least do not spin
  }

  static void toggle(void* self, bool enable) noexcept {
    evhttp_foreach_bound_socket(static_cast<accept_backoff*>(self)->http_, enable ? &enable_one : &disable_one,
                                nullptr);
  }
  static void report(void* self, const server_event& e) noexcept { static_cast<accept_backoff*>(self)->core_->report(e); }
  static void enable_one(evhttp_bound_socket* s, void*) { evconnlistener_enable(evhttp_bound_socket_get_listener(s)); }
  static void disable_one(evhttp_bound_socket* s, void*) { evconnlistener_disable(evhttp_bound_socket_get_listener(s)); }

  server_core* core_;
  evhttp* http_;
  accept_pause pause_;
  accept_backoff* next_ = nullptr;
  bool registered_ = true;
};

}  // namespace detail
TETHER_END_NAMESPACE
