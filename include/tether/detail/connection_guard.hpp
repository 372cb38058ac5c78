// tether/detail/connection_guard.hpp - what tether keeps for every connection, from accept
// to close, and the per-server machinery that enforces server_limits with it.
//
// libevent 2.1.12's evhttp bounds nothing by default, and some phases it cannot bound at
// all: while it writes a reply it reads with a NULL read callback (http.c 383), so input
// piles up in the bufferevent without limit; its timeouts are per-read and per-write
// (a byte every few seconds keeps a request alive for ever) and every chunk re-arms the
// write timeout (a reader that stopped is never cut while a producer keeps producing).
// So tether watches every connection itself, without touching evhttp's internals:
//
//  * evhttp_set_bevcb: tether makes every connection's bufferevent, and puts a callback
//    on its input evbuffer. evhttp replaces the bufferevent's callbacks at every phase
//    (evhttp_start_read_, evhttp_write_buffer) but never the input buffer's, so tether
//    sees every byte a client sends, in every phase, before evhttp parses it.
//  * Who reads is the bufferevent's read callback: evhttp_read_cb while evhttp parses a
//    request (with EV_READ on), NULL while evhttp writes a reply, the close policy's guard
//    while a request is held; a handler runs with EV_READ off (http.c 3474).
//  * The evhttp_connection does not exist yet when the bufferevent is made. tether learns
//    it from the bufferevent's callback argument when the first bytes arrive (before
//    evhttp parses them), or at the next sweep for a client that sends nothing, and then
//    sets the connection's close callback (which frees the guard). A reference on the
//    bufferevent keeps it valid until then, even if evhttp freed the connection first.
//  * Deadlines are one sweep per server over its live connections, a few times a second:
//    a phase change is two stores, not an event_add.
//
// A guard is about 100 bytes, pooled per server. What a tracked connection needs beyond
// it (close callback, handles, flow control) stays in connection_core.
#pragma once

#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/date_cache.hpp>
#include <tether/detail/node_pool.hpp>
#include <tether/detail/pointer_map.hpp>
#include <tether/limits.hpp>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

TETHER_BEGIN_NAMESPACE
namespace detail {

class connection_core;
class guard_set;

/// Where a connection stands, as far as its limits are concerned.
enum class guard_phase : std::uint8_t {
  unadopted,  ///< made by the bevcb; evhttp's connection is not known yet
  head,       ///< receiving a request head (from accept, or from its first byte)
  body,       ///< the head is complete; evhttp reads the body (or answers on its own)
  exchange,   ///< the request reached tether: no read deadline until its reply completes
  idle,       ///< keep-alive: the reply completed, no byte of the next request yet
  rejecting,  ///< tether answered 400/408/413/431/503: flushing that, then closing
};

/// Which of its server's lists a guard is on.
enum class guard_list : std::uint8_t { none, unadopted, live, doomed };

/// What a head scan found.
enum class head_verdict : std::uint8_t { more, complete, nul, too_large, body_too_large };

struct connection_guard {
  guard_set* set = nullptr;
  bufferevent* bev = nullptr;
  evhttp_connection* evcon = nullptr;   // null until adopted
  connection_core* tracked = nullptr;   // the tracked state, if the connection has one
  evbuffer_cb_entry* input_cb = nullptr;
  connection_guard* prev = nullptr;
  connection_guard* next = nullptr;
  std::size_t head_bytes = 0;           // of the head being received
  std::size_t out_mark = 0;             // pending output the last sweep saw
  std::size_t queued = 0;               // bytes tether queued on the output since then
  std::uint32_t since = 0;              // sweep tick at which the phase began
  std::uint32_t stall_since = 0;        // sweep tick of the output's last progress
  std::uint32_t cl_value = 0;           // head scan: a Content-Length value (saturating)
  guard_phase phase = guard_phase::unadopted;
  guard_list list = guard_list::none;
  std::uint8_t eol = 0;                 // head scan: 0 in a line, 1 at a line start, 2 after a CR there
  std::uint8_t cl = 0;                  // head scan: where a Content-Length line is matched (cl_state)
  bool cl_over = false;                 // head scan: a Content-Length above max_body_bytes
  bool over_capacity = false;           // accepted past max_connections: gets 503
  bool has_reason = false;
  bool small_reads = false;             // held or streamed: reads capped (guard_set::read_small)
  close_reason reason = close_reason::error;  // why tether is closing it (has_reason)
  std::uint16_t reject_status = 0;      // doomed: answer this status first (0: just close)

