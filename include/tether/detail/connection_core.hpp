// tether/detail/connection_core.hpp - per-connection state and the close path.
//
// One connection_core exists per libevent connection that needs tracking: one whose
// request is held or streamed past its handler, that has a request handle or a close
// callback. Requests answered inside their handler on untracked connections never touch
// this file, so they cost exactly what the equivalent C does.
//
// The rules come from tracing libevent 2.1.12's http.c (docs/close-lifecycle.md):
//  * evhttp calls the connection's closecb exactly once, from evhttp_connection_free,
//    and frees the evhttp_connection right after it returns;
//  * a request whose reply was not finished when the client vanished is *detached*
//    (evhttp_request_get_connection() == NULL) and nobody frees it unless we do;
//  * a request still attached when closecb runs is freed by libevent right after it.
#pragma once

#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/detail/connection_guard.hpp>
#include <tether/detail/date_cache.hpp>
#include <tether/detail/exchange_watcher.hpp>
#include <tether/server_event.hpp>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>  // evhttp_request::major/minor: libevent has no accessor

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <utility>

#if defined(__linux__)
#  include <netinet/in.h>
#  include <netinet/tcp.h>
#  include <sys/socket.h>
#endif

TETHER_BEGIN_NAMESPACE
namespace detail {

/// Where the current request (the "exchange") of a connection stands.
enum class phase : std::uint8_t {
  pending,    ///< handed to the handler, no reply yet (or held: a long-poll)
  streaming,  ///< reply started, chunks flowing
  finishing,  ///< reply handed to libevent; the request may be freed at any moment
  completed,  ///< libevent flushed the reply (on_complete); the request is gone
  aborted,    ///< the connection ended before the reply was complete; the request is gone
};

struct exchange {
  evhttp_request* req = nullptr;
  phase ph = phase::pending;
  bool held = false;        // the close policy's on_hold ran for this exchange
  bool will_close = false;  // libevent will close the connection once this reply is flushed
};

/// Reports an exception caught at the libevent boundary. Exceptions never cross into C.
inline void report_exception(const char* where) noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tether: exception escaped %s: %s\n", where, e.what());
  } catch (...) {
    std::fprintf(stderr, "tether: exception escaped %s: (not a std::exception)\n", where);
  }
}

/// The untyped part of a server that tracked connections need.
struct server_core {
  event_base* base = nullptr;
  // Every connection's guard (limits, deadlines); a tracked connection's state is
  // reached through its guard.
  guard_set guards;
  std::size_t tracked = 0;  // connections with a connection_core
  bool shutting_down = false;
  // basic_server::drain runs: every reply from now on closes its connection once written
  // (exchange_ops: close_for_drain).
  bool draining = false;
  // Every connection_core this server allocated, live or pooled, so that the server's
  // destructor can free them or orphan the ones a handle still points at.
  connection_core* all = nullptr;
  connection_core* free_list = nullptr;
  std::size_t free_count = 0;
  std::size_t pool_limit = 256;
  evbuffer* scratch = nullptr;  // chunk staging; drained by every use
  bool cache_date = false;      // basic_server::cache_date_header
  bool plain_socket = true;     // connections are plain sockets (no transport: tls.hpp): sendfile, direct writes
  // evhttp's bufferevent write and event callbacks (evhttp_write_cb, evhttp_error_cb),
  // which a held request's guard forwards to; learnt from the first connection held.
  bufferevent_data_cb evhttp_write = nullptr;
  bufferevent_event_cb evhttp_event = nullptr;
  date_cache date;

  /// Stamps the cached Date on a reply about to be sent, if the server opted in.
  void stamp_date(evhttp_request* r) noexcept {
    if (cache_date) date.stamp(base, r);
  }

  // ----- server events (server_event.hpp; basic_server::on_event) -----
  server_event_sink events{&log_server_event};
  /// Hands `e` to the sink; what the sink throws is reported, never propagated into C.
  void report(const server_event& e) noexcept {
    try {
      events(e);
    } catch (...) {
      report_exception("a server event sink");
    }
  }
};

