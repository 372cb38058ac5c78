// tether/long_poll.hpp - hold requests until there is something to say, or a deadline.
//
// A long_poll is a waiting room: wait(req) holds the request; notify_all()/notify_one()
// answer waiting requests with 200 and a body; at the deadline a request is answered
// 204 No Content. A client that leaves while held is noticed at once (eager_close) and
// its slot is freed on the spot: it is never answered, never counted, never leaked.
//
// Every request waits the same time, so deadlines expire in arrival order: one timer,
// armed for the oldest waiter, serves the whole room. Slots are pooled: after warm-up,
// waiting costs no allocation.
/// @file
/// tether::basic_long_poll: a waiting room that holds requests until there is something to
/// say or a deadline. See docs/long-poll.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/node_pool.hpp>
#include <tether/detail/owner.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/request.hpp>

#include <event2/event.h>

#include <cstddef>
#include <type_traits>
#include <new>

TETHER_BEGIN_NAMESPACE

/// A waiting room for long-poll requests: wait(req) holds a request; notify_all() or
/// notify_one() answers waiting requests with 200 and a body; a request still waiting at
/// the room's deadline is answered `204 No Content`.
///
/// A client that hangs up while it waits is removed at once (with eager_close, the
/// default): it is never answered, never counted in waiting(), and its slot is reused. All
/// requests wait the same time, so one timer (armed for the oldest) serves the room. The
/// room keeps no history: a message sent while a client is between two polls is lost to
/// it (use a broker for that). Use it on its loop's thread; destroying it answers everyone
/// still waiting 204. Not copyable, not movable. tether::long_poll is the type for
/// tether::server; another server uses basic_long_poll<my_server::config>.
/// See docs/long-poll.md.
template <class Config>
class basic_long_poll {
 public:
  /// The request wait() takes (request_t: basic_request, or the lean engine's).
  using request_type = request_t<Config>;
  /// The handle a waiting request is kept by.
  using handle_type = request_handle_t<Config>;
  /// The clock deadlines are measured on (monotonic: a change of the wall clock moves none).
  using clock = std::chrono::steady_clock;

  /// A waiting room on `loop` whose requests wait at most `deadline`.
  template <class Rep, class Period>
  basic_long_poll(event_loop& loop, std::chrono::duration<Rep, Period> deadline)
      : deadline_(std::chrono::duration_cast<clock::duration>(deadline)),
        timer_(event_new(loop.native(), -1, 0, &on_timer, this)) {
    if (!timer_) throw std::bad_alloc{};
  }
  basic_long_poll(const basic_long_poll&) = delete;
  basic_long_poll& operator=(const basic_long_poll&) = delete;
  /// Answers every waiting request with 204, as if its deadline had come.
  ~basic_long_poll() {
    while (head_) expire(head_);
  }

  /// Holds `req` (inside its handler) until a notify or the deadline; the handler then
  /// returns without replying. Returns an empty error_code when the request is held.
  /// Errors (the request is not held, and this room never answers it):
  /// errc::reply_finished or errc::reply_started (it was already answered),
  /// errc::peer_gone (its client already left), errc::libevent_failure (its connection
  /// is gone). Throws std::bad_alloc if a slot cannot be allocated (after warm-up, slots
  /// are reused and none is allocated). A request of another server type does not
  /// compile: the room must be named after the request's server (server_t::long_poll).
  template <class Request>
  [[nodiscard]] std::error_code wait(Request& req) {
    if constexpr (!std::is_same_v<Request, request_type>) {
      static_assert(std::is_same_v<Request, request_type>,
                    "tether: this long_poll is for another server type than the request's: name the room "
                    "after the request's server, server_t::long_poll (tether::long_poll is tether::server's) "
                    "(docs/push.md#helpers-follow-the-server)");
      return {};
    } else {
      return hold(req);
    }
  }