  /// True while the request head is still being received and no handler saw it, or
  /// after evhttp answered a request on its own (a protocol error, as far as tether knows).
  bool in_head_or_body() const noexcept { return phase == guard_phase::head || phase == guard_phase::body; }
};

/// How a server's connections get their bufferevent: a plain socket (make null), or what
/// a transport makes (tls.hpp: an OpenSSL bufferevent that accepts a TLS handshake). evhttp
/// sets its fd, callbacks and timeouts on it as on a socket bufferevent, and frees it.
struct transport {
  bufferevent* (*make)(event_base* base, void* arg) noexcept = nullptr;
  void* arg = nullptr;
  void (*release)(void* arg) noexcept = nullptr;  ///< when the server is done with `arg`
  /// The connection is about to be freed (from its close callback): TLS sends close_notify.
  void (*closing)(bufferevent* bev) noexcept = nullptr;
};

/// Every guard of one server, the limits they enforce, and the events that enforce them.
class guard_set {
 public:
  using tracked_close_fn = void (*)(evhttp_connection*, connection_core*, const connection_guard&) noexcept;

  guard_set() = default;
  guard_set(const guard_set&) = delete;
  guard_set& operator=(const guard_set&) = delete;
  ~guard_set() { stop(); }

  /// Installs the bevcb on `http` and applies the default limits. Throws std::bad_alloc
  /// if libevent cannot allocate the server's two events.
  void start(event_base* base, evhttp* http) {
    base_ = base;
    http_ = http;
    housekeeping_ = event_new(base, -1, 0, &on_housekeeping, this);
    sweep_ = event_new(base, -1, EV_PERSIST, &on_sweep, this);
    if (!housekeeping_ || !sweep_) {
      stop();
      throw std::bad_alloc{};
    }
    evhttp_set_bevcb(http, &make_bufferevent, this);
    apply(limits_);
  }

  /// Releases what is left after evhttp_free (guards of connections evhttp never
  /// finished making) and the events. Idempotent.
  void stop() noexcept {
    while (connection_guard* g = heads_[index(guard_list::unadopted)]) {
      bufferevent* b = g->bev;
      unlink(*g);
      release(*g);
      bufferevent_decref(b);
    }
    if (housekeeping_) event_free(std::exchange(housekeeping_, nullptr));
    if (sweep_) event_free(std::exchange(sweep_, nullptr));
    set_transport({});
  }

  /// Connections accepted from now on get their bufferevent from `t`; the previous
  /// transport is released.
  void set_transport(transport t) noexcept {
    transport old = std::exchange(transport_, t);
    if (old.release) old.release(old.arg);
  }

  const server_limits& limits() const noexcept { return limits_; }

  /// Sets every limit at once. Timeouts and tether's checks apply at once; libevent's
  /// own header and body checks (the backstops) to connections accepted afterwards.
  void apply(const server_limits& l) noexcept {
    limits_ = l;
    if (http_) {
      evhttp_set_max_headers_size(http_, to_libevent(l.max_header_bytes));
      evhttp_set_max_body_size(http_, to_libevent(l.max_body_bytes));
    }
    period_ms_ = sweep_period(l);
    if (sweep_armed_) arm_sweep(true);
  }

  /// The typed close of tracked connections (connection_state<Config>), set by the server.
  tracked_close_fn tracked_close = nullptr;

  /// Connections open (or being opened) on this server.
  std::size_t size() const noexcept { return live_; }
  /// Calls `f(arg, open)` whenever the count of open connections changes: after an
  /// accept (from evhttp's bevcb, inside the listener's accept loop) and after a close.
  /// One observer; null removes it. A server group's accept balance (server_group.hpp).
  void observe_count(void (*f)(void*, std::size_t) noexcept, void* arg) noexcept {
    count_observer_ = f;
    count_observer_arg_ = arg;
  }

  connection_guard* find(const evhttp_connection* evcon) const noexcept { return by_evcon_.find(evcon); }

  /// A handler is about to see `req`: its connection leaves the read deadlines, and tether
  /// hears when the reply completes. Returns the connection's guard (null only when
  /// memory ran out: the request is then served without limits).
  connection_guard* dispatch(evhttp_request* req) noexcept {
    evhttp_connection* evcon = evhttp_request_get_connection(req);
    connection_guard* g = by_evcon_.find(evcon);
    if (!g && !(g = adopt_late(evcon))) return nullptr;
    g->phase = guard_phase::exchange;
    evhttp_request_set_on_complete_cb(req, &on_reply_complete, g);
    // What is left in the input belongs to later requests: a client that pipelines
    // faster than it reads its replies grows it by a read between two requests, while
    // evhttp parses (so on_input does not bound it); here it is bounded once per request.
    if (evbuffer_get_length(bufferevent_get_input(g->bev)) > limits_.max_unread_input)
      doom(*g, close_reason::limit_exceeded, 0);
    return g;
  }