/// The untyped per-connection state. See the file comment for the rules it enforces.
///
/// One exists per tracked connection, so its size is part of what every long-lived
/// request costs (bench/sse_scale: 10,000 SSE streams); the fields are ordered to pack.
/// What only bounded buffer policies need is in flow_state, which connection_state
/// holds only for them.
class connection_core : public watcher_list {
 public:
  server_core* server = nullptr;        // null once the server is gone
  evhttp_connection* evcon = nullptr;   // null once libevent freed the connection
  connection_guard* guard = nullptr;    // the connection's guard, while it is open
  exchange ex;                          // the current request (watchers: watcher_list)
  // The server's list of the states it allocated and that are not pooled; a pooled state
  // is on the server's free list, linked through all_next.
  connection_core* all_prev = nullptr;
  connection_core* all_next = nullptr;
  std::size_t input_limit = 0;
  std::uint32_t seq = 0;                // bumped per exchange; stale handles compare it
  std::uint32_t refs = 0;               // handles and in-handler views pointing here
  bool closed = false;
  bool closing_after_complete = false;  // on_complete saw a reply after which libevent closes
  bool guarded = false;
  bool protocol_hint = false;           // closed while a request head or body was being read
  std::optional<close_reason> forced;    // set by close(), the input guard or shutdown
  std::optional<close_reason> observed;  // seen by the held-phase event hook

  bufferevent* bev() const noexcept { return evhttp_connection_get_bufferevent(evcon); }

  // ----- exchange lifecycle ---------------------------------------------------------

  /// Starts tracking `req` as this connection's current exchange.
  void begin(evhttp_request* req) noexcept {
    ++seq;
    ex = exchange{req, phase::pending, false, false};
    closing_after_complete = false;
    evhttp_request_set_on_complete_cb(req, &on_complete, this);
  }

  static void on_complete(evhttp_request* req, void* self) noexcept {
    auto* c = static_cast<connection_core*>(self);
    if (c->ex.req != req) return;
    c->ex.ph = phase::completed;
    c->ex.req = nullptr;
    c->closing_after_complete = c->ex.will_close;
    if (c->guard) c->guard->set->reply_complete(*c->guard);
    c->notify_watchers(close_reason::completed, false);
  }

  /// Whether libevent will close the connection once this reply is flushed
  /// (evhttp_send_done's need_close, from public data plus major/minor).
  static bool reply_will_close(evhttp_request* req) noexcept {
    auto header_is = [](evkeyvalq* h, const char* value, std::size_t n) {
      const char* v = evhttp_find_header(h, "Connection");
      return v && evutil_ascii_strncasecmp(v, value, n) == 0 && v[n] == '\0';
    };
    const bool http10 = req->major < 1 || (req->major == 1 && req->minor < 1);
    const char* in = evhttp_find_header(evhttp_request_get_input_headers(req), "Connection");
    const bool keep_alive = in && evutil_ascii_strncasecmp(in, "keep-alive", 10) == 0;
    return (http10 && !keep_alive) || header_is(evhttp_request_get_input_headers(req), "close", 5) ||
           header_is(evhttp_request_get_output_headers(req), "close", 5);
  }

  // ----- what close policies act through --------------------------------------------