 private:
  [[nodiscard]] std::error_code hold(request_type& req) {
    slot* s = acquire();
    s->handle = req.hold();
    if (!s->handle) {
      release(s);
      return make_error_code(errc::libevent_failure);
    }
    if (auto ec = s->handle.watch(*s)) {
      release(s);
      return ec;
    }
    s->expires = clock::now() + deadline_;
    push_back(s);
    if (s == head_) arm();
    return {};
  }

 public:

  /// Answers every waiting request with 200 and `body` (bytes, or anything the
  /// server's buffer policy accepts: shared_bytes, ...), oldest first, and empties the
  /// room; returns how many replies were sent.
  template <class Body>
  std::size_t notify_all(const Body& body) {
    std::size_t n = 0;
    while (head_) n += answer(head_, 200, body);
    event_del(timer_.get());
    return n;
  }
  /// Answers the longest-waiting request with 200 and `body`; false if none waits.
  /// Clients that left are never waiting: they were removed when they hung up.
  template <class Body>
  bool notify_one(const Body& body) {
    if (!head_) return false;
    answer(head_, 200, body);
    arm();
    return true;
  }

  /// Requests waiting now.
  std::size_t waiting() const noexcept { return count_; }

 private:
  struct slot : detail::exchange_watcher {
    handle_type handle;
    clock::time_point expires{};
    slot* older = nullptr;
    slot* newer = nullptr;
    basic_long_poll* room = nullptr;
  };

  slot* acquire() {
    slot* s = pool_.acquire();
    s->room = this;
    s->notify = &on_exchange_end;
    s->older = s->newer = nullptr;
    return s;
  }
  void release(slot* s) noexcept {
    detail::watcher_list::unlink(*s);
    s->handle.reset();  // after a reply: drops the reference; never re-answers
    s->older = s->newer = nullptr;
    pool_.release(s);
  }
  void push_back(slot* s) noexcept {
    s->older = tail_;
    if (tail_) tail_->newer = s;
    else head_ = s;
    tail_ = s;
    ++count_;
  }
  void remove(slot* s) noexcept {
    if (s->older) s->older->newer = s->newer;
    else head_ = s->newer;
    if (s->newer) s->newer->older = s->older;
    else tail_ = s->older;
    s->older = s->newer = nullptr;
    --count_;
  }

  template <class Body>
  std::size_t answer(slot* s, int status, const Body& body) {
    remove(s);
    detail::watcher_list::unlink(*s);  // the reply completes the exchange: not a hang-up
    const bool sent = !s->handle.reply(status, body);
    release(s);
    return sent ? 1 : 0;
  }
  void expire(slot* s) {
    remove(s);
    detail::watcher_list::unlink(*s);
    (void)s->handle.reply(204);
    release(s);
  }

  void arm() noexcept {
    event_del(timer_.get());
    if (!head_) return;
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(head_->expires - clock::now()).count();
    const long us = left > 0 ? static_cast<long>(left) : 0;
    const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    event_add(timer_.get(), &tv);
  }

  static void on_timer(evutil_socket_t, short, void* self) noexcept {
    auto* room = static_cast<basic_long_poll*>(self);
    const auto now = clock::now();
    while (room->head_ && room->head_->expires <= now) room->expire(room->head_);
    room->arm();
  }

  // The client (or the server) went away while the request was held: free the slot.
  static void on_exchange_end(detail::exchange_watcher* w, close_reason, bool) noexcept {
    auto* s = static_cast<slot*>(w);
    basic_long_poll* room = s->room;
    const bool was_head = s == room->head_;
    room->remove(s);
    room->release(s);
    if (was_head) room->arm();
  }

  clock::duration deadline_;
  detail::unique_event timer_;
  detail::node_pool<slot> pool_;
  slot* head_ = nullptr;  // oldest
  slot* tail_ = nullptr;  // newest
  std::size_t count_ = 0;
};

/// basic_long_poll for tether::server.
using long_poll = basic_long_poll<default_config>;

TETHER_END_NAMESPACE