  /// The most a held or streamed request's connection reads at once. evbuffer_read sizes
  /// its chain by FIONREAD, which is 0 at a FIN or RST: every hang-up of an idle stream
  /// or long-poll then malloc'd an 8 KiB chain (4,096 bytes to read, rounded up to a power
  /// of two) only to learn that nothing came, and under 10,000 hang-ups malloc and the
  /// page faults of those chains were most of the server's time. Capped, the chain is
  /// libevent's smallest (1 KiB with its 48-byte header); a client that sends while its
  /// request is held is read as before, in smaller reads (eager_close bounds it anyway).
  static constexpr std::size_t small_read = 960;

  /// `g`'s request outlives its handler (held or streamed): reads are capped at
  /// small_read until its reply completes.
  static void read_small(connection_guard& g) noexcept {
    if (g.small_reads || !g.bev) return;
    bufferevent_set_max_single_read(g.bev, small_read);
    g.small_reads = true;
  }

  /// The reply on `g` was handed to the kernel (called from evhttp_send_done, before
  /// evhttp looks at the next request): the keep-alive wait starts, or the head of a
  /// pipelined request already received is checked before evhttp parses it.
  void reply_complete(connection_guard& g) noexcept {
    if (g.small_reads) {  // the next request is read at libevent's default size again
      bufferevent_set_max_single_read(g.bev, 0);
      g.small_reads = false;
    }
    begin(g, guard_phase::idle);
    evbuffer* in = bufferevent_get_input(g.bev);
    if (evbuffer_get_length(in) == 0) return;
    begin(g, guard_phase::head);
    const head_verdict v = scan(g, in, 0);
    if (v == head_verdict::complete) {
      begin(g, guard_phase::body);
    } else if (v != head_verdict::more) {
      // evhttp would parse it as soon as this callback returns: it must never see it.
      evbuffer_drain(in, evbuffer_get_length(in));
      doom(g, v == head_verdict::nul ? close_reason::protocol_error : close_reason::limit_exceeded, status_of(v));
    }
  }

  /// Bytes tether queued on `g`'s output (a streamed chunk): not progress.
  static void note_queued(connection_guard& g, std::size_t n) noexcept { g.queued += n; }

  // ----- drain (basic_server::drain, docs/drain.md) ---------------------------------

  /// Ends every connection that has no request in progress (idle keep-alive, or accepted
  /// with no byte of a request received) gracefully: a FIN after what was sent, then its
  /// input is read and discarded until the client closes (or linger passes), so that no
  /// unread byte turns the close into a RST. Returns how many. Not from inside evhttp's
  /// or a bufferevent's callbacks (the drain runs it from its own timer).
  std::size_t end_idle(close_reason why) noexcept {
    while (connection_guard* g = heads_[index(guard_list::unadopted)]) (void)adopt(*g);
    std::size_t n = 0;
    for (connection_guard* g = heads_[index(guard_list::live)]; g;) {
      connection_guard* next = g->next;
      const bool no_request = g->phase == guard_phase::idle || (g->phase == guard_phase::head && g->head_bytes == 0);
      if (no_request && evbuffer_get_length(bufferevent_get_input(g->bev)) == 0 && !bytes_waiting(*g)) {
        end_gracefully(*g, why);
        ++n;
      }
      g = next;
    }
    return n;
  }

  /// Closes every connection still open, at once (the drain's deadline). Returns how many.
  std::size_t close_all(close_reason why) noexcept {
    while (connection_guard* g = heads_[index(guard_list::unadopted)]) (void)adopt(*g);
    std::size_t n = 0;
    for (guard_list l : {guard_list::doomed, guard_list::live}) {
      // Always the head: a close callback unlinks its guard, and may close others.
      for (std::size_t bound = live_ + 1; bound != 0; --bound) {
        connection_guard* g = heads_[index(l)];
        if (!g) break;
        g->reason = why;
        g->has_reason = true;
        close_now(*g);
        ++n;
      }
    }
    return n;
  }

 private:
  static constexpr std::chrono::milliseconds linger{2000};  // a rejected client's last chance to read

  static ev_ssize_t to_libevent(std::size_t n) noexcept {
    return is_limited(n) && n <= static_cast<std::size_t>(EV_SSIZE_MAX) ? static_cast<ev_ssize_t>(n) : -1;
  }
  static constexpr std::size_t index(guard_list l) noexcept { return static_cast<std::size_t>(l); }