  /// Re-arms reading on a held request without letting evhttp parse: bytes stay queued
  /// for evhttp (pipelining survives) and FIN, RST and timeouts reach evhttp's error
  /// callback, which frees the connection and so calls closecb.
  ///
  /// The PECL recipe (bufferevent_enable(EV_READ) alone) leaves evhttp_read_cb
  /// installed; in state EVCON_WRITING it calls event_errx(1, ...) on the first stray
  /// byte, which exits the process. Here the read callback is tether's guard instead.
  void watch_input(std::size_t limit) noexcept {
    bufferevent* b = bev();
    bufferevent_data_cb w = nullptr;
    bufferevent_event_cb e = nullptr;
    // evhttp's write and event callbacks are the same two functions on every connection:
    // kept once per server (not overwritten with tether's own on a second call).
    bufferevent_getcb(b, nullptr, &w, &e, nullptr);
    if (w != &guard_write) {
      server->evhttp_write = w;
      server->evhttp_event = e;
    }
    input_limit = limit;
    guarded = true;
    bufferevent_setcb(b, &guard_read, &guard_write, &guard_event, this);
    bufferevent_enable(b, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(b)) > input_limit) close(close_reason::limit_exceeded);
  }

  std::size_t input_size() const noexcept { return evbuffer_get_length(bufferevent_get_input(bev())); }
  std::size_t output_size() const noexcept { return evbuffer_get_length(bufferevent_get_output(bev())); }

  // The server's timeouts are tether's own (server_limits, enforced by the connection's
  // guard) and never run while a handler has the request: a held long-poll has no read
  // deadline, a stream none between chunks, and a reader that stops reading is cut by
  // send_timeout whatever the producer does. libevent's bufferevent timeouts are not
  // used, so there is nothing to suspend; these stay for close policies written
  // against the earlier API.
  void suspend_timeouts() noexcept {}
  void suspend_read_timeout() noexcept {}
  void restore_timeouts() noexcept {}

  /// Closes the connection now. closecb runs before this returns; the caller must hold
  /// a reference (refs) if it touches this object afterwards.
  void close(close_reason why) noexcept {
    if (closed || !evcon) return;
    forced = why;
    // As evhttp_connection_fail_ does: unregister while the fd is still open. Otherwise
    // a close from inside a callback of this connection leaves the bufferevent's final
    // event_del to run on a closed fd (epoll MOD -> EBADF warning).
    bufferevent_disable(bev(), EV_READ | EV_WRITE);
    evhttp_connection_free(evcon);
  }

  // ----- the close path -------------------------------------------------------------

  /// First half of closecb: decide the reason, settle the request, stop watchers.
  close_event close_begin() noexcept {
    close_event ev{};
    char* address = nullptr;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evcon, &address, &port);
    ev.peer_address = address ? address : "";
    ev.peer_port = port;
    ev.reason = classify();

    const bool in_progress = ex.ph == phase::pending || ex.ph == phase::streaming;
    ev.aborted = in_progress || (ex.ph == phase::finishing && ev.reason != close_reason::completed);
    if (in_progress && ex.req) {
      // Detached: libevent will never free it. Attached: libevent frees it after we
      // return, so freeing it here would be a double free.
      if (evhttp_request_get_connection(ex.req) == nullptr) evhttp_request_free(ex.req);
    }
    if (ex.ph != phase::completed) {
      ex.ph = phase::aborted;
      ex.req = nullptr;
    }
    closed = true;
    evcon = nullptr;
    guard = nullptr;
    notify_watchers(ev.reason, ev.aborted);
    return ev;
  }

  close_reason classify() const noexcept {
    if (forced) return *forced;
    if (server && server->shutting_down) return close_reason::server_shutdown;
    if (observed) return *observed;
    if (closing_after_complete) return close_reason::completed;
#if defined(__linux__)
    // The kernel knows what the peer did: a FIN leaves us in CLOSE_WAIT, a RST in CLOSE.
    tcp_info info{};
    socklen_t len = sizeof info;
    const int fd = static_cast<int>(bufferevent_getfd(bev()));
    if (fd >= 0 && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0) {
      switch (info.tcpi_state) {
        case TCP_CLOSE_WAIT: return close_reason::peer_closed;
        case TCP_CLOSE: return close_reason::peer_reset;
        case TCP_ESTABLISHED: break;
        default: return close_reason::error;
      }
    }
#endif
    // The client is still there, and tether did not close it: evhttp refused what the
    // client sent (400, 413, 417, 501) while tether waited for a request.
    if (protocol_hint) return close_reason::protocol_error;
    const bool in_progress = ex.ph == phase::pending || ex.ph == phase::streaming;
    return in_progress ? close_reason::error : close_reason::completed;
  }

  /// Returns this state to its fresh condition for reuse by another connection.
  void reset_core() noexcept {
    evcon = nullptr;
    ex = exchange{};
    refs = 0;
    closed = false;
    closing_after_complete = false;
    guarded = false;
    protocol_hint = false;
    guard = nullptr;
    forced.reset();
    observed.reset();
    input_limit = 0;
    watchers = nullptr;
  }

 private:
  static void guard_read(bufferevent* b, void* self) noexcept {
    auto* c = static_cast<connection_core*>(self);
    if (evbuffer_get_length(bufferevent_get_input(b)) > c->input_limit) c->close(close_reason::limit_exceeded);
  }
  static void guard_write(bufferevent* b, void* self) noexcept {
    auto* c = static_cast<connection_core*>(self);
    if (c->server && c->server->evhttp_write) c->server->evhttp_write(b, c->evcon);
  }
  static void guard_event(bufferevent* b, short what, void* self) noexcept {
    auto* c = static_cast<connection_core*>(self);
    if (what & BEV_EVENT_EOF) c->observed = close_reason::peer_closed;
    else if (what & BEV_EVENT_TIMEOUT) c->observed = close_reason::timeout;
    else if (what & BEV_EVENT_ERROR) {
      const int err = EVUTIL_SOCKET_ERROR();
      c->observed = (err == ECONNRESET || err == EPIPE) ? close_reason::peer_reset : close_reason::error;
    }
    // evhttp's error callback frees the connection (and so may recycle *c): nothing of
    // *c may be touched after this call.
    auto* forward = c->server ? c->server->evhttp_event : nullptr;
    evhttp_connection* evcon = c->evcon;
    if (forward) forward(b, what, evcon);
  }
};