  /// A few sweeps per shortest timeout, between 5 ms and 1 s.
  static long sweep_period(const server_limits& l) noexcept {
    long shortest = 8000;
    for (auto t : {l.head_timeout, l.body_timeout, l.idle_timeout, l.send_timeout})
      if (is_limited(t) && t.count() < shortest) shortest = static_cast<long>(t.count());
    const long p = shortest / 8;
    return p < 5 ? 5 : (p > 1000 ? 1000 : p);
  }

  // ----- lists and the pool ---------------------------------------------------------

  void link(connection_guard& g, guard_list l) noexcept {
    connection_guard*& head = heads_[index(l)];
    g.list = l;
    g.prev = nullptr;
    g.next = head;
    if (head) head->prev = &g;
    head = &g;
  }
  void unlink(connection_guard& g) noexcept {
    if (g.list == guard_list::none) return;
    if (g.prev) g.prev->next = g.next;
    else heads_[index(g.list)] = g.next;
    if (g.next) g.next->prev = g.prev;
    g.prev = g.next = nullptr;
    g.list = guard_list::none;
  }
  connection_guard* acquire() noexcept {
    try {
      connection_guard* g = pool_.acquire();
      g->set = this;
      ++live_;
      if (count_observer_) count_observer_(count_observer_arg_, live_);
      return g;
    } catch (...) {
      return nullptr;
    }
  }
  void release(connection_guard& g) noexcept {
    --live_;
    pool_.release(&g);
    if (count_observer_) count_observer_(count_observer_arg_, live_);
  }

  void begin(connection_guard& g, guard_phase p) noexcept {
    g.phase = p;
    g.since = tick_;
    if (p == guard_phase::head) {
      g.head_bytes = 0;
      g.eol = 0;
      g.cl = 0;
      g.cl_over = false;
    }
  }

  /// Runs the housekeeping event once the current callbacks are done.
  void wake() noexcept {
    if (wake_pending_ || !housekeeping_) return;
    wake_pending_ = true;
    event_active(housekeeping_, EV_TIMEOUT, 0);
  }
  void arm_sweep(bool rearm = false) noexcept {
    if (sweep_armed_ && !rearm) return;
    const timeval tv{static_cast<time_t>(period_ms_ / 1000), static_cast<suseconds_t>((period_ms_ % 1000) * 1000)};
    if (event_add(sweep_, &tv) == 0) sweep_armed_ = true;
  }

  // ----- from accept to close -------------------------------------------------------

  /// evhttp's bevcb: every accepted connection's bufferevent is made here.
  static bufferevent* make_bufferevent(event_base* base, void* self) noexcept {
    auto* s = static_cast<guard_set*>(self);
    // Counted before this one: max_connections open, the next gets 503.
    const bool over = is_limited(s->limits_.max_connections) && s->live_ >= s->limits_.max_connections;
    bufferevent* b = nullptr;
    bool refuse = false;
    if (s->transport_.make) {
      b = s->transport_.make(base, s->transport_.arg);
      // Given no bufferevent, evhttp would make a plain socket one and serve plaintext on
      // a TLS port: this connection gets a plain one too, and is refused with the 503 of
      // max_connections before evhttp parses a byte of it.
      if (!b) refuse = true;
    }
    if (!b) b = bufferevent_socket_new(base, -1, 0);
    if (!b) return nullptr;  // evhttp tries itself, and fails the same way
    connection_guard* g = s->acquire();
    if (!g) return b;  // served without limits; a handler's dispatch retries (adopt_late)
    g->input_cb = evbuffer_add_cb(bufferevent_get_input(b), &on_input, g);
    if (!g->input_cb) {
      s->release(*g);
      return b;
    }
    g->bev = b;
    g->over_capacity = over || refuse;
    bufferevent_incref(b);  // until adopt(): evhttp may free it first (a failure, a silent client)
    s->link(*g, guard_list::unadopted);
    s->arm_sweep();
    return b;
  }

  /// Learns the connection of a guard made by the bevcb, and takes charge of it. Returns
  /// false if the guard was released (evhttp had freed the connection).
  bool adopt(connection_guard& g) noexcept {
    unlink(g);
    bufferevent* b = g.bev;
    bufferevent_data_cb read = nullptr;
    void* arg = nullptr;
    bufferevent_getcb(b, &read, nullptr, nullptr, &arg);
    if (!arg) {  // evhttp freed the connection (bufferevent_free clears the callbacks)
      release(g);
      bufferevent_decref(b);
      return false;
    }
    g.evcon = static_cast<evhttp_connection*>(arg);
    if (!evhttp_read_) evhttp_read_ = read;  // evhttp_start_read_ just installed evhttp_read_cb
    if (!take_charge(g)) {
      evbuffer_remove_cb_entry(bufferevent_get_input(b), g.input_cb);
      evhttp_connection* evcon = g.evcon;
      release(g);
      bufferevent_disable(b, EV_READ | EV_WRITE);
      bufferevent_decref(b);
      evhttp_connection_free(evcon);  // cannot be bounded: not served at all
      return false;
    }
    begin(g, guard_phase::head);
    bufferevent_decref(b);  // evhttp's own reference keeps it from here
    return true;
  }

  /// A connection tether did not see accepted (memory ran out in the bevcb): guarded
  /// from its first dispatch on.
  connection_guard* adopt_late(evhttp_connection* evcon) noexcept {
    connection_guard* g = acquire();
    if (!g) return nullptr;
    g->bev = evhttp_connection_get_bufferevent(evcon);
    g->evcon = evcon;
    if (!evhttp_read_) bufferevent_getcb(g->bev, &evhttp_read_, nullptr, nullptr, nullptr);
    g->input_cb = evbuffer_add_cb(bufferevent_get_input(g->bev), &on_input, g);
    if (!g->input_cb || !take_charge(*g)) {
      if (g->input_cb) evbuffer_remove_cb_entry(bufferevent_get_input(g->bev), g->input_cb);
      release(*g);
      return nullptr;
    }
    return g;
  }

  /// Indexes the guard, sets the connection's close callback, puts it on the live list.
  bool take_charge(connection_guard& g) noexcept {
    try {
      by_evcon_.insert(g.evcon, &g);
    } catch (...) {
      return false;
    }
    // Set once and never replaced: evhttp keeps one close callback per connection, and
    // tether's tracked state is reached through the guard (tracked_close).
    evhttp_connection_set_closecb(g.evcon, &on_close, &g);
    link(g, guard_list::live);
    arm_sweep();
    return true;
  }

  /// evhttp's close callback, exactly once per connection (evhttp_connection_free).
  static void on_close(evhttp_connection* evcon, void* self) noexcept {
    auto* g = static_cast<connection_guard*>(self);
    guard_set* s = g->set;
    s->by_evcon_.erase(evcon);
    s->unlink(*g);
    // The input buffer outlives this call briefly (the bufferevent is finalized later):
    // nothing may call back into a recycled guard.
    evbuffer_remove_cb_entry(bufferevent_get_input(g->bev), g->input_cb);
    if (g->tracked && s->tracked_close) s->tracked_close(evcon, g->tracked, *g);
    // After the close reason was read from the socket's state: what the transport says
    // last (close_notify) may make a departed peer's kernel answer with a RST.
    if (s->transport_.closing) s->transport_.closing(g->bev);
    s->release(*g);
  }

  static void on_reply_complete(evhttp_request*, void* self) noexcept {
    auto* g = static_cast<connection_guard*>(self);
    g->set->reply_complete(*g);
  }

  // ----- input: every byte a client sends -------------------------------------------

  /// The input evbuffer's callback: after every read (and every drain, which it ignores).
  static void on_input(evbuffer* in, const evbuffer_cb_info* info, void* self) noexcept {
    if (info->n_added == 0) return;
    auto* g = static_cast<connection_guard*>(self);
    guard_set* s = g->set;
    if (g->phase == guard_phase::unadopted) {
      if (!s->adopt(*g)) return;
      // Before evhttp reads its request: its read callback is replaced right here.
      if (g->over_capacity) return s->reject(*g, 503, close_reason::limit_exceeded);
    }
    if (g->phase == guard_phase::rejecting) return;
    bufferevent_data_cb read = nullptr;
    bufferevent_getcb(g->bev, &read, nullptr, nullptr, nullptr);
    if (read == s->evhttp_read_) {
      // evhttp parses these bytes as soon as this returns: a request head (bounded here)
      // or a body (bounded by libevent's max_body_size and the body deadline).
      if (g->phase == guard_phase::idle || g->phase == guard_phase::exchange) s->begin(*g, guard_phase::head);
      if (g->phase == guard_phase::head) s->scan_arrived(*g, in, evbuffer_get_length(in) - info->n_added);
      return;
    }
    // Nobody parses them now (a reply is being written, a request is held): they wait.
    if (evbuffer_get_length(in) > s->limits_.max_unread_input) s->doom(*g, close_reason::limit_exceeded, 0);
  }

  static std::uint16_t status_of(head_verdict v) noexcept {
    return v == head_verdict::nul ? 400 : v == head_verdict::too_large ? 431 : 413;
  }