/// The flow control of a bounded buffer policy's streamed reply. connection_state holds
/// one only when its server's policy is bounded; `core` points back at that state.
class flow_state {
 public:
  connection_core* core = nullptr;
  std::size_t high_water = 0;
  std::size_t low_water = 0;
  evbuffer* pending = nullptr;  // slow_consumer::coalesce: the latest chunk, parked
  event* slow_timer = nullptr;  // slow_consumer::disconnect: the deadline
  long slow_deadline_ms = 0;
  bool paused = false;          // a chunk was refused, dropped or parked above high_water
  // evhttp holds on_drain as its write callback (a chunk went through send_chunk since the
  // reply started): from then on a chunk may be written directly (exchange_ops).
  bool drain_callback_set = false;

  /// Starts bounding a streamed reply: evhttp's write callback (and so on_drain) fires
  /// once the output is down to `low` bytes instead of only when it is empty.
  void start(std::size_t high, std::size_t low, long deadline_ms) noexcept {
    high_water = high;
    low_water = low;
    slow_deadline_ms = deadline_ms;
    drain_callback_set = false;  // evhttp_send_reply_start set evhttp's callback to none
    bufferevent_setwatermark(core->bev(), EV_WRITE, low, 0);
  }
  /// Sends the parked chunk (if any) and stops bounding. evhttp_send_done must only run
  /// once the output is *empty* (it may close the connection), so the write watermark
  /// goes back to 0 before the reply ends.
  void finish(evhttp_request* req) noexcept {
    if (pending && evbuffer_get_length(pending) != 0) evhttp_send_reply_chunk(req, pending);
    drain_callback_set = false;
    if (high_water == 0) return;
    if (core->evcon) bufferevent_setwatermark(core->bev(), EV_WRITE, 0, 0);
    high_water = low_water = 0;
    paused = false;
    if (slow_timer) event_del(slow_timer);
  }
  bool above_high_water() const noexcept { return core->output_size() >= high_water; }
  bool parked() const noexcept { return pending && evbuffer_get_length(pending) != 0; }

  /// Queues `chunk` (its whole content) on the current streamed reply, asking evhttp to
  /// call on_drain when the output falls to the low-water mark.
  void send_chunk(evbuffer* chunk) noexcept {
    evhttp_send_reply_chunk_with_cb(core->ex.req, chunk, &on_drain, this);
    drain_callback_set = true;
  }

  /// Parks `bytes` (already in `from`) as the latest chunk, replacing an older one.
  bool park(evbuffer* from) noexcept {
    if (!pending && !(pending = evbuffer_new())) return false;
    evbuffer_drain(pending, evbuffer_get_length(pending));
    return evbuffer_add_buffer(pending, from) == 0;
  }

  /// Arms the slow-consumer deadline (once per episode above the high-water mark).
  void arm_slow_timer() noexcept {
    if (slow_deadline_ms <= 0 || !core->server) return;
    if (!slow_timer && !(slow_timer = event_new(core->server->base, -1, 0, &on_slow_timer, this))) return;
    if (event_pending(slow_timer, EV_TIMEOUT, nullptr)) return;
    const timeval tv{static_cast<time_t>(slow_deadline_ms / 1000), static_cast<suseconds_t>((slow_deadline_ms % 1000) * 1000)};
    event_add(slow_timer, &tv);
  }

  /// The connection closed: the deadline must not fire for it.
  void on_close() noexcept {
    if (slow_timer) event_del(slow_timer);
  }
  /// Back to the fresh condition (the state is reused or freed).
  void reset() noexcept {
    high_water = low_water = 0;
    paused = false;
    drain_callback_set = false;
    slow_deadline_ms = 0;
    if (pending) evbuffer_free(std::exchange(pending, nullptr));
    if (slow_timer) event_free(std::exchange(slow_timer, nullptr));
  }

 private:
  /// evhttp's per-chunk callback: the output is at or below the low-water mark.
  static void on_drain(evhttp_connection*, void* self) noexcept {
    auto* f = static_cast<flow_state*>(self);
    connection_core* c = f->core;
    if (c->ex.ph != phase::streaming || f->high_water == 0) return;
    if (c->output_size() > f->low_water) return;
    if (f->slow_timer) event_del(f->slow_timer);
    if (f->parked()) f->send_chunk(f->pending);
    if (f->paused) {
      f->paused = false;
      c->notify_writable();
    }
  }

  static void on_slow_timer(evutil_socket_t, short, void* self) noexcept {
    auto* f = static_cast<flow_state*>(self);
    connection_core* c = f->core;
    if (c->ex.ph == phase::streaming && c->output_size() > f->low_water) c->close(close_reason::slow_consumer);
  }
};

/// What connection_state holds for an unbounded buffer policy's flow control: nothing.
struct no_flow_state {};

}  // namespace detail
TETHER_END_NAMESPACE