  void scan_arrived(connection_guard& g, evbuffer* in, std::size_t from) noexcept {
    switch (const head_verdict v = scan(g, in, from)) {
      case head_verdict::more: break;
      case head_verdict::complete: begin(g, guard_phase::body); break;
      // Safe from inside the read: evhttp's read callback is replaced before the
      // bufferevent calls it, so evhttp never parses these bytes.
      case head_verdict::nul: reject(g, 400, close_reason::protocol_error); break;
      case head_verdict::too_large:
      case head_verdict::body_too_large: reject(g, status_of(v), close_reason::limit_exceeded); break;
    }
  }

  /// Scans the head bytes of `in` from offset `from` on: counts them, finds the blank
  /// line that ends the head (CRLF or LF line ends, as evhttp reads them), and rejects a
  /// NUL anywhere in it (evhttp would keep the value up to the NUL: RFC 9110 5.5).
  head_verdict scan(connection_guard& g, evbuffer* in, std::size_t from) const noexcept {
    // evbuffer_peek returns how many chains the length needs, even past the four filled.
    const auto len = static_cast<ev_ssize_t>(evbuffer_get_length(in));
    evbuffer_iovec v[4];
    int n = evbuffer_peek(in, len, nullptr, v, 4);  // a request usually sits in one chain
    evbuffer_ptr pos;
    if (n > 4) {  // many small chains: start at `from` itself
      if (evbuffer_ptr_set(in, &pos, from, EVBUFFER_PTR_SET) != 0) return head_verdict::more;
      n = evbuffer_peek(in, len - static_cast<ev_ssize_t>(from), &pos, v, 4);
      from = 0;
    }
    for (;;) {
      std::size_t done = 0;
      for (int i = 0; i < n && i < 4; ++i) {
        const std::size_t seg = v[i].iov_len;
        done += seg;
        if (from >= seg) {
          from -= seg;
          continue;
        }
        const head_verdict r = scan_bytes(g, static_cast<const char*>(v[i].iov_base) + from, seg - from);
        if (r != head_verdict::more) return r;
        from = 0;
      }
      if (n <= 4) return head_verdict::more;
      // Past the first four chains: continue after them.
      if (evbuffer_ptr_set(in, &pos, done, EVBUFFER_PTR_ADD) != 0) return head_verdict::more;
      n = evbuffer_peek(in, len - static_cast<ev_ssize_t>(pos.pos), &pos, v, 4);
    }
  }

  // The Content-Length line of a head, matched as it streams past (cl_state): a declared
  // body over max_body_bytes is refused before a byte of it is read, with tether's reason
  // (libevent would refuse it too, as an anonymous 413). Any such field counts, not only
  // the first: a request that declares two lengths is refused anyway.
  enum cl_state : std::uint8_t { cl_none = 0, cl_name = 1, cl_space = 16, cl_digits = 17, cl_end = 18 };
  static constexpr char cl_field[] = "content-length:";

  /// Follows a Content-Length line from `q` to the end of the line or of the bytes.
  const char* match_content_length(connection_guard& g, const char* q, const char* e) const noexcept {
    for (; q < e && *q != '\n'; ++q) {
      const char c = *q;
      if (g.cl < cl_space) {
        if (static_cast<char>(c | 0x20) != cl_field[g.cl - cl_name]) {  // the field is all lower case, '-' and ':'
          g.cl = cl_none;
          return q;
        }
        if (++g.cl == cl_space) g.cl_value = 0;
      } else if (g.cl == cl_space && (c == ' ' || c == '\t' || c == '+')) {
      } else if ((g.cl == cl_space || g.cl == cl_digits) && c >= '0' && c <= '9') {
        g.cl = cl_digits;
        const std::uint64_t v = std::uint64_t{g.cl_value} * 10 + static_cast<unsigned>(c - '0');
        g.cl_value = v > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(v);
      } else if (g.cl == cl_digits && (c == ' ' || c == '\t' || c == '\r')) {
        g.cl = cl_end;
      } else if (g.cl != cl_end || (c != ' ' && c != '\t' && c != '\r')) {
        g.cl = cl_none;  // not a number: evhttp answers 400
        return q;
      }
    }
    return q;
  }

  head_verdict scan_bytes(connection_guard& g, const char* p, std::size_t n) const noexcept {
    const char* q = p;
    const char* const e = p + n;
    bool complete = false;
    while (q < e) {
      if (g.eol != 0) {
        if (*q == '\n') {  // a blank line: the head ends after this byte
          ++q;
          complete = true;
          break;
        }
        if (g.eol == 1 && *q == '\r') {
          g.eol = 2;
          ++q;
          continue;
        }
        g.eol = 0;
        if ((*q | 0x20) == 'c') g.cl = cl_name;  // a header field that may be Content-Length
      }
      if (g.cl != cl_none) {
        q = match_content_length(g, q, e);
        if (q == e) break;
      }
      const void* nl = std::memchr(q, '\n', static_cast<std::size_t>(e - q));
      if (!nl) {
        q = e;
        break;
      }
      q = static_cast<const char*>(nl) + 1;
      if (g.cl >= cl_digits && g.cl_value > limits_.max_body_bytes) g.cl_over = true;
      g.cl = cl_none;
      g.eol = 1;
    }
    const auto used = static_cast<std::size_t>(q - p);
    if (std::memchr(p, '\0', used)) return head_verdict::nul;
    g.head_bytes += used;
    if (g.head_bytes > limits_.max_header_bytes) return head_verdict::too_large;
    if (!complete) return head_verdict::more;
    return g.cl_over ? head_verdict::body_too_large : head_verdict::complete;
  }

  // ----- closing and rejecting ------------------------------------------------------

  /// Marks `g` to be closed (status 0) or answered with `status` and closed, from the
  /// housekeeping event: never from inside evhttp's or the bufferevent's own frames.
  void doom(connection_guard& g, close_reason why, std::uint16_t status) noexcept {
    if (g.list == guard_list::doomed) return;  // the first verdict stands
    g.reason = why;
    g.has_reason = true;
    g.reject_status = status;
    if (status == 0) bufferevent_disable(g.bev, EV_READ);  // take no more input meanwhile
    unlink(g);
    link(g, guard_list::doomed);
    wake();
  }

  void run_doomed() noexcept {
    while (connection_guard* g = heads_[index(guard_list::doomed)]) {
      unlink(*g);
      link(*g, guard_list::live);
      if (g->reject_status != 0) reject(*g, std::exchange(g->reject_status, std::uint16_t{0}), g->reason);
      else close_now(*g);  // its close callback unlinks and releases it
    }
  }

  static void close_now(connection_guard& g) noexcept {
    bufferevent_disable(g.bev, EV_READ | EV_WRITE);
    evhttp_connection_free(g.evcon);
  }

  /// Answers `status` itself and closes once the client had a chance to read it. evhttp
  /// never sees the connection's bytes again: tether's callbacks replace its own.
  void reject(connection_guard& g, int status, close_reason why) noexcept {
    g.reason = why;
    g.has_reason = true;
    begin(g, guard_phase::rejecting);
    bufferevent* b = g.bev;
    bufferevent_setcb(b, &reject_read, &reject_write, &reject_event, &g);
    const char* phrase = status == 400 ? "Bad Request"
                         : status == 408 ? "Request Timeout"
                         : status == 413 ? "Content Too Large"
                         : status == 431 ? "Request Header Fields Too Large"
                                         : "Service Unavailable";
    evbuffer_add_printf(bufferevent_get_output(b),
                        "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n%d %s\n",
                        status, phrase, date_.now(base_), std::strlen(phrase) + 5, status, phrase);
    bufferevent_enable(b, EV_READ | EV_WRITE);
  }
  static void reject_read(bufferevent* b, void*) noexcept {
    evbuffer* in = bufferevent_get_input(b);
    evbuffer_drain(in, evbuffer_get_length(in));
  }
  static void reject_write(bufferevent* b, void*) noexcept {
    // The answer is out: end our side, keep draining until the client closes (or the
    // linger runs out), so that unread input does not turn our FIN into a RST that
    // destroys the answer before the client read it.
    if (evbuffer_get_length(bufferevent_get_output(b)) != 0) return;
    bufferevent_disable(b, EV_WRITE);
    ::shutdown(static_cast<int>(bufferevent_getfd(b)), SHUT_WR);
  }
  static void reject_event(bufferevent*, short, void* self) noexcept { close_now(*static_cast<connection_guard*>(self)); }

  /// True if the kernel holds bytes of the connection that libevent did not read yet: a
  /// request that arrived before the drain looked, which evhttp reads and answers next.
  static bool bytes_waiting(const connection_guard& g) noexcept {
    char byte;
    return ::recv(static_cast<int>(bufferevent_getfd(g.bev)), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }

  /// The drain's graceful end of a connection with no request in progress: evhttp never
  /// parses its bytes again; the client reads our FIN, and its close (or the linger,
  /// or the drain's deadline) frees it.
  void end_gracefully(connection_guard& g, close_reason why) noexcept {
    g.reason = why;
    g.has_reason = true;
    begin(g, guard_phase::rejecting);
    bufferevent* b = g.bev;
    bufferevent_setcb(b, &reject_read, nullptr, &reject_event, &g);
    bufferevent_disable(b, EV_WRITE);
    ::shutdown(static_cast<int>(bufferevent_getfd(b)), SHUT_WR);
    bufferevent_enable(b, EV_READ);
  }

  // ----- the housekeeping event and the sweep ---------------------------------------

  static void on_housekeeping(evutil_socket_t, short, void* self) noexcept {
    auto* s = static_cast<guard_set*>(self);
    s->wake_pending_ = false;
    s->run_doomed();
  }

  static void on_sweep(evutil_socket_t, short, void* self) noexcept {
    auto* s = static_cast<guard_set*>(self);
    ++s->tick_;
    // Connections that sent nothing yet (or that evhttp already freed).
    while (connection_guard* g = s->heads_[index(guard_list::unadopted)])
      if (s->adopt(*g) && g->over_capacity) s->doom(*g, close_reason::limit_exceeded, 503);
    if (s->live_ == 0) {
      event_del(s->sweep_);
      s->sweep_armed_ = false;
      return;
    }
    for (connection_guard* g = s->heads_[index(guard_list::live)]; g;) {
      connection_guard* next = g->next;  // check() may move g to the doomed list
      s->check(*g);
      g = next;
    }
    s->run_doomed();
  }

  bool expired(std::chrono::milliseconds limit, std::uint32_t from) const noexcept {
    return is_limited(limit) &&
           static_cast<std::uint64_t>(tick_ - from) * static_cast<std::uint64_t>(period_ms_) >
               static_cast<std::uint64_t>(limit.count());
  }
  /// evhttp is reading a request on `g` (head or body), as opposed to answering one.
  bool reading(const connection_guard& g) const noexcept {
    bufferevent_data_cb read = nullptr;
    bufferevent_getcb(g.bev, &read, nullptr, nullptr, nullptr);
    return read == evhttp_read_ && (bufferevent_get_enabled(g.bev) & EV_READ) != 0;
  }

  void check(connection_guard& g) noexcept {
    switch (g.phase) {
      case guard_phase::head:
      case guard_phase::body:
        if (!expired(g.phase == guard_phase::head ? limits_.head_timeout : limits_.body_timeout, g.since)) break;
        // A connection that never sent a byte of a request is closed without a word (as
        // nginx does): a 408 nobody asked for would confuse a client that pre-connected.
        if (reading(g)) doom(g, close_reason::timeout, g.phase == guard_phase::head && g.head_bytes == 0 ? 0 : 408);
        else g.phase = guard_phase::exchange;  // evhttp answered it on its own and closes
        return;
      case guard_phase::idle:
        if (expired(limits_.idle_timeout, g.since)) doom(g, close_reason::timeout, 0);
        return;
      case guard_phase::rejecting:
        if (expired(linger, g.since)) doom(g, g.reason, 0);
        return;
      case guard_phase::exchange: break;
      case guard_phase::unadopted: return;
    }
    if (g.phase != guard_phase::exchange) return;
    // A reply the client does not read: progress (output shrinking by more than tether
    // queued since the last sweep) re-arms the send timeout; queueing alone does not.
    const std::size_t out = evbuffer_get_length(bufferevent_get_output(g.bev));
    if (out == 0) {
      g.out_mark = g.queued = 0;
      return;
    }
    if (g.out_mark == 0 || out < g.out_mark + g.queued) g.stall_since = tick_;
    g.out_mark = out;
    g.queued = 0;
    if (expired(limits_.send_timeout, g.stall_since)) doom(g, close_reason::timeout, 0);
  }

  server_limits limits_{};
  transport transport_{};
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  event* housekeeping_ = nullptr;
  event* sweep_ = nullptr;
  bufferevent_data_cb evhttp_read_ = nullptr;  // evhttp's read callback, learnt at the first adopt
  pointer_map<evhttp_connection, connection_guard> by_evcon_;
  node_pool<connection_guard> pool_;
  connection_guard* heads_[4] = {};
  std::size_t live_ = 0;
  void (*count_observer_)(void*, std::size_t) noexcept = nullptr;  // observe_count
  void* count_observer_arg_ = nullptr;
  std::uint32_t tick_ = 0;
  long period_ms_ = 1000;
  bool wake_pending_ = false;
  bool sweep_armed_ = false;
  mutable date_cache date_;
};

}  // namespace detail
TETHER_END_NAMESPACE
