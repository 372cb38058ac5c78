// tether/lean_server.hpp - the lean engine: tether's own HTTP/1.1 server on libevent's
// event loop (raw events on the socket, tether::http1's parser and writer).
/// @file
/// basic_server<ClosePolicy, BufferPolicy, CloseCallback, lean_engine> (tether::lean_server),
/// with its request (basic_lean_request), request handle (basic_lean_request_handle) and
/// connection view (basic_lean_connection). See docs/engine.md.
//
// The request API is the one handlers already use on the evhttp engine: method(), uri(),
// path(), query(), host(), version(), input_headers().find(), output_headers().add(),
// body(), reply(), send_error(), start()/send_chunk()/end(), hold(), connection() with
// on_close(), close() and the peer. A handler written against `server_t::request&` (or
// `auto&`) compiles against either engine, and so do routers of static routes, virtual
// hosts (basic_virtual_host<..., lean_engine>, at the end of this file), drain options,
// server events, server groups, the push helpers (streams, SSE, multipart, long-poll,
// hubs, the broker, reply hooks), CORS and every buffer policy. docs/engine.md lists what
// the lean engine does not serve yet. TLS plugs in through a transport
// (detail/lean_transport.hpp, set by tls.hpp's use_tls) without naming OpenSSL here.
#pragma once

#include <tether/buffer_policy.hpp>
#include <tether/close_callback.hpp>
#include <tether/close_policy.hpp>
#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/accept_backoff.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/date_cache.hpp>
#include <tether/detail/decimal.hpp>
#include <tether/detail/lean_connection.hpp>
#include <tether/detail/lean_output.hpp>
#include <tether/detail/lean_routes.hpp>
#include <tether/detail/lean_transport.hpp>
#include <tether/detail/push_fwd.hpp>
#include <tether/detail/listen_address.hpp>
#include <tether/detail/owner.hpp>
#include <tether/detail/sigpipe.hpp>
#include <tether/drain.hpp>
#include <tether/engine.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/headers.hpp>
#include <tether/http1/parse_error.hpp>
#include <tether/http1/request_parser.hpp>
#include <tether/http1/response_writer.hpp>
#include <tether/limits.hpp>
#include <tether/method.hpp>
#include <tether/reply_hook.hpp>
#include <tether/request.hpp>
#include <tether/request_handler.hpp>
#include <tether/route.hpp>
#include <tether/router.hpp>
#include <tether/server_event.hpp>
#include <tether/server.hpp>
#include <tether/sse.hpp>
#include <tether/stream.hpp>
#include <tether/uri.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

TETHER_BEGIN_NAMESPACE

template <class Config>
class basic_lean_request;
template <class Config>
class basic_lean_request_handle;
template <class Config>
class basic_lean_connection;

namespace detail {

/// The lean engine's per-server state and every connection-level step: accept, read,
/// parse, dispatch, reply, write, deadlines and close.
template <class Config>
struct lean_core {
  using conn = lean_connection<Config>;
  using request_type = basic_lean_request<Config>;
  using flow_t = typename Config::buffer_policy::flow;

  event_base* base = nullptr;
  server_limits limits{};
  http1::parser_limits parser_limits{};
  date_cache dates;
  conn* first = nullptr;
  std::size_t open = 0;
  std::string default_content_type = "text/html; charset=ISO-8859-1";
  void (*dispatch)(void* owner, request_type& r) noexcept = nullptr;
  void* owner = nullptr;
  event* sweep = nullptr;
  std::int64_t sweep_period_ms = 0;
  std::uint64_t requests = 0;
  /// The close policy's input limit (eager_close<Limit>), if it has one: unread input is
  /// bounded by the smaller of it and max_unread_input.
  std::size_t policy_input_limit = SIZE_MAX;
  /// From drain() on: every close the drain causes reports server_shutdown.
  bool draining = false;
  /// Methods outside these get 501 before any handler (basic_server::allow_methods).
  unsigned allowed_methods = 0;
  /// The server's events (server_event.hpp): refusals before any handler, accept pauses.
  server_event_sink events{&log_server_event};
  /// A server group's accept balance hears every change of `open` (server_group.hpp).
  void (*count_observer)(void*, std::size_t) noexcept = nullptr;
  void* count_observer_arg = nullptr;
  /// How connections read and write when not over plain syscalls (use_tls: TLS); its
  /// `open` is null for a plain server, and then no connection has a session.
  lean_transport transport{};

  /// Hands `e` to the sink; what the sink throws is reported, never propagated.
  void report(const server_event& e) noexcept {
    if (!events) return;
    try {
      events(e);
    } catch (...) {
      report_exception("a server event sink");
    }
  }
  void count_changed() noexcept {
    if (count_observer) count_observer(count_observer_arg, open);
  }

  /// Bytes of queued output past which pipelined requests wait (the socket is slow).
  static constexpr std::size_t output_pause = 64 * 1024;

  lean_core() = default;
  lean_core(const lean_core&) = delete;
  lean_core& operator=(const lean_core&) = delete;

  // ----- limits and deadlines --------------------------------------------------------

  /// The largest head the lean parser takes (it keeps 16-bit offsets into the head).
  static constexpr std::size_t max_head_limit = 65535;

  void apply(const server_limits& l) noexcept {
    limits = l;
    if (limits.max_header_bytes > max_head_limit) {
      // Refused loudly rather than ignored: limits() says what is in force, and one line
      // says why (docs/engine.md). The evhttp engine takes larger heads.
      std::fprintf(stderr,
                   "tether: the lean engine takes request heads of at most %zu bytes; max_header_bytes %zu is "
                   "lowered to it (the evhttp engine takes more)\n",
                   max_head_limit, limits.max_header_bytes);
      limits.max_header_bytes = max_head_limit;
    }
    parser_limits.max_head_bytes = static_cast<std::uint32_t>(limits.max_header_bytes);
    parser_limits.max_body_bytes = is_limited(l.max_body_bytes) ? l.max_body_bytes : http1::parser_limits::unlimited;
    for (conn* c = first; c; c = c->next)
      if (c->parser) c->parser->set_limits(parser_limits);
    arm_sweep();
  }

  std::int64_t now_ms() noexcept {
    timeval tv{};
    event_base_gettimeofday_cached(base, &tv);
    return static_cast<std::int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
  }

  static std::int64_t ms(std::chrono::milliseconds d) noexcept { return is_limited(d) ? d.count() : 0; }

  void set_deadline(conn& c, lean_deadline kind) noexcept {
    std::int64_t span = 0;
    switch (kind) {
      case lean_deadline::none: break;
      case lean_deadline::head: span = ms(limits.head_timeout); break;
      case lean_deadline::body: span = ms(limits.body_timeout); break;
      case lean_deadline::idle: span = ms(limits.idle_timeout); break;
      case lean_deadline::send: span = ms(limits.send_timeout); break;
    }
    c.deadline_kind = span > 0 ? kind : lean_deadline::none;
    c.deadline_ms = span > 0 ? now_ms() + span : 0;
  }

  /// One timer per server looks at every connection's deadline (no timer per request).
  void arm_sweep() noexcept {
    if (!base) return;
    std::int64_t shortest = 0;
    for (auto d : {limits.head_timeout, limits.body_timeout, limits.idle_timeout, limits.send_timeout}) {
      const std::int64_t v = ms(d);
      if (v > 0 && (shortest == 0 || v < shortest)) shortest = v;
    }
    if (shortest == 0 && lingering_count > 0) shortest = linger_ms;  // the lingerers need it
    if (!sweep) sweep = event_new(base, -1, EV_PERSIST, &on_sweep, this);
    if (!sweep) return;
    if (shortest == 0) {
      event_del(sweep);
      sweep_period_ms = 0;
      return;
    }
    const std::int64_t eighth = shortest / 8;
    const std::int64_t period = eighth < 5 ? 5 : eighth > 500 ? 500 : eighth;
    if (period == sweep_period_ms) return;
    sweep_period_ms = period;
    const timeval tv{static_cast<time_t>(period / 1000), static_cast<suseconds_t>((period % 1000) * 1000)};
    event_add(sweep, &tv);
  }

  static void on_sweep(evutil_socket_t, short, void* arg) noexcept {
    auto* core = static_cast<lean_core*>(arg);
    const std::int64_t now = core->now_ms();
    for (lingerer* l = core->lingering; l;) {
      lingerer* next = l->next;
      if (now >= l->until_ms) core->end_linger(l);
      l = next;
    }
    conn* c = core->first;
    if (c) c->add_ref();
    while (c) {
      conn* next = c->next;
      if (next) next->add_ref();
      if (!c->closed && c->deadline_kind != lean_deadline::none && now >= c->deadline_ms) core->expire(*c);
      c->release();
      c = next;
    }
  }

  void expire(conn& c) noexcept {
    switch (c.deadline_kind) {
      case lean_deadline::head:
        if (c.unread() == 0 && !c.head_live) {  // not a byte of a request: no answer owed
          close(c, close_reason::timeout);
          break;
        }
        [[fallthrough]];
      case lean_deadline::body:
        c.deadline_kind = lean_deadline::none;
        refuse(c, 408, close_reason::timeout);
        if (!c.closed && c.pending_output() == 0) close(c, close_reason::timeout);
        break;
      case lean_deadline::idle:
      case lean_deadline::send:
      case lean_deadline::none: close(c, close_reason::timeout); break;
    }
  }

  // ----- lingering: a graceful end that cannot be turned into a RST ----------------

  /// How long a socket ended gracefully waits for the client's close.
  static constexpr std::int64_t linger_ms = 2000;

  /// A socket whose connection is closed (its close callback ran) but whose client may
  /// still be sending: FIN was sent, and its input is read and discarded until the client
  /// closes or linger_ms pass. Closing it at once with unread input would send a RST,
  /// which destroys the answer (a 400, a 431, a drain's last reply) the client has not
  /// read yet. The evhttp engine does the same (detail/connection_guard.hpp, linger).
  struct lingerer {
    lean_core* core;
    int fd;
    event* ev;
    std::int64_t until_ms;
    lingerer* prev;
    lingerer* next;
  };
  lingerer* lingering = nullptr;
  std::size_t lingering_count = 0;

  void linger_fd(int fd) noexcept {
    auto* l = new (std::nothrow) lingerer{this, fd, nullptr, now_ms() + linger_ms, nullptr, lingering};
    if (l) l->ev = event_new(base, fd, EV_READ | EV_PERSIST, &on_linger, l);
    if (!l || !l->ev || event_add(l->ev, nullptr) != 0) {
      if (l && l->ev) event_free(l->ev);
      delete l;
      ::close(fd);
      return;
    }
    if (lingering) lingering->prev = l;
    lingering = l;
    ++lingering_count;
    if (sweep_period_ms == 0) {  // no timeout set: the sweep runs for the lingerers alone
      if (!sweep) sweep = event_new(base, -1, EV_PERSIST, &on_sweep, this);
      if (sweep) {
        sweep_period_ms = 250;
        const timeval tv{0, 250000};
        event_add(sweep, &tv);
      }
    }
  }

  static void on_linger(evutil_socket_t fd, short, void* arg) noexcept {
    auto* l = static_cast<lingerer*>(arg);
    char sink[16384];
    for (int i = 0; i < 16; ++i) {
      const ssize_t n = ::recv(fd, sink, sizeof sink, 0);
      if (n > 0) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      break;  // the client closed (or reset): done
    }
    l->core->end_linger(l);
  }

  void end_linger(lingerer* l) noexcept {
    if (l->prev) l->prev->next = l->next;
    else lingering = l->next;
    if (l->next) l->next->prev = l->prev;
    --lingering_count;
    event_free(l->ev);
    ::close(l->fd);
    delete l;
  }

  /// Ends every lingering socket now; returns how many there were.
  std::size_t end_all_lingering() noexcept {
    const std::size_t n = lingering_count;
    while (lingering) end_linger(lingering);
    return n;
  }

  // ----- accept ---------------------------------------------------------------------

  /// Takes a connection accepted on a listening socket.
  void adopt(int fd, const sockaddr_storage& peer) noexcept {
    if (is_limited(limits.max_connections) && open >= limits.max_connections) {
      if (transport.open) {  // a TLS port: no plain-text 503, no handshake either; FIN
        ::shutdown(fd, SHUT_WR);
        linger_fd(fd);
        return;
      }
      static constexpr std::string_view busy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::shutdown(fd, SHUT_WR);
      linger_fd(fd);  // its request may still arrive: no RST over the 503
      return;
    }
    auto* c = new (std::nothrow) conn;
    if (!c) {
      ::close(fd);
      return;
    }
    c->core = this;
    c->fd = fd;
    c->peer = peer;
    c->in_cap = 4096;
    c->in.reset(new (std::nothrow) char[c->in_cap]);
    c->rd = event_new(base, fd, EV_READ | EV_PERSIST | EV_CLOSED, &on_read, c);
    c->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, &on_write, c);
    // TLS: the session starts in the accepting state; the handshake happens in the first
    // reads, under the head deadline set below.
    const bool no_session = transport.open && !(c->session = transport.open(transport.arg, fd));
    if (!c->in || !c->rd || !c->wr || no_session || event_add(c->rd, nullptr) != 0) {
      if (c->rd) event_free(c->rd);
      if (c->wr) event_free(c->wr);
      if (c->session) transport.close(c->session, false);
      ::close(fd);
      delete c;
      return;
    }
    c->out.reserve(1024);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->next = first;
    if (first) first->prev = c;
    first = c;
    ++open;
    set_deadline(*c, lean_deadline::head);
    count_changed();
  }

  // ----- close ----------------------------------------------------------------------

  /// Closes `c` once: its events and socket go, its exchange is aborted if a reply was
  /// still owed, its close callback runs. The object lives on while handles refer to it.
  void close(conn& c, close_reason why, bool graceful = false) noexcept {
    if (c.closed) return;
    c.add_ref();  // watchers and the close callback may drop the last handle
    c.closed = true;
    delete std::exchange(c.parser, nullptr);  // its state may be mid-message: not a spare
    const bool owed = c.ph == lean_phase::pending || c.ph == lean_phase::streaming;
    if (owed) c.ph = lean_phase::aborted;
    // As on the evhttp engine (its `finishing` phase): a reply queued whole but not yet
    // written when the connection ends other than by completing was not delivered either.
    const bool aborted =
        owed || (c.ph == lean_phase::done && c.pending_output() > 0 && why != close_reason::completed);
    event_free(c.rd);
    event_free(c.wr);
    c.rd = c.wr = nullptr;
    if (c.prev) c.prev->next = c.next;
    else first = c.next;
    if (c.next) c.next->prev = c.prev;
    c.prev = c.next = nullptr;
    --open;
    count_changed();
    // A refusal or a timeout may meet a client that is still sending: its socket lingers.
    graceful = graceful || why == close_reason::limit_exceeded || why == close_reason::protocol_error ||
               why == close_reason::timeout;
    if (c.session) {
      // TLS says goodbye (close_notify) before the FIN, unless reply bytes are still
      // unwritten (a cut reply must not pass for a whole one) or the peer is gone.
      transport.close(c.session, c.pending_output() == 0 && why != close_reason::peer_reset &&
                                     why != close_reason::error && why != close_reason::protocol_error);
      c.session = nullptr;
    }
    if (graceful || why == close_reason::completed) ::shutdown(c.fd, SHUT_WR);
    // A reply that closes its connection during a drain closes it because of the drain.
    if (draining && why == close_reason::completed) why = close_reason::server_shutdown;
    if (graceful) linger_fd(c.fd);
    else ::close(c.fd);
    c.fd = -1;
    release_segments(c);
    if constexpr (flow_t::bounded) {
      if (c.flow.slow_timer) event_free(std::exchange(c.flow.slow_timer, nullptr));
    }
    // Reply hooks, hubs, long-poll rooms hear it before the connection's close callback.
    c.notify_watchers(why, aborted);
    if (c.has_callback) {
      c.has_callback = false;
      const close_event e{why, aborted, c.peer_address(), c.peer_port()};
      try {
        c.callback(e);
      } catch (...) {
        report_exception("a close callback");
      }
      c.callback = typename conn::callback_type{};
    }
    c.release();  // frees it unless a handle or a running dispatch refers to it
  }

  void close_all(close_reason why) noexcept {
    while (first) close(*first, why);
  }

  // ----- read -----------------------------------------------------------------------

  static void on_read(evutil_socket_t, short what, void* arg) noexcept {
    auto& c = *static_cast<conn*>(arg);
    c.add_ref();
    c.core->readable(c, what);
    c.core->drained(c);  // process() may have written the rest of a bounded stream's output
    c.release();
  }

  static void on_write(evutil_socket_t, short, void* arg) noexcept {
    auto& c = *static_cast<conn*>(arg);
    c.add_ref();
    if (c.read_wants_write) c.core->readable(c, EV_READ);  // a session's read waited for this
    c.core->flush(c);
    c.core->drained(c);
    if (!c.closed && c.pending_output() == 0) c.core->process(c);
    c.release();
  }

  /// Room for one more read: moves the unconsumed bytes to the front, or grows the
  /// buffer up to the head limit plus max_unread_input. False if the client passed it.
  // Always inlined: read_session() calls it too, and the plain read path is not to pay a
  // call for that.
  [[gnu::always_inline]] bool make_room(conn& c) noexcept {
    if (c.in_cap == 0) {  // given back by shed_buffers()
      c.in.reset(new (std::nothrow) char[4096]);
      if (!c.in) return false;
      c.in_cap = 4096;
      return true;
    }
    if (c.in_len < c.in_cap) return true;
    if (c.head_live && c.parser) {
      // A body being read: the head stays (the handler's fields are views into it), but
      // the body bytes consumed after it (copied into c.body) are dead. Move the head to
      // the front and the unconsumed bytes right after it, so that a body of any size
      // within max_body_bytes streams through the buffer instead of filling it.
      const std::size_t head_len = c.parser->head().size;
      if (c.head_at > 0 || c.in_pos > c.head_at + head_len) {
        std::memmove(c.in.get(), c.in.get() + c.head_at, head_len);
        std::memmove(c.in.get() + head_len, c.in.get() + c.in_pos, c.in_len - c.in_pos);
        c.in_len = head_len + (c.in_len - c.in_pos);
        c.in_pos = head_len;
        c.head_at = 0;
        if (c.in_len < c.in_cap) return true;
      }
    }
    const std::size_t keep = c.head_live && c.head_at < c.in_pos ? c.head_at : c.in_pos;
    if (keep > 0) {
      std::memmove(c.in.get(), c.in.get() + keep, c.in_len - keep);
      c.in_len -= keep;
      c.in_pos -= keep;
      if (c.head_live) c.head_at -= keep;
      return true;
    }
    const std::size_t unread_cap = is_limited(limits.max_unread_input) ? limits.max_unread_input : (1u << 30);
    const std::size_t max_cap = parser_limits.max_head_bytes + unread_cap + 1;
    if (c.in_cap >= max_cap) return false;
    const std::size_t cap = c.in_cap * 2 < max_cap ? c.in_cap * 2 : max_cap;
    detail::unique_array<char> grown(new (std::nothrow) char[cap]);
    if (!grown) return false;
    std::memcpy(grown.get(), c.in.get(), c.in_len);
    c.in = std::move(grown);
    c.in_cap = cap;
    return true;
  }

  void readable(conn& c, short what) noexcept {
    if (c.closed) return;
    if (!c.eof) {
      if (c.session) {
        if (!read_session(c)) return;
        // Not a byte of a request yet (the handshake goes on, or is just done): nothing to
        // parse, and the head deadline set at accept keeps running (process() would
        // take the connection for an idle one between requests).
        if (c.seq == 0 && c.ph == lean_phase::none && c.in_len == 0 && !c.eof) return;
      } else {
        if (!make_room(c)) {
          close(c, close_reason::limit_exceeded);
          return;
        }
        const ssize_t n = ::recv(c.fd, c.in.get() + c.in_len, c.in_cap - c.in_len, 0);
        if (n > 0) {
          c.in_len += static_cast<std::size_t>(n);
        } else if (n == 0) {
          c.eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          close(c, errno == ECONNRESET ? close_reason::peer_reset : close_reason::error);
          return;
        }
      }
    } else if (what & EV_CLOSED) {
      close(c, close_reason::peer_closed);
      return;
    }
    // Input nobody reads yet (a request is handled, held or answered) is bounded.
    if ((c.ph == lean_phase::pending || c.ph == lean_phase::streaming || c.pending_output() > 0) &&
        c.unread() > (limits.max_unread_input < policy_input_limit ? limits.max_unread_input : policy_input_limit)) {
      close(c, close_reason::limit_exceeded);
      return;
    }
    process(c);
    if (c.closed) return;
    if (c.eof) {
      // The client is gone (a half-close counts as a hang-up): what is still owed to it
      // is abandoned; what was answered is written first.
      if (c.ph == lean_phase::pending || c.ph == lean_phase::streaming) {
        close(c, close_reason::peer_closed);
      } else {
        if (c.pending_output() > 0) flush(c);
        if (c.closed) return;
        if (c.pending_output() == 0) {
          close(c, close_reason::peer_closed);
        } else {  // a half-closed client still reads: finish writing, then close
          event_del(c.rd);  // EV_CLOSED is level-triggered
          c.close_after_write = true;
          c.after_write_reason = close_reason::peer_closed;
        }
      }
    }
  }

  /// readable() through the transport (TLS). A session may hold decrypted input the
  /// socket no longer signals (a record larger than the room left): it is read now, or a
  /// pipelined request would wait for the client's next bytes. False if `c` was closed.
  [[gnu::noinline]] bool read_session(conn& c) noexcept {
    c.read_wants_write = false;
    for (;;) {
      if (!make_room(c)) {
        close(c, close_reason::limit_exceeded);
        return false;
      }
      lean_io_wait wait = lean_wait_none;
      const ssize_t n = transport.read(c.session, c.in.get() + c.in_len, c.in_cap - c.in_len, &wait);
      if (n > 0) {
        c.in_len += static_cast<std::size_t>(n);
        if (transport.pending(c.session)) continue;
        return true;
      }
      if (n == 0) {  // close_notify, or a FIN without it: both are the client's hang-up
        c.eof = true;
        return true;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        if (wait == lean_wait_writable) {  // the handshake's flight did not fit the socket
          c.read_wants_write = true;
          c.writing = true;
          event_add(c.wr, nullptr);  // idempotent
        }
        return true;
      }
      close(c, errno == ECONNRESET   ? close_reason::peer_reset
               : errno == EPROTO     ? close_reason::protocol_error  // not TLS, a failed handshake
                                     : close_reason::error);
      return false;
    }
  }

  // ----- parse and dispatch ---------------------------------------------------------

  /// Parses and answers what is buffered, in order, until a request waits for its reply,
  /// the input runs out or the output backs up; then writes what was queued.
  void process(conn& c) noexcept {
    if (c.in_handler || c.closed) return;
    while (!c.closed) {
      if (c.ph == lean_phase::pending || c.ph == lean_phase::streaming) break;
      if (c.close_after_write || c.pending_output() > output_pause) break;
      if (!c.parser && !take_parser(c)) {
        close(c, close_reason::error);
        return;
      }
      const http1::parse_step step = c.parser->parse(c.in.get() + c.in_pos, c.in_len - c.in_pos);
      if (step.event == http1::parse_event::need_more) {
        if (c.unread() != 0 && c.deadline_kind == lean_deadline::idle) set_deadline(c, lean_deadline::head);
        break;
      }
      if (step.event == http1::parse_event::head) {
        c.head_at = c.in_pos;
        c.head_live = true;
        c.in_pos += step.consumed;
        const http1::request_head& h = c.parser->head();
        c.keep_alive = h.keep_alive && !draining;  // during a drain, every reply closes
        c.minor = h.version_minor;
        c.is_head = h.is_head();
        c.body.clear();
        if ((h.method_bits & allowed_methods) == 0) {  // as evhttp: 501 before any handler
          refuse(c, 501, close_reason::protocol_error);
          break;
        }
        if (h.expect_unsupported) {
          refuse(c, 417, close_reason::protocol_error);
          break;
        }
        if (h.has_body()) {
          if (h.expect_continue) c.out.append(http1::continue_response);
          set_deadline(c, lean_deadline::body);
        }
        continue;
      }
      if (step.event == http1::parse_event::body) {
        c.body.append(c.in.get() + c.in_pos + step.data_offset, step.data_size);
        c.in_pos += step.consumed;
        continue;
      }
      if (step.event == http1::parse_event::end) {
        c.in_pos += step.consumed;
        run_handler(c);
        c.head_live = false;
        continue;
      }
      if (step.event == http1::parse_event::closed) {  // after `Connection: close`: nothing more
        c.in_pos = c.in_len;
        break;
      }
      // parse_event::error
      const http1::parse_error e = c.parser->error();
      const int status = http1::status_of(e);
      if (status != 413 && status != 431 && status != 414) {
        server_event ev{server_event_kind::request_rejected};
        ev.status = status;
        ev.what = http1::message_of(e);
        ev.peer_address = c.peer_address();
        ev.peer_port = c.peer_port();
        report(ev);
        if (c.closed) return;
      }
      refuse(c, status, status == 413 || status == 431 || status == 414 ? close_reason::limit_exceeded
                                                                         : close_reason::protocol_error);
      break;
    }
    if (!c.head_live && c.in_pos == c.in_len) c.in_pos = c.in_len = 0;
    const bool between_messages = !c.head_live && c.unread() == 0 && (!c.parser || !c.parser->in_body());
    if (between_messages && c.keep_alive && !c.close_after_write) park_parser(c);
    if (!c.closed && c.pending_output() > 0) flush(c);
    if (!c.closed) shed_buffers(c);
    if (!c.closed && c.ph != lean_phase::pending && c.ph != lean_phase::streaming && c.pending_output() == 0 &&
        between_messages && c.deadline_kind != lean_deadline::idle)
      set_deadline(c, lean_deadline::idle);
  }

  // ----- parsers: lent to connections while they parse or handle a message -------------

  std::vector<detail::unique_owner<http1::request_parser>> spare_parsers;
  static constexpr std::size_t max_spare_parsers = 256;

  bool take_parser(conn& c) noexcept {
    if (!spare_parsers.empty()) {
      c.parser = spare_parsers.back().release();
      spare_parsers.pop_back();
    } else {
      c.parser = new (std::nothrow) http1::request_parser;
      if (!c.parser) return false;
    }
    c.parser->set_limits(parser_limits);
    c.parser->reset();  // the state of a new connection: between messages, nothing is lost
    return true;
  }

  /// Gives `c`'s parser back (between messages only: it holds no state then).
  void park_parser(conn& c) noexcept {
    if (!c.parser) return;
    detail::unique_owner<http1::request_parser> p(std::exchange(c.parser, nullptr));
    if (spare_parsers.size() >= max_spare_parsers) return;  // freed
    try {
      spare_parsers.push_back(std::move(p));
    } catch (...) {  // freed
    }
  }

  void run_handler(conn& c) noexcept;

  /// Answers a request the parser (or a deadline) refused, before any handler: the
  /// status, Connection: close, then the connection closes once it is written.
  void refuse(conn& c, int status, close_reason why) noexcept {
    if (c.closed) return;
    const std::string_view line = http1::status_line(status);
    c.out.append(line);
    c.out.append("Content-Length: 0\r\nConnection: close\r\n");
    append_date(c);
    c.out.append("\r\n");
    c.close_after_write = true;
    c.after_write_reason = why;
    c.keep_alive = false;
    if (!c.in_handler) flush(c);
  }

  void append_date(conn& c) noexcept {
    const std::string_view date = dates.view(base);
    if (date.empty()) return;
    c.out.append(http1::date_prefix);
    c.out.append(date);
    c.out.append("\r\n");
  }

  // ----- replies --------------------------------------------------------------------

  static std::error_code phase_error(lean_phase ph, bool want_pending) noexcept {
    switch (ph) {
      case lean_phase::pending: return want_pending ? std::error_code{} : make_error_code(errc::reply_not_started);
      case lean_phase::streaming: return want_pending ? make_error_code(errc::reply_started) : std::error_code{};
      case lean_phase::none:
      case lean_phase::done: return make_error_code(errc::reply_finished);
      case lean_phase::aborted: return make_error_code(errc::peer_gone);
    }
    return make_error_code(errc::peer_gone);
  }

  /// The value of the first `name` line of `lines` ("Name: value\r\n" each), if any.
  static std::optional<std::string_view> header_value(const std::string& lines, std::string_view name) noexcept {
    std::size_t at = 0;
    while (at < lines.size()) {
      const std::size_t colon = lines.find(':', at);
      if (colon == std::string::npos) break;
      const std::size_t eol = lines.find("\r\n", colon);
      if (eol == std::string::npos) break;
      if (http1::detail::iequals(std::string_view(lines).substr(at, colon - at), name)) {
        std::string_view v = std::string_view(lines).substr(colon + 1, eol - colon - 1);
        while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
        return v;
      }
      at = eol + 2;
    }
    return std::nullopt;
  }
  /// True if `lines` has a `name` line (on every reply: the names only are compared).
  static bool has_header(const std::string& lines, std::string_view name) noexcept {
    std::size_t at = 0;
    while (at < lines.size()) {
      const std::size_t colon = lines.find(':', at);
      if (colon == std::string::npos) break;
      if (http1::detail::iequals(std::string_view(lines).substr(at, colon - at), name)) return true;
      const std::size_t eol = lines.find("\r\n", colon);
      if (eol == std::string::npos) break;
      at = eol + 2;
    }
    return false;
  }

  /// How a reply's head frames its body: Content-Length of the body given, chunked, or
  /// the Content-Length the application set (start_sized()).
  enum class head_framing : std::uint8_t { length, chunked, declared };

  /// The head of a reply: status line, the application's fields, the framing fields,
  /// Date and Connection.
  void append_head(conn& c, int status, const char* reason, std::uint64_t length, bool chunked,
                   head_framing framing = head_framing::length) noexcept {
    if (chunked) framing = head_framing::chunked;
    if (reason) {
      char code[4] = {static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                      static_cast<char>('0' + status % 10), ' '};
      c.out.append("HTTP/1.1 ");
      c.out.append(code, 4);
      c.out.append(reason);
      c.out.append("\r\n");
    } else {
      c.out.append(http1::status_line(status));
    }
    c.out.append(c.reply_headers);
    if (!default_content_type.empty() && http1::content_length_allowed(status) &&
        (framing != head_framing::length || length != 0) && !has_header(c.reply_headers, "Content-Type")) {
      c.out.append(http1::content_type_prefix);
      c.out.append(default_content_type);
      c.out.append("\r\n");
    }
    if (framing == head_framing::chunked) {
      c.out.append(http1::transfer_encoding_chunked);
    } else if (framing == head_framing::length && http1::content_length_allowed(status)) {
      char digits[24];
      c.out.append(http1::content_length_prefix);
      c.out.append(tether::detail::to_decimal(static_cast<std::uint64_t>(length), digits));
      c.out.append("\r\n");
    }
    append_date(c);
    c.out.append(http1::connection_line(c.keep_alive, c.minor));
    c.out.append("\r\n");
  }

  /// A complete reply.
  std::error_code reply(conn& c, int status, const char* reason, const lean_piece& body) noexcept {
    if (c.ph != lean_phase::pending) return phase_error(c.ph, true);
    if (!valid_status(status) || !valid_reason(reason)) return make_error_code(errc::invalid_argument);
    if (body.file && !body.file->segment) return make_error_code(errc::file_error);
    const std::unique_ptr<std::string> first = std::move(c.output);  // request::output()
    append_head(c, status, reason, (first ? first->size() : 0) + body.size(), false);
    // Head and body leave together: one writev when the body is a reference, sendfile
    // after the head for a file range.
    if (http1::response_has_content(status, c.is_head)) {
      if (first) [[unlikely]]
        c.out.append(*first);
      if (!body.by_reference()) {
        c.out.append(body.bytes);  // the common case: copied, as before
      } else if (!queue_piece(c, body, 0)) {
        close(c, close_reason::error);
        return make_error_code(errc::file_error);
      }
    }
    complete(c);
    return {};
  }
  /// A complete reply whose body is copied (the common case, kept small enough to inline).
  std::error_code reply(conn& c, int status, const char* reason, std::string_view body) noexcept {
    if (c.ph != lean_phase::pending) return phase_error(c.ph, true);
    if (!valid_status(status) || !valid_reason(reason)) return make_error_code(errc::invalid_argument);
    if (c.output) [[unlikely]]
      return reply_after_output(c, status, reason, body);
    append_head(c, status, reason, body.size(), false);
    if (http1::response_has_content(status, c.is_head)) c.out.append(body);
    complete(c);
    return {};
  }

  /// A reply whose body starts with what the application put in request::output(), as on
  /// the evhttp engine (its output buffer, then the body given to reply()).
  [[gnu::noinline]] std::error_code reply_after_output(conn& c, int status, const char* reason,
                                                       std::string_view body) noexcept {
    const std::unique_ptr<std::string> first = std::move(c.output);
    append_head(c, status, reason, first->size() + body.size(), false);
    if (http1::response_has_content(status, c.is_head)) {
      c.out.append(*first);
      c.out.append(body);
    }
    complete(c);
    return {};
  }

  /// The reply is queued: the next request may be parsed (from the read buffer), and the
  /// connection closes once it is written if the request asked for that.
  void complete(conn& c) noexcept {
    c.ph = lean_phase::done;
    c.held = false;
    ++c.seq;  // handles of this request are stale from now on
    if (!c.keep_alive) {
      c.close_after_write = true;
      c.after_write_reason = close_reason::completed;
    }
    if constexpr (flow_t::bounded) {
      c.flow.paused = false;
      if (c.flow.slow_timer) event_del(c.flow.slow_timer);
    }
    if (c.watchers) [[unlikely]] {
      completed_with_watchers(c);
      return;
    }
    if (!c.in_handler) after_reply_outside(c);
  }

  /// The exchange is over once its last bytes are queued (the evhttp engine: once
  /// written): hooks hear it now, before the connection may close after the write.
  [[gnu::noinline]] void completed_with_watchers(conn& c) noexcept {
    c.add_ref();
    c.notify_watchers(close_reason::completed, false);
    if (!c.in_handler && !c.closed) after_reply_outside(c);
    c.release();
  }

  /// A reply made outside a handler (from a handle): write it now, and serve what was
  /// pipelined behind it.
  void after_reply_outside(conn& c) noexcept {
    c.add_ref();
    flush(c);
    if (!c.closed) process(c);
    c.release();
  }

  std::error_code send_error(conn& c, int status, const char* reason) noexcept {
    if (c.ph != lean_phase::pending) return phase_error(c.ph, true);
    if (!valid_status(status) || !valid_reason(reason)) return make_error_code(errc::invalid_argument);
    c.keep_alive = false;  // as evhttp's error page: Connection: close
    // ... and its headers replace the application's (evhttp_send_page_ clears them), its
    // body what request::output() holds (the evhttp engine drains it too).
    c.reply_headers.assign("Content-Type: text/html\r\n");
    c.output.reset();
    // evhttp's error page, without printf: "<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>...".
    const std::string_view phrase = reason ? std::string_view(reason) : http1::reason_phrase(status);
    const char code[3] = {static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                          static_cast<char>('0' + status % 10)};
    static constexpr std::string_view a = "<HTML><HEAD>\n<TITLE>", b = "</TITLE>\n</HEAD><BODY>\n<H1>",
                                      z = "</H1>\n</BODY></HTML>\n";
    const std::size_t length = a.size() + 4 + phrase.size() + b.size() + phrase.size() + z.size();
    append_head(c, status, reason, length, false);
    if (http1::response_has_content(status, c.is_head)) {
      c.out.append(a);
      c.out.append(code, 3);
      c.out.append(" ");
      c.out.append(phrase);
      c.out.append(b);
      c.out.append(phrase);
      c.out.append(z);
    }
    complete(c);
    return {};
  }

  std::error_code start(conn& c, int status, const char* reason) noexcept {
    if (c.ph != lean_phase::pending) return phase_error(c.ph, true);
    if (!valid_status(status) || !valid_reason(reason)) return make_error_code(errc::invalid_argument);
    if (has_header(c.reply_headers, "Content-Length")) {
      // start_sized(): the application's Content-Length frames the body, on HTTP/1.0 too;
      // the connection stays open after it as the request allows.
      c.chunked_reply = false;
      c.sized_reply = true;
      append_head(c, status, reason, 0, false, head_framing::declared);
      return started(c);
    }
    c.sized_reply = false;
    c.chunked_reply = c.minor >= 1 && http1::response_has_content(status, c.is_head);
    if (c.minor == 0) c.keep_alive = false;  // no chunked encoding: the body ends at the close
    if (c.chunked_reply) {
      append_head(c, status, reason, 0, true);
    } else {
      // HTTP/1.0 (or no content): the head without framing fields; the body, if any,
      // ends when the connection closes.
      append_head_unframed(c, status, reason);
      c.keep_alive = false;
    }
    return started(c);
  }

  /// The head is queued: the stream is on. What request::output() holds is its first
  /// bytes, framed as the stream frames them (the evhttp engine writes them unframed
  /// after the head, which only a sized or an HTTP/1.0 reply survives).
  std::error_code started(conn& c) noexcept {
    c.ph = lean_phase::streaming;
    if (c.output) [[unlikely]] {
      // Queued behind the head as the head is: no flow control applies to them yet.
      const std::unique_ptr<std::string> first = std::move(c.output);
      if (!c.is_head && !first->empty()) {
        const http1::chunk_header h(first->size());
        if (c.chunked_reply) c.out.append(h.view());
        c.out.append(*first);
        if (c.chunked_reply) c.out.append(http1::chunk_end);
      }
    }
    if (!c.in_handler) flush(c);
    return {};
  }

  void append_head_unframed(conn& c, int status, const char* reason) noexcept {
    if (reason) {
      c.out.append("HTTP/1.1 ");
      char code[4] = {static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                      static_cast<char>('0' + status % 10), ' '};
      c.out.append(code, 4);
      c.out.append(reason);
      c.out.append("\r\n");
    } else {
      c.out.append(http1::status_line(status));
    }
    c.out.append(c.reply_headers);
    append_date(c);
    c.out.append(http1::connection_close);
    c.out.append("\r\n");
  }

  /// Queues one chunk made of `pieces` on a streamed reply.
  std::error_code chunk(conn& c, const lean_piece* pieces, std::size_t n) noexcept {
    if (c.ph != lean_phase::streaming) return phase_error(c.ph, false);
    std::uint64_t total = 0;
    bool has_file = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (pieces[i].file && !pieces[i].file->segment) return make_error_code(errc::file_error);
      total += pieces[i].size();
      has_file = has_file || pieces[i].file;
    }
    if (total == 0 || c.is_head) return {};
    const http1::chunk_header h(total);
    const std::string_view head = c.chunked_reply ? h.view() : std::string_view{};
    const std::string_view tail = c.chunked_reply ? http1::chunk_end : std::string_view{};
    if constexpr (flow_t::bounded) {
      using action = typename flow_t::action;
      const bool parked = std::is_same_v<action, slow_consumer::coalesce> && c.flow.has_parked;
      if (parked || c.pending_output() >= flow_t::high_water) {
        c.flow.paused = true;
        if constexpr (std::is_same_v<action, slow_consumer::drop>) {
          return make_error_code(errc::dropped);
        } else if constexpr (std::is_same_v<action, slow_consumer::coalesce>) {
          // The newest chunk replaces the parked one; drained() sends it at the low mark.
          c.flow.parked.clear();
          c.flow.parked.append(head);
          for (std::size_t i = 0; i < n; ++i)
            if (!copy_piece(c.flow.parked, pieces[i])) return make_error_code(errc::file_error);
          c.flow.parked.append(tail);
          c.flow.has_parked = true;
          return {};
        } else {
          arm_slow_timer(c);
          return make_error_code(errc::would_block);
        }
      }
    }
    if (is_limited(limits.max_pending_output) && c.pending_output() + total + 32 > limits.max_pending_output) {
      close(c, close_reason::slow_consumer);
      return make_error_code(errc::limit_exceeded);
    }
    if (!c.in_handler && c.pending_output() == 0 && !has_file && n + 2 <= 8) {
      // Outside a handler with nothing queued (an SSE event, a tick): one writev of the
      // framing and the caller's bytes, no copy; only what the socket refuses is queued.
      http1::iovec_list<8> iov;
      if (!head.empty()) iov.push(head);
      for (std::size_t i = 0; i < n; ++i)
        if (!pieces[i].bytes.empty()) iov.push(pieces[i].bytes);
      if (!tail.empty()) iov.push(tail);
      ssize_t w;
      do w = c.session ? write_session(c, iov.data(), static_cast<int>(iov.count())) : ::writev(c.fd, iov.data(), iov.count());
      while (w < 0 && errno == EINTR);
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        close(c, errno == ECONNRESET || errno == EPIPE ? close_reason::peer_reset : close_reason::error);
        return make_error_code(errc::peer_gone);
      }
      const std::uint64_t written = w > 0 ? static_cast<std::uint64_t>(w) : 0;
      if (written == head.size() + total + tail.size()) return {};
      if (!queue_wire(c, head, pieces, n, tail, written)) {  // the rest; references stay references
        close(c, close_reason::error);
        return make_error_code(errc::file_error);
      }
      flush(c);  // arms EV_WRITE
      return {};
    }
    if (!queue_wire(c, head, pieces, n, tail, 0)) {
      close(c, close_reason::error);  // a part of the chunk may be queued: the body is cut
      return make_error_code(errc::file_error);
    }
    if (!c.in_handler) flush(c);
    return {};
  }
  std::error_code chunk(conn& c, std::string_view bytes) noexcept {
    lean_piece p;
    p.bytes = bytes;
    return chunk(c, &p, 1);
  }

  // ----- output pieces: copies into `out`, references and file ranges as segments -------

  /// Queues `head`, the pieces and `tail` in order, less their first `skip` bytes (which
  /// were written). False if a file range could be neither referenced nor read.
  bool queue_wire(conn& c, std::string_view head, const lean_piece* pieces, std::size_t n, std::string_view tail,
                  std::uint64_t skip) noexcept {
    auto bytes = [&](std::string_view b) {
      if (skip >= b.size()) {
        skip -= b.size();
        return;
      }
      c.out.append(b.substr(static_cast<std::size_t>(skip)));
      skip = 0;
    };
    bytes(head);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t size = pieces[i].size();
      if (skip >= size) {
        skip -= size;
        continue;
      }
      if (!queue_piece(c, pieces[i], skip)) return false;
      skip = 0;
    }
    bytes(tail);
    return true;
  }

  /// Queues `p` less its first `skip` bytes: copied into `out`, or as a segment that
  /// holds the shared block, the static bytes or a duplicate of the file's descriptor.
  bool queue_piece(conn& c, const lean_piece& p, std::uint64_t skip) noexcept {
    const std::uint64_t size = p.size();
    if (skip >= size) return true;
    lean_segment s;
    s.size = size - skip;
    if (p.file) {
      s.k = lean_segment::kind::file;
      s.fd = ::fcntl(p.file->fd, F_DUPFD_CLOEXEC, 0);
      s.at = p.file->offset + skip;
      if (s.fd < 0) {  // no descriptor left: read the range into the output instead
        lean_piece rest = p;
        file_range r = *p.file;
        r.offset += skip;
        r.length -= skip;
        rest.file = &r;
        const std::size_t before = c.out.size();
        if (copy_piece(c.out, rest)) return true;
        c.out.resize(before);
        return false;
      }
    } else if (p.shared || p.fixed) {
      s.k = p.shared ? lean_segment::kind::shared : lean_segment::kind::fixed;
      s.data = p.bytes.data() + skip;
      if (p.shared) s.token = p.shared->retain_for_libevent();
    } else {
      c.out.append(p.bytes.substr(static_cast<std::size_t>(skip)));
      return true;
    }
    push_segment(c, s);
    return true;
  }

  /// Appends the bytes of `p` to `to` (a file range is read).
  static bool copy_piece(std::string& to, const lean_piece& p) noexcept {
    if (!p.file) {
      to.append(p.bytes);
      return true;
    }
    std::uint64_t at = p.file->offset, left = p.file->length;
    char buf[16 * 1024];
    while (left > 0) {
      const ssize_t r = ::pread(p.file->fd, buf, static_cast<std::size_t>(std::min<std::uint64_t>(left, sizeof buf)),
                                static_cast<off_t>(at));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      to.append(buf, static_cast<std::size_t>(r));
      at += static_cast<std::uint64_t>(r);
      left -= static_cast<std::uint64_t>(r);
    }
    return true;
  }

  static void push_segment(conn& c, const lean_segment& s) noexcept {
    if (c.out.size() > c.out_off) {  // what `out` holds so far goes first
      lean_segment t;
      t.at = c.out_off;
      t.size = c.out.size() - c.out_off;
      c.segs.push_back(t);
      c.seg_bytes += t.size;
      c.out_off = c.out.size();
    }
    c.segs.push_back(s);
    c.seg_bytes += s.size;
  }

  static void release_segments(conn& c) noexcept {
    for (std::size_t i = c.seg_head; i < c.segs.size(); ++i) c.segs[i].release();
    c.segs.clear();
    c.seg_head = 0;
    c.seg_bytes = 0;
  }

  /// The runs of bytes from the head segment up to the first file segment (at most 32),
  /// and `out`'s tail after them when every segment fits; returns how many.
  static int gather_segments(const conn& c, iovec (&iov)[32]) noexcept {
    int k = 0;
    std::size_t i = c.seg_head;
    for (; i < c.segs.size() && k < 32; ++i) {
      const lean_segment& s = c.segs[i];
      if (s.k == lean_segment::kind::file) break;
      const char* p = s.k == lean_segment::kind::copied ? c.out.data() + s.at : s.data;
      iov[k++] = iovec{const_cast<char*>(p), static_cast<std::size_t>(s.size)};
    }
    if (i == c.segs.size() && k < 32 && c.out.size() > c.out_off)
      iov[k++] = iovec{const_cast<char*>(c.out.data()) + c.out_off, c.out.size() - c.out_off};
    return k;
  }

  /// One write of the segments (and of `out`'s tail after them): a writev of up to 32
  /// runs of bytes, or a sendfile of the file range at the head.
  static ssize_t write_segments(conn& c) noexcept {
    lean_segment& first = c.segs[c.seg_head];
    if (first.k == lean_segment::kind::file) {
      off_t at = static_cast<off_t>(first.at);
      const ssize_t n = ::sendfile(c.fd, first.fd, &at,
                                   static_cast<std::size_t>(std::min<std::uint64_t>(first.size, 1u << 30)));
      if (n == 0) errno = EIO;  // the file is shorter than the range: the body cannot be completed
      return n == 0 ? -1 : n;
    }
    iovec iov[32];
    const int k = gather_segments(c, iov);
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = static_cast<std::size_t>(k);
    return ::sendmsg(c.fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  static void consume_segments(conn& c, std::uint64_t n) noexcept {
    while (n > 0 && c.seg_head < c.segs.size()) {
      lean_segment& s = c.segs[c.seg_head];
      const std::uint64_t take = std::min(n, s.size);
      s.size -= take;
      c.seg_bytes -= take;
      n -= take;
      if (s.k == lean_segment::kind::shared || s.k == lean_segment::kind::fixed) s.data += take;
      else s.at += take;
      if (s.size == 0) {
        s.release();
        ++c.seg_head;
      }
    }
    c.out_off += static_cast<std::size_t>(n);  // the tail after the segments
    if (c.seg_head == c.segs.size()) {
      c.segs.clear();
      c.seg_head = 0;
    }
  }

  // ----- bounded buffer policies ----------------------------------------------------

  /// After a write: at or below the low-water mark, the parked chunk goes out and a
  /// producer that was refused is told it may write again.
  void drained(conn& c) noexcept {
    if constexpr (flow_t::bounded) {
      if (c.closed || c.ph != lean_phase::streaming || c.pending_output() > flow_t::low_water) return;
      if (c.flow.slow_timer) event_del(c.flow.slow_timer);
      if (c.flow.has_parked) {
        c.flow.has_parked = false;
        c.out.append(c.flow.parked);
        c.flow.parked.clear();
        flush(c);
        if (c.closed) return;
      }
      if (c.flow.paused) {
        c.flow.paused = false;
        c.notify_writable();
      }
    } else {
      (void)c;
    }
  }

  void arm_slow_timer(conn& c) noexcept {
    if constexpr (flow_t::bounded && is_disconnect<typename flow_t::action>::value) {
      if (!c.flow.slow_timer && !(c.flow.slow_timer = event_new(base, -1, 0, &on_slow_timer, &c))) return;
      if (event_pending(c.flow.slow_timer, EV_TIMEOUT, nullptr)) return;
      constexpr long ms = static_cast<long>(flow_t::action::deadline.count());
      const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
      event_add(c.flow.slow_timer, &tv);
    } else {
      (void)c;
    }
  }

  static void on_slow_timer(evutil_socket_t, short, void* arg) noexcept {
    auto& c = *static_cast<conn*>(arg);
    if constexpr (flow_t::bounded) {
      if (!c.closed && c.ph == lean_phase::streaming && c.pending_output() > flow_t::low_water)
        c.core->close(c, close_reason::slow_consumer);
    }
  }

  /// A connection whose reply streams, with nothing read or queued, gives its buffers
  /// back: an idle stream costs its connection object and two events, not 5 KiB of
  /// buffers (they come back on the next read, or when a write is refused).
  static void shed_buffers(conn& c) noexcept {
    if (c.ph != lean_phase::streaming || c.in_handler || c.head_live) return;
    if (c.unread() == 0 && c.in_cap != 0) {
      c.in.reset();
      c.in_cap = c.in_len = c.in_pos = 0;
    }
    if (c.pending_output() == 0 && c.out.capacity() != 0) std::string().swap(c.out);
    if (c.pending_output() == 0 && c.segs.capacity() != 0) std::vector<lean_segment>().swap(c.segs);
    std::string().swap(c.body);
    std::string().swap(c.reply_headers);
  }

  std::error_code end(conn& c) noexcept {
    if (c.ph != lean_phase::streaming) return phase_error(c.ph, false);
    if constexpr (flow_t::bounded) {
      if (c.flow.has_parked) c.out.append(c.flow.parked);
      c.flow.has_parked = false;
      c.flow.parked.clear();
    }
    if (c.chunked_reply) c.out.append(http1::last_chunk);
    complete(c);
    return {};
  }

  // ----- writes through the transport (TLS) ------------------------------------------

  /// One write of `iov` through the session; remembers whether it waits for readability.
  ssize_t write_session(conn& c, const iovec* iov, int n) noexcept {
    lean_io_wait wait = lean_wait_none;
    const ssize_t w = transport.write(c.session, iov, n, &wait);
    c.write_wants_read = w < 0 && errno == EAGAIN && wait == lean_wait_readable;
    return w;
  }

  /// flush()'s one write under a session: the segments' runs of bytes (then `out`'s tail)
  /// gathered, or up to 16 KiB of the file range at the head, read and handed over to be
  /// encrypted (no sendfile: the kernel cannot encrypt). A retry after EAGAIN starts at the
  /// same byte with at least as many bytes, as TLS requires.
  [[gnu::noinline]] ssize_t write_session(conn& c) noexcept {
    if (c.seg_head == c.segs.size()) {
      const iovec one{c.out.data() + c.out_off, c.out.size() - c.out_off};
      return write_session(c, &one, 1);
    }
    const lean_segment& first = c.segs[c.seg_head];
    if (first.k == lean_segment::kind::file) {
      char buf[16 * 1024];
      ssize_t r;
      do r = ::pread(first.fd, buf, static_cast<std::size_t>(std::min<std::uint64_t>(first.size, sizeof buf)),
                     static_cast<off_t>(first.at));
      while (r < 0 && errno == EINTR);
      if (r <= 0) {
        errno = EIO;  // the file is shorter than the range: the body cannot be completed
        return -1;
      }
      const iovec one{buf, static_cast<std::size_t>(r)};
      return write_session(c, &one, 1);
    }
    iovec iov[32];
    return write_session(c, iov, gather_segments(c, iov));
  }

  /// A session's write could not go on. `writing` says a write is owed (flush() ends it
  /// and the send deadline once all is written); EV_WRITE is armed only if the write
  /// waits for writability. If it waits for the client's bytes (a handshake message),
  /// EV_WRITE would fire at once and again: the read event, always on, retries the write
  /// (process() flushes).
  [[gnu::noinline]] void session_blocked(conn& c) noexcept {
    if (c.write_wants_read) {
      if (!c.read_wants_write) event_del(c.wr);
    } else {
      event_add(c.wr, nullptr);  // idempotent: it may be armed already
    }
    c.writing = true;
    if (c.deadline_kind != lean_deadline::send) set_deadline(c, lean_deadline::send);
  }

  // ----- write ----------------------------------------------------------------------

  /// Writes what is queued: one send() in the common case; EV_WRITE only when the socket
  /// refuses bytes. Closes the connection after the last byte if it was to close.
  void flush(conn& c) noexcept {
    if (c.closed) return;
    while (c.pending_output() > 0) {
      // References and file ranges (only once one was queued), with `out`'s tail after them.
      const bool segments = c.seg_head < c.segs.size();
      const ssize_t n = c.session  ? write_session(c)
                        : segments ? write_segments(c)
                                   : ::send(c.fd, c.out.data() + c.out_off, c.pending_output(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        if (segments) consume_segments(c, static_cast<std::uint64_t>(n));
        else c.out_off += static_cast<std::size_t>(n);
        if (c.deadline_kind == lean_deadline::send) set_deadline(c, lean_deadline::send);  // progress
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (c.session) {
          session_blocked(c);
          return;
        }
        if (!c.writing) {
          c.writing = true;
          event_add(c.wr, nullptr);
          set_deadline(c, lean_deadline::send);
        }
        return;
      }
      close(c, errno == ECONNRESET || errno == EPIPE ? close_reason::peer_reset : close_reason::error);
      return;
    }
    c.out.clear();
    c.out_off = 0;
    if (c.writing && !c.read_wants_write) {
      c.writing = false;
      event_del(c.wr);
      if (c.deadline_kind == lean_deadline::send) c.deadline_kind = lean_deadline::none;
      shed_buffers(c);
    }
    if (c.close_after_write) close(c, c.after_write_reason);
  }
};

}  // namespace detail

// ===== the request, its handle and its connection ===================================

/// A view of a lean request's header fields (the client's, in the order sent): views
/// into the connection's read buffer, valid until the handler returns.
class lean_input_headers {
 public:
  /// Binds the parser's view of the head.
  explicit lean_input_headers(const http1::request_view& v) noexcept : v_(v) {}
  /// The value of the first `name` field (ASCII case-insensitive), if any.
  std::optional<std::string_view> find(std::string_view name) const noexcept { return v_.find(name); }
  /// True if there is at least one `name` field.
  bool contains(std::string_view name) const noexcept { return v_.find(name).has_value(); }
  /// How many field lines the head has.
  std::size_t size() const noexcept { return v_.field_count(); }
  /// True if the head has no field line.
  bool empty() const noexcept { return v_.field_count() == 0; }

  /// Walks the fields in the order sent; yields header_field by value.
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;  ///< multi-pass
    using value_type = header_field;                      ///< what dereferencing gives
    using difference_type = std::ptrdiff_t;               ///< distance between positions
    using pointer = void;                                 ///< no operator->
    using reference = header_field;                       ///< a value, not a reference
    iterator() = default;
    /// Field `i` of `v`.
    iterator(const http1::request_view* v, std::size_t i) noexcept : v_(v), i_(i) {}
    /// The field at this position.
    header_field operator*() const noexcept {
      const auto f = v_->field(i_);
      return {f.name, f.value};
    }
    /// Moves to the next field.
    iterator& operator++() noexcept {
      ++i_;
      return *this;
    }
    /// Moves to the next field; returns the position before.
    iterator operator++(int) noexcept {
      auto old = *this;
      ++i_;
      return old;
    }
    friend bool operator==(iterator a, iterator b) noexcept { return a.i_ == b.i_; }

   private:
    const http1::request_view* v_ = nullptr;
    std::size_t i_ = 0;
  };
  /// The first field.
  iterator begin() const noexcept { return iterator(&v_, 0); }
  /// Past the last field.
  iterator end() const noexcept { return iterator(&v_, v_.field_count()); }

 private:
  http1::request_view v_;
};

/// A lean request's body: bytes read whole before the handler ran, with the reading
/// calls of buffer_ref (size, empty, to_string, find, linearize) and a view.
class lean_body_ref {
 public:
  /// Views `bytes` (the connection's body buffer).
  explicit lean_body_ref(std::string_view bytes) noexcept : b_(bytes) {}
  /// Bytes in the body.
  std::size_t size() const noexcept { return b_.size(); }
  /// True for an empty body.
  bool empty() const noexcept { return b_.empty(); }
  /// A copy of the body.
  std::string to_string() const { return std::string(b_); }
  /// Where `what` starts in the body, if it occurs.
  std::optional<std::size_t> find(std::string_view what) const noexcept {
    const auto at = b_.find(what);
    if (at == std::string_view::npos) return std::nullopt;
    return at;
  }
  /// The first `n` bytes (all of them if `n` is larger), contiguous already.
  std::string_view linearize(std::size_t n) const noexcept { return b_.substr(0, n); }
  /// The whole body (valid until the handler returns).
  std::string_view view() const noexcept { return b_; }
  /// The whole body as a view.
  operator std::string_view() const noexcept { return b_; }  // NOLINT: a view of bytes

 private:
  std::string_view b_;
};

/// The reply body buffer under the lean engine (basic_lean_request::output()), as the
/// evhttp engine's output buffer: reply() sends what it holds, then its own body;
/// reply(status) sends what it holds; start() sends it as the stream's first bytes;
/// send_error() discards it. The calls of buffer_ref but read_line(). Valid until the
/// reply is sent (or the handler returns); once a reply has started it is empty and
/// refuses bytes.
class lean_output_ref {
 public:
  /// Views the connection's output slot (null once the reply has started).
  explicit lean_output_ref(std::unique_ptr<std::string>* slot) noexcept : slot_(slot) {}

  /// Bytes in the buffer.
  std::size_t size() const noexcept { return held() ? (*slot_)->size() : 0; }
  /// True when it holds nothing (always, once the reply has started).
  bool empty() const noexcept { return size() == 0; }

  /// Appends a copy of `bytes`. Errors: errc::invalid_argument once the reply has
  /// started, std::errc::not_enough_memory if memory runs out.
  [[nodiscard]] std::error_code append(std::string_view bytes) const noexcept {
    return edit([&](std::string& s) { s.append(bytes); });
  }
  /// Appends a copy of `bytes`. Errors: as append(std::string_view).
  [[nodiscard]] std::error_code append(std::span<const std::byte> bytes) const noexcept {
    return append(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  /// Moves every byte of `other` to the end of this buffer.
  [[nodiscard]] std::error_code append_buffer(evbuffer* other) const noexcept {
    const std::size_t n = evbuffer_get_length(other);
    return edit([&](std::string& s) {
      const std::size_t at = s.size();
      s.resize(at + n);
      if (n != 0) evbuffer_remove(other, s.data() + at, n);
    });
  }
  /// Inserts a copy of `bytes` at the front.
  [[nodiscard]] std::error_code prepend(std::string_view bytes) const noexcept {
    return edit([&](std::string& s) { s.insert(0, bytes); });
  }
  /// Removes up to `n` bytes from the front.
  void drain(std::size_t n) const noexcept {
    if (held()) (*slot_)->erase(0, n);
  }
  /// Removes every byte.
  void clear() const noexcept {
    if (held()) (*slot_)->clear();
  }

  /// Copies up to `out.size()` bytes from the front without removing them; returns the
  /// number copied.
  std::size_t copy_out(std::span<char> out) const noexcept { return view().copy(out.data(), out.size()); }
  /// Copies every byte into a string, without removing them.
  std::string to_string() const { return std::string(view()); }
  /// Removes and returns every byte.
  std::string take_string() const {
    std::string s = to_string();
    clear();
    return s;
  }
  /// Offset of the first occurrence of `what`, or nothing.
  std::optional<std::size_t> find(std::string_view what) const noexcept {
    const auto at = view().find(what);
    if (at == std::string_view::npos) return std::nullopt;
    return at;
  }
  /// The first `n` bytes (all of them if `n` is larger), contiguous already.
  std::string_view linearize(std::size_t n) const noexcept { return view().substr(0, n); }

 private:
  bool held() const noexcept { return slot_ && *slot_; }
  std::string_view view() const noexcept { return held() ? std::string_view(**slot_) : std::string_view{}; }
  template <class F>
  [[nodiscard]] std::error_code edit(F&& f) const noexcept {
    if (!slot_) return make_error_code(errc::invalid_argument);
    try {
      if (!*slot_) *slot_ = std::make_unique<std::string>();
      f(**slot_);
    } catch (...) {  // std::bad_alloc, std::length_error
      return std::make_error_code(std::errc::not_enough_memory);
    }
    return {};
  }

  std::unique_ptr<std::string>* slot_;
};

/// The reply's header fields under the lean engine: add them before reply() or start().
/// Names and values are validated (no CR, LF or NUL), as headers_ref does.
class lean_output_headers {
 public:
  /// Appends to `lines` ("Name: value\r\n" each).
  explicit lean_output_headers(std::string* lines) noexcept : lines_(lines) {}
  /// Appends `name: value`. Errors: errc::invalid_argument for a bad name or value, or
  /// once the reply has started (the lines are gone then).
  [[nodiscard]] std::error_code add(std::string_view name, std::string_view value) const noexcept {
    if (!lines_ || !detail::is_header_name(name) || !detail::is_header_value(value))
      return make_error_code(errc::invalid_argument);
    lines_->append(name);
    lines_->append(": ");
    lines_->append(value);
    lines_->append("\r\n");
    return {};
  }
  /// Removes every `name` field, then adds `name: value`.
  [[nodiscard]] std::error_code set(std::string_view name, std::string_view value) const noexcept {
    if (!lines_ || !detail::is_header_name(name) || !detail::is_header_value(value))
      return make_error_code(errc::invalid_argument);
    while (remove(name)) {
    }
    return add(name, value);
  }
  /// The value of the first `name` field, if any.
  std::optional<std::string_view> find(std::string_view name) const noexcept {
    if (!lines_) return std::nullopt;
    std::string_view all(*lines_);
    while (!all.empty()) {
      const auto eol = all.find("\r\n");
      const std::string_view line = all.substr(0, eol);
      const auto colon = line.find(':');
      if (http1::detail::iequals(line.substr(0, colon), name)) return line.substr(colon + 2);
      all.remove_prefix(eol + 2);
    }
    return std::nullopt;
  }
  /// True if there is at least one `name` field.
  bool contains(std::string_view name) const noexcept { return find(name).has_value(); }
  /// Removes the first `name` field; returns whether there was one.
  bool remove(std::string_view name) const noexcept {
    if (!lines_) return false;
    std::size_t at = 0;
    while (at < lines_->size()) {
      const auto eol = lines_->find("\r\n", at);
      const auto colon = lines_->find(':', at);
      if (http1::detail::iequals(std::string_view(*lines_).substr(at, colon - at), name)) {
        lines_->erase(at, eol + 2 - at);
        return true;
      }
      at = eol + 2;
    }
    return false;
  }
  /// Removes every field.
  void clear() const noexcept {
    if (lines_) lines_->clear();
  }

 private:
  std::string* lines_;
};

namespace detail {
struct lean_access;
}

/// A view of the connection a lean request arrived on.
template <class Config>
class basic_lean_connection {
 public:
  /// The type on_close() stores the callback as.
  using callback_type = typename Config::close_callback;

  /// The client's address ("127.0.0.1", "::1"); empty once the connection is gone.
  std::string_view peer_address() const noexcept { return live() ? c_->peer_address() : std::string_view{}; }
  /// The client's port; 0 once the connection is gone.
  std::uint16_t peer_port() const noexcept { return live() ? c_->peer_port() : 0; }
  /// False once the connection is closed.
  bool open() const noexcept { return live(); }

  /// Sets the callback run once when this connection closes, whatever the reason (a
  /// second call replaces the first, which is destroyed without being called).
  /// Errors: errc::peer_gone when the connection is already gone.
  template <class F>
    requires(detail::close_callback_fault_of<callback_type, F>() == detail::close_callback_fault::none)
  [[nodiscard]] std::error_code on_close(F&& f) noexcept(std::is_nothrow_constructible_v<callback_type, F&&>) {
    if (!live()) return make_error_code(errc::peer_gone);
    c_->callback = callback_type(std::forward<F>(f));
    c_->has_callback = true;
    return {};
  }

  /// Closes the connection now (close_reason::closed_by_server).
  void close() noexcept {
    if (live()) c_->core->close(*c_, close_reason::closed_by_server);
  }

  /// The connection's socket; -1 once it is gone. Do not close it.
  int native() const noexcept { return live() ? c_->fd : -1; }

 private:
  friend class basic_lean_request<Config>;
  friend class basic_lean_request_handle<Config>;
  explicit basic_lean_connection(detail::lean_connection<Config>* c) noexcept : c_(c) {}
  bool live() const noexcept { return c_ && !c_->closed; }
  detail::lean_connection<Config>* c_;
};

/// The request a handler is called with under the lean engine. Valid until the handler
/// returns; hold() keeps it past that. The same calls as basic_request (the evhttp
/// engine's): what differs is listed in docs/engine.md.
template <class Config>
class basic_lean_request {
  using core = detail::lean_core<Config>;
  using policy = typename Config::buffer_policy;

 public:
  /// The server_config of the server this request came from.
  using config = Config;
  /// What hold() returns.
  using handle_type = basic_lean_request_handle<Config>;
  /// What connection() returns.
  using connection_type = basic_lean_connection<Config>;

  basic_lean_request(const basic_lean_request&) = delete;
  basic_lean_request& operator=(const basic_lean_request&) = delete;

  // ----- reading ------------------------------------------------------------------

  /// The request method; a method tether has no name for reads as method::get's
  /// neighbour 0 (method_text() has it).
  tether::method method() const noexcept { return static_cast<tether::method>(v_.head().method_bits); }
  /// The method token as sent ("GET", "PROPFIND").
  std::string_view method_text() const noexcept { return v_.method_text(); }
  /// The request-target as sent ("/a/b?x=1"), not decoded.
  std::string_view uri() const noexcept { return v_.target(); }
  /// The path part of the target, not decoded.
  std::string_view path() const noexcept {
    std::string_view t = v_.target();
    if (v_.head().form == http1::target_form::absolute) {  // "http://host/path?q"
      const auto scheme = t.find("://");
      const auto slash = scheme == std::string_view::npos ? std::string_view::npos : t.find('/', scheme + 3);
      t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
    }
    return t.substr(0, t.find('?'));
  }
  /// The query part of the target (after '?'), if any, not decoded.
  std::optional<std::string_view> query() const noexcept {
    const std::string_view t = v_.target();
    const auto q = t.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    return t.substr(q + 1);
  }
  /// The query parsed into decoded name/value pairs (uri.hpp).
  result<tether::query_params> query_params() const { return parse_query(query().value_or(std::string_view{})); }
  /// The Host header, as sent (empty if there was none).
  std::string_view host() const noexcept { return v_.host(); }
  /// HTTP version of the request: {1, 1}, {1, 0}.
  std::pair<int, int> version() const noexcept { return {1, static_cast<int>(v_.head().version_minor)}; }
  /// The request's header fields, as sent (views into the read buffer).
  lean_input_headers input_headers() const noexcept { return lean_input_headers(v_); }
  /// The reply's header fields: add them before reply() or start().
  lean_output_headers output_headers() const noexcept {
    return lean_output_headers(c_->ph == detail::lean_phase::pending ? &c_->reply_headers : nullptr);
  }
  /// The request body, read whole before the handler runs (chunked bodies decoded).
  lean_body_ref body() const noexcept { return lean_body_ref(c_->body); }
  /// The reply body buffer; reply() sends what is in it, after appending its argument
  /// (lean_output_ref says what the other replies do with it).
  lean_output_ref output() const noexcept {
    return lean_output_ref(c_->ph == detail::lean_phase::pending ? &c_->output : nullptr);
  }

  // ----- replying -----------------------------------------------------------------

  /// Sends a complete reply: `status`, the output headers, Content-Length, Date and
  /// `body`. Errors: as basic_request::reply.
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, Body&& body) noexcept {
    if constexpr (!detail::lean_body_for<policy, std::remove_cvref_t<Body>>) {
      detail::refuse_lean_body_for<policy, Body>();
      return make_error_code(errc::invalid_argument);
    } else {
      if constexpr (detail::lean_always_copied<policy, std::remove_cvref_t<Body>>)
        return c_->core->reply(*c_, status, nullptr, detail::lean_bytes_of(body));
      else
        return c_->core->reply(*c_, status, nullptr, detail::lean_piece_of<policy>(body));
    }
  }
  /// Sends a complete reply with no body.
  [[nodiscard]] std::error_code reply(int status) noexcept { return c_->core->reply(*c_, status, nullptr, std::string_view{}); }
  /// As reply(status, body) with a reason phrase of your own.
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, cstring_view reason, Body&& body) noexcept {
    if constexpr (!detail::lean_body_for<policy, std::remove_cvref_t<Body>>) {
      detail::refuse_lean_body_for<policy, Body>();
      return make_error_code(errc::invalid_argument);
    } else {
      if constexpr (detail::lean_always_copied<policy, std::remove_cvref_t<Body>>)
        return c_->core->reply(*c_, status, reason.c_str(), detail::lean_bytes_of(body));
      else
        return c_->core->reply(*c_, status, reason.c_str(), detail::lean_piece_of<policy>(body));
    }
  }
  /// Sends an HTML error page for `status` with `Connection: close`.
  [[nodiscard]] std::error_code send_error(int status, const char* reason = nullptr) noexcept {
    return c_->core->send_error(*c_, status, reason);
  }
  /// Starts a streamed reply: chunked for HTTP/1.1; for HTTP/1.0 the body ends when the
  /// connection closes.
  [[nodiscard]] std::error_code start(int status, const char* reason = nullptr) noexcept {
    return c_->core->start(*c_, status, reason);
  }
  /// Queues one chunk of a streamed reply; several bodies make one chunk.
  template <class... Bodies>
  [[nodiscard]] std::error_code send_chunk(Bodies&&... bodies) noexcept {
    if constexpr (!(detail::lean_body_for<policy, std::remove_cvref_t<Bodies>> && ...)) {
      (detail::refuse_lean_body_for<policy, Bodies>(), ...);
      return make_error_code(errc::invalid_argument);
    } else if constexpr (sizeof...(Bodies) == 0) {
      return c_->core->chunk(*c_, nullptr, 0);
    } else {
      const detail::lean_piece pieces[] = {detail::lean_piece_of<policy>(bodies)...};
      return c_->core->chunk(*c_, pieces, sizeof...(Bodies));
    }
  }
  /// Ends a streamed reply.
  [[nodiscard]] std::error_code end() noexcept { return c_->core->end(*c_); }

  // ----- keeping it ---------------------------------------------------------------

  /// A handle through which the request can be answered after the handler returns.
  handle_type hold() noexcept { return handle_type(c_, c_->seq); }
  /// The connection this request arrived on.
  connection_type connection() noexcept { return connection_type(c_); }
  /// True until a reply is sent or the client hangs up.
  bool pending() const noexcept { return c_->ph == detail::lean_phase::pending; }

 private:
  friend struct detail::lean_access;
  basic_lean_request(detail::lean_connection<Config>* c, const http1::request_view& v) noexcept : c_(c), v_(v) {}

  detail::lean_connection<Config>* c_;
  http1::request_view v_;
};

/// A counted reference to a lean request that outlives its handler (hold()). Every call
/// checks first: errc::peer_gone once the client hung up, errc::reply_finished once the
/// reply is complete. When the last handle to a request still waiting goes away, tether
/// finishes it: a held request gets a 500, a stream is ended. Loop thread only.
template <class Config>
class basic_lean_request_handle {
  using policy = typename Config::buffer_policy;

 public:
  /// The server_config of the server the request came from.
  using config = Config;
  /// What connection() returns.
  using connection_type = basic_lean_connection<Config>;

  basic_lean_request_handle() noexcept = default;
  /// Another reference to the same request.
  basic_lean_request_handle(const basic_lean_request_handle& o) noexcept : c_(o.c_), seq_(o.seq_) {
    if (c_) c_->add_ref();
  }
  /// Takes over `o`'s reference.
  basic_lean_request_handle(basic_lean_request_handle&& o) noexcept : c_(std::exchange(o.c_, nullptr)), seq_(o.seq_) {}
  /// Refers to `o`'s request instead.
  basic_lean_request_handle& operator=(basic_lean_request_handle o) noexcept {
    std::swap(c_, o.c_);
    std::swap(seq_, o.seq_);
    return *this;
  }
  ~basic_lean_request_handle() { reset(); }

  /// Drops this reference (finishing the request if it was the last, see above).
  void reset() noexcept {
    auto* c = std::exchange(c_, nullptr);
    if (!c) return;
    // The running dispatch holds a reference too: inside the handler, the handler's
    // return finishes the request instead.
    if (c->refs == 1 && !c->closed && c->seq == seq_ && !c->in_handler) {
      if (c->ph == detail::lean_phase::pending) (void)c->core->send_error(*c, 500, nullptr);
      else if (c->ph == detail::lean_phase::streaming) (void)c->core->end(*c);
    }
    c->release();
  }

  /// True while the request waits for (the rest of) its reply and the client is there.
  bool alive() const noexcept {
    return current() && (c_->ph == detail::lean_phase::pending || c_->ph == detail::lean_phase::streaming);
  }
  /// True once the client hung up (or the server went away) before the reply completed.
  bool peer_gone() const noexcept { return current() && c_->ph == detail::lean_phase::aborted; }
  /// True unless the handle is empty.
  explicit operator bool() const noexcept { return c_ != nullptr; }

  /// Sends a complete reply. Errors: as basic_request_handle::reply.
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, Body&& body) noexcept {
    if constexpr (!detail::lean_body_for<policy, std::remove_cvref_t<Body>>) {
      detail::refuse_lean_body_for<policy, Body>();
      return make_error_code(errc::invalid_argument);
    } else {
      if constexpr (detail::lean_always_copied<policy, std::remove_cvref_t<Body>>)
        return with([&] { return c_->core->reply(*c_, status, nullptr, detail::lean_bytes_of(body)); });
      else
        return with([&] { return c_->core->reply(*c_, status, nullptr, detail::lean_piece_of<policy>(body)); });
    }
  }
  /// Sends a complete reply with no body.
  [[nodiscard]] std::error_code reply(int status) noexcept {
    return with([&] { return c_->core->reply(*c_, status, nullptr, std::string_view{}); });
  }
  /// As reply(status, body) with a reason phrase of your own.
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, cstring_view reason, Body&& body) noexcept {
    if constexpr (!detail::lean_body_for<policy, std::remove_cvref_t<Body>>) {
      detail::refuse_lean_body_for<policy, Body>();
      return make_error_code(errc::invalid_argument);
    } else {
      if constexpr (detail::lean_always_copied<policy, std::remove_cvref_t<Body>>)
        return with([&] { return c_->core->reply(*c_, status, reason.c_str(), detail::lean_bytes_of(body)); });
      else
        return with([&] { return c_->core->reply(*c_, status, reason.c_str(), detail::lean_piece_of<policy>(body)); });
    }
  }
  /// Sends an HTML error page with `Connection: close`.
  [[nodiscard]] std::error_code send_error(int status, const char* reason = nullptr) noexcept {
    return with([&] { return c_->core->send_error(*c_, status, reason); });
  }
  /// Starts a streamed reply.
  [[nodiscard]] std::error_code start(int status, const char* reason = nullptr) noexcept {
    return with([&] { return c_->core->start(*c_, status, reason); });
  }
  /// Queues one chunk; several bodies make one chunk.
  template <class... Bodies>
  [[nodiscard]] std::error_code send_chunk(Bodies&&... bodies) noexcept {
    if constexpr (!(detail::lean_body_for<policy, std::remove_cvref_t<Bodies>> && ...)) {
      (detail::refuse_lean_body_for<policy, Bodies>(), ...);
      return make_error_code(errc::invalid_argument);
    } else if constexpr (sizeof...(Bodies) == 0) {
      return with([&] { return c_->core->chunk(*c_, nullptr, 0); });
    } else {
      const detail::lean_piece pieces[] = {detail::lean_piece_of<policy>(bodies)...};
      return with([&] { return c_->core->chunk(*c_, pieces, sizeof...(Bodies)); });
    }
  }
  /// Links `hook` to this request: it hears when a bounded output is writable again and
  /// when the exchange ends (completed, client gone, server gone). Errors: as the reply
  /// calls, when the request is no longer waiting.
  [[nodiscard]] std::error_code attach(reply_hook& hook) noexcept {
    hook.detach();
    return watch(detail::reply_hook_access::watcher(hook));
  }
  /// Links a bare watcher (what reply_hook, hubs and long-poll rooms are built on).
  [[nodiscard]] std::error_code watch(detail::exchange_watcher& w) noexcept {
    return with([&]() -> std::error_code {
      if (c_->ph != detail::lean_phase::pending && c_->ph != detail::lean_phase::streaming)
        return detail::lean_core<Config>::phase_error(c_->ph, false);
      detail::watcher_list::unlink(w);
      c_->link(w);
      return {};
    });
  }
  /// Ends a streamed reply.
  [[nodiscard]] std::error_code end() noexcept {
    return with([&] { return c_->core->end(*c_); });
  }
  /// Adds a header to the reply (before reply() or start()).
  [[nodiscard]] std::error_code add_header(std::string_view name, std::string_view value) noexcept {
    return with([&]() -> std::error_code {
      if (c_->ph != detail::lean_phase::pending) return detail::lean_core<Config>::phase_error(c_->ph, true);
      return lean_output_headers(&c_->reply_headers).add(name, value);
    });
  }
  /// Bytes queued for the client and not yet written (0 once the connection is gone).
  std::size_t queued_bytes() const noexcept { return current() && !c_->closed ? c_->pending_output() : 0; }
  /// Closes the connection now (close_reason::closed_by_server).
  void close() noexcept {
    if (current() && !c_->closed) c_->core->close(*c_, close_reason::closed_by_server);
  }
  /// The connection of this request.
  connection_type connection() const noexcept { return connection_type(c_); }

 private:
  friend class basic_lean_request<Config>;
  friend struct detail::lean_access;
  basic_lean_request_handle(detail::lean_connection<Config>* c, std::uint32_t seq) noexcept : c_(c), seq_(seq) {
    c_->add_ref();
  }
  bool current() const noexcept { return c_ && c_->seq == seq_; }

  template <class F>
  [[nodiscard]] std::error_code with(F&& f) noexcept {
    if (!c_) return make_error_code(errc::empty_handle);
    if (c_->seq != seq_) return make_error_code(errc::reply_finished);
    if (c_->closed && c_->ph != detail::lean_phase::aborted) return make_error_code(errc::peer_gone);
    return f();
  }

  detail::lean_connection<Config>* c_ = nullptr;
  std::uint32_t seq_ = 0;
};

namespace detail {
struct lean_access {
  template <class Config>
  static basic_lean_request<Config> make(lean_connection<Config>* c, const http1::request_view& v) noexcept {
    return basic_lean_request<Config>(c, v);
  }
  template <class Config>
  static lean_connection<Config>* conn(basic_lean_request<Config>& r) noexcept {
    return r.c_;
  }
  template <class Config>
  static bool absolute(const basic_lean_request<Config>& r) noexcept {
    return r.v_.head().form == http1::target_form::absolute;
  }
  template <class Config>
  static basic_lean_request_handle<Config> handle(lean_connection<Config>* c) noexcept {
    return basic_lean_request_handle<Config>(c, c->seq);
  }
};

template <class Config>
void lean_core<Config>::run_handler(conn& c) noexcept {
  ++requests;
  c.ph = lean_phase::pending;
  c.held = false;
  c.reply_headers.clear();
  c.deadline_kind = lean_deadline::none;
  c.in_handler = true;
  c.add_ref();
  const std::uint32_t refs_before = c.refs;  // the callers' references and this dispatch's
  const std::uint32_t seq = c.seq;
  {
    request_type r = lean_access::make(&c, c.parser->view(c.in.get() + c.head_at));
    dispatch(owner, r);
  }
  c.in_handler = false;
  if (!c.closed && c.seq == seq) {
    if (c.ph == lean_phase::pending) {
      if (c.refs > refs_before) {
        c.held = true;  // a handle has it; reading stays on, so a hang-up is seen at once
      } else {
        std::fprintf(stderr, "tether: %.*s: the handler returned without replying or holding the request; sent 500\n",
                     static_cast<int>(c.parser->view(c.in.get() + c.head_at).target().size()),
                     c.parser->view(c.in.get() + c.head_at).target().data());
        (void)send_error(c, 500, nullptr);
      }
    }
  }
  c.release();
}


}  // namespace detail

/// The lean engine's server: tether's own HTTP/1.1 core on libevent's loop.
///
///     tether::event_loop loop;
///     tether::lean_server srv{loop};
///     srv.fallback([](auto& req) { (void)req.reply(200, "hello"); });
///     if (auto port = srv.bind("127.0.0.1", 8080); !port) return 1;
///     loop.run();
///
/// Routes, fallback, limits and timeouts, bind/accept/stop_listening, close callbacks and
/// held requests work as on the evhttp engine; docs/engine.md lists what does not yet.
template <class ClosePolicy, class BufferPolicy, class CloseCallback>
class basic_server<ClosePolicy, BufferPolicy, CloseCallback, lean_engine> {
  static_assert(close_callback<CloseCallback>,
                "tether::basic_server<..., CloseCallback, lean_engine>: CloseCallback is not a close_callback "
                "(docs/concepts/close_callback.md)");

 public:
  /// The engine this server runs on.
  using engine_type = lean_engine;
  /// The three policies as one type.
  using config = server_config<std::conditional_t<close_policy<ClosePolicy>, ClosePolicy, eager_close<>>,
                               std::conditional_t<buffer_policy<BufferPolicy>, BufferPolicy, copy_buffer>,
                               CloseCallback, lean_engine>;
  /// The type a handler receives (as `request&`).
  using request = basic_lean_request<config>;
  /// What request::hold() returns.
  using request_handle = basic_lean_request_handle<config>;
  /// What request::connection() returns.
  using connection = basic_lean_connection<config>;
  /// A streamed reply (stream.hpp) of this server.
  using stream = basic_stream<config>;
  /// A Server-Sent Events reply (sse.hpp) of this server.
  using sse_stream = basic_sse_stream<config>;
  /// A multipart/x-mixed-replace reply (multipart.hpp) of this server.
  using multipart_stream = basic_multipart_stream<config>;
  /// A long-poll waiting room (long_poll.hpp) for this server's requests.
  using long_poll = basic_long_poll<config>;
  /// A broker endpoint (broker_endpoint.hpp) serving this server's requests.
  using broker_endpoint = basic_broker_endpoint<config>;
  /// A hub (hub.hpp) of this server's streams: `hub<>` holds SSE streams.
  template <class Stream = sse_stream>
  using hub = basic_hub<Stream>;

  /// A virtual host (virtual_host.hpp) of this server.
  // Named through config: its policies stand in for faulty ones, so that a policy error is
  // the one sentence of server_policy_checks and not a constraint failure here as well.
  using virtual_host = basic_virtual_host<typename config::close_policy, typename config::buffer_policy,
                                          typename config::close_callback, lean_engine>;

  /// Creates the server on `loop`.
  explicit basic_server(event_loop& loop) : basic_server(loop.native()) {}
  /// Creates the server on a loop the application runs itself.
  explicit basic_server(event_base* base) : backoff_(base, this, &toggle_listeners, &report_event) {
    detail::ignore_sigpipe_unless_handled();
    core_.base = base;
    core_.owner = this;
    core_.dispatch = &dispatch;
    core_.allowed_methods = allowed_.bits();
    if constexpr (requires { config::close_policy::input_limit; })
      core_.policy_input_limit = config::close_policy::input_limit;
    core_.apply(server_limits{});
  }
  /// Creates the server with the routes of `table` installed (see route(router)).
  template <router_type Router>
  basic_server(event_loop& loop, Router&& table) : basic_server(loop.native(), std::forward<Router>(table)) {}
  /// As above, on a loop the application runs itself. Throws std::bad_alloc if the routes
  /// cannot be stored.
  template <router_type Router>
  basic_server(event_base* base, Router&& table) : basic_server(base) {
    if (route(std::forward<Router>(table))) throw std::bad_alloc{};
  }
  basic_server(const basic_server&) = delete;
  basic_server& operator=(const basic_server&) = delete;
  ~basic_server() {
    for (auto* v : vhosts_) v->parent_gone = true;  // they outlive it detached
    if (drain_tick_) event_free(drain_tick_);
    backoff_.shutdown();
    stop_listening();
    core_.count_observer = nullptr;
    core_.close_all(close_reason::server_shutdown);
    core_.end_all_lingering();
    if (core_.sweep) event_free(core_.sweep);
    set_transport({});
  }

  // ----- transport ----------------------------------------------------------------

  /// Makes every connection accepted from now on read and write through `t` instead of
  /// plain system calls. tls.hpp's use_tls() calls it (an HTTPS server); it is rarely
  /// called directly. The server releases `t` (t.release) when it is replaced or the
  /// server is destroyed. Call it before bind(): open connections read and write
  /// through the server's transport, which is not to change under them.
  void set_transport(detail::lean_transport t) noexcept {
    detail::lean_transport old = std::exchange(core_.transport, t);
    if (old.release) old.release(old.arg);
  }

  // ----- listening ----------------------------------------------------------------

  /// Listens on `address` and `port` (0 picks a free port); returns the port bound.
  result<std::uint16_t> bind(cstring_view address, std::uint16_t port, int backlog = 1024) {
    int err = 0;
    const int fd = detail::open_listener(address.view(), port, backlog, err);
    if (fd < 0) {
      if (err == 0) return errc::invalid_address;
      return std::error_code(err, std::system_category());
    }
    auto bound = adopt_listener(fd, std::string(address.view()));
    if (!bound) ::close(fd);
    return bound;
  }
  /// Serves a listening (or bound) TCP socket the application made; returns its port.
  /// The server owns it from then on. Errors: as on the evhttp engine (errc::invalid_argument
  /// for a socket that is not a TCP stream; the socket stays the caller's then).
  result<std::uint16_t> accept(int fd, int backlog = 1024) {
    if (const int err = detail::ready_adopted_socket(fd, backlog))
      return err < 0 ? make_error_code(errc::invalid_argument) : std::error_code(err, std::system_category());
    return adopt_listener(fd, {});
  }
  /// Stops listening on every socket and closes them; open connections are served on.
  void stop_listening() noexcept {
    while (!listeners_.empty()) drop_listener(listeners_.size() - 1);
  }
  /// Stops listening on one socket, an element of listeners() or a copy of one, and
  /// closes it; the other sockets and every open connection (including those accepted
  /// on this socket) are served as before.
  /// Errors: errc::invalid_argument if the server does not listen on it (any more).
  [[nodiscard]] std::error_code stop_listening(const listener& which) noexcept {
    for (std::size_t i = 0; i < listeners_.size(); ++i) {
      if (listeners_[i].fd != which.fd || listeners_[i].port != which.port) continue;
      drop_listener(i);
      return {};
    }
    return make_error_code(errc::invalid_argument);
  }
  /// Stops listening on every socket bound to `port` (bind() returned it; an IPv4 and an
  /// IPv6 socket may share it), as stop_listening(const listener&) does for each.
  /// Errors: errc::invalid_argument if no socket of the server is bound to `port`.
  [[nodiscard]] std::error_code stop_listening(std::uint16_t port) noexcept {
    bool found = false;
    for (std::size_t i = listeners_.size(); i-- > 0;) {
      if (listeners_[i].port != port) continue;
      drop_listener(i);
      found = true;
    }
    return found ? std::error_code{} : make_error_code(errc::invalid_argument);
  }
  /// The sockets the server listens on (tether::listener, as on the evhttp engine;
  /// `native` is null: there is no evhttp).
  const std::vector<listener>& listeners() const noexcept { return listeners_; }
  /// The port of the first listening socket (0 if none).
  std::uint16_t port() const noexcept { return listeners_.empty() ? 0 : listeners_.front().port; }

  // ----- routes -------------------------------------------------------------------

  /// Calls `handler` for requests whose path is exactly `path` (not decoded; query
  /// ignored), whatever their method. Errors: errc::invalid_argument if routed already.
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, Handler&& handler) {
    check_handler<Handler>();
    if (auto e = routes_.add(path, method_set{}, std::forward<Handler>(handler))) return e;
    add_allowed_methods(handler_own_methods<std::decay_t<Handler>>);  // OPTIONS for a cors_handler
    return {};
  }
  /// Calls `handler` for requests on `path` whose method is in `methods` (GET implies
  /// HEAD); other methods get 405 with an Allow header. `methods` are added to the
  /// allowed methods (allow_methods).
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, method_set methods, Handler&& handler) {
    check_handler<Handler>();
    if (methods.empty())
      return route_error(make_error_code(errc::invalid_argument), path.view(), detail::no_methods_why);
    methods = methods | handler_own_methods<std::decay_t<Handler>>;
    if (methods.contains(method::get)) methods = methods | method::head;
    if (auto e = routes_.add(path, methods, std::forward<Handler>(handler))) return e;
    add_allowed_methods(methods);
    return {};
  }
  /// Installs a router of static routes (router.hpp): one entry per distinct path, each
  /// switching over methods at compile time; 405 with an Allow header for other methods.
  /// The server keeps the router until it dies and adds its methods to the allowed
  /// methods. All or nothing. Errors: errc::invalid_argument if one of its paths is
  /// already routed (the error names it).
  template <router_type Router>
  [[nodiscard]] route_error route(Router&& table) {
    using router_t = std::remove_cvref_t<Router>;
    if constexpr (!detail::router_answers<request, router_t>::value) {
      (void)sizeof(detail::router_handler_checks<request, router_t>);
      return {};
    } else {
      router_t copy(std::forward<Router>(table));
      if (auto e = routes_.add_router(std::move(copy))) return e;
      add_allowed_methods(detail::lean_router_binding<request, router_t>::methods());
      return {};
    }
  }
  /// Stops routing `path` (routed at run time or by a router). Errors:
  /// errc::invalid_argument if it was not routed.
  [[nodiscard]] route_error unroute(cstring_view path) { return routes_.remove(path); }
  /// Calls `handler` for every request no route matched (404 without one).
  template <class Handler>
  void fallback(Handler&& handler) {
    check_handler<Handler>();
    routes_.set_fallback(std::forward<Handler>(handler));
    add_allowed_methods(handler_own_methods<std::decay_t<Handler>>);
  }

  /// Methods outside `methods` get 501 (and `Connection: close`) before any handler,
  /// as on the evhttp engine, whose default this is: GET, POST, HEAD, PUT and DELETE;
  /// routes declared with methods add theirs.
  void allow_methods(method_set methods) noexcept {
    allowed_ = methods;
    core_.allowed_methods = methods.bits();
  }
  /// The methods let through to routing (the rest get 501).
  method_set allowed_methods() const noexcept { return allowed_; }

  /// Answers requests whose host is exactly `alias` (compared without regard to case)
  /// with this server's own routes, even where a virtual host's pattern would match it.
  /// Errors: errc::invalid_argument if it is an alias already.
  [[nodiscard]] std::error_code add_alias(cstring_view alias) {
    for (const auto& a : aliases_)
      if (http1::detail::iequals(a, alias.view())) return make_error_code(errc::invalid_argument);
    aliases_.emplace_back(alias.view());
    return {};
  }
  /// Stops answering requests whose Host is `alias` as this server's.
  /// Errors: errc::invalid_argument if `alias` was not added.
  [[nodiscard]] std::error_code remove_alias(cstring_view alias) noexcept {
    for (auto it = aliases_.begin(); it != aliases_.end(); ++it)
      if (http1::detail::iequals(*it, alias.view())) {
        aliases_.erase(it);
        return {};
      }
    return make_error_code(errc::invalid_argument);
  }

  // ----- limits and settings --------------------------------------------------------

  /// Replaces every limit at once.
  void set_limits(const server_limits& l) noexcept { core_.apply(l); }
  /// The limits in force.
  const server_limits& limits() const noexcept { return core_.limits; }
  /// Request line and header fields, in bytes (431 past it; at most 65,535 here).
  void set_max_header_bytes(std::size_t bytes) noexcept { update([&](server_limits& l) { l.max_header_bytes = bytes; }); }
  /// A request body, in bytes (413 past it).
  void set_max_body_bytes(std::size_t bytes) noexcept { update([&](server_limits& l) { l.max_body_bytes = bytes; }); }
  /// Same as set_max_body_bytes (413 past it).
  void set_max_body_size(std::size_t bytes) noexcept { set_max_body_bytes(bytes); }
  /// Same as set_max_header_bytes (431 past it; at most 65,535 here).
  void set_max_headers_size(std::size_t bytes) noexcept { set_max_header_bytes(bytes); }
  /// Time to receive a request head (408 past it).
  void set_head_timeout(std::chrono::milliseconds t) noexcept { update([&](server_limits& l) { l.head_timeout = t; }); }
  /// Time to receive a request body (408 past it).
  void set_body_timeout(std::chrono::milliseconds t) noexcept { update([&](server_limits& l) { l.body_timeout = t; }); }
  /// Time a keep-alive connection may wait for its next request.
  void set_idle_timeout(std::chrono::milliseconds t) noexcept { update([&](server_limits& l) { l.idle_timeout = t; }); }
  /// Time pending output may go without progress.
  void set_send_timeout(std::chrono::milliseconds t) noexcept { update([&](server_limits& l) { l.send_timeout = t; }); }
  /// Bytes a client may send that nobody reads yet.
  void set_max_unread_input(std::size_t bytes) noexcept { update([&](server_limits& l) { l.max_unread_input = bytes; }); }
  /// Bytes of a streamed reply that may wait for one client.
  void set_max_pending_output(std::size_t bytes) noexcept { update([&](server_limits& l) { l.max_pending_output = bytes; }); }
  /// Open connections; the next one gets 503.
  void set_max_connections(std::size_t n) noexcept { update([&](server_limits& l) { l.max_connections = n; }); }
  /// All four timeouts at once.
  template <class Rep, class Period>
  void set_timeout(std::chrono::duration<Rep, Period> t) noexcept {
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(t);
    update([&](server_limits& l) { l.head_timeout = l.body_timeout = l.idle_timeout = l.send_timeout = ms; });
  }
  /// Content-Type added to replies that have a body and set none; empty adds none.
  void set_default_content_type(cstring_view type) { core_.default_content_type = std::string(type.view()); }
  /// The lean engine always writes a cached Date (formatted once per second): a no-op,
  /// for code written for both engines.
  void cache_date_header(bool = true) noexcept {}

  // ----- server events --------------------------------------------------------------

  /// Sends the server's events (server_event.hpp: accept paused and resumed, requests
  /// refused before any handler) to `sink`; the default, log_server_event, writes one
  /// line to stderr when accepting pauses. An empty server_event_sink{} silences them.
  template <class Sink>
  void on_event(Sink&& sink) noexcept(std::is_nothrow_constructible_v<server_event_sink, Sink&&>) {
    core_.events = server_event_sink(std::forward<Sink>(sink));
  }
  /// Hands `e` to the server's sink, as the server does with its own events.
  void report(const server_event& e) noexcept { core_.report(e); }
  /// True while accept() is failing for lack of a resource and the server retries from a
  /// timer instead of accepting (server_event_kind::accept_paused).
  bool accept_paused() const noexcept { return backoff_.paused(); }

  // ----- graceful drain (drain.hpp, docs/drain.md) --------------------------------

  /// What drain() does with held requests and streams, and when it is done.
  using drain_options = basic_drain_options<request_handle>;
  /// Sets how drain() answers held requests, ends streams and reports (before drain()).
  void set_drain_options(drain_options options) noexcept { drain_options_ = std::move(options); }

  /// Stops the server gracefully within `deadline`, as the evhttp engine does: stops
  /// listening, lets replies being written finish (then closes their connections),
  /// answers held requests (503 and Retry-After by default), ends streams (last words,
  /// then the final chunk; an HTTP/1.0 stream by closing), closes idle connections, and
  /// reports every close it causes as close_reason::server_shutdown. Done when no
  /// connection is left, or at the deadline (what is left is closed hard); by default the
  /// loop's run() then returns. A second call only brings the deadline forward.
  /// Errors: errc::libevent_failure.
  template <class Rep, class Period>
  [[nodiscard]] std::error_code drain(std::chrono::duration<Rep, Period> deadline) noexcept {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline);
    if (ms.count() < 0) ms = std::chrono::milliseconds{0};
    if (drain_done_) return {};
    const auto now = std::chrono::steady_clock::now();
    if (!drain_tick_) {
      drain_tick_ = event_new(core_.base, -1, EV_PERSIST, &on_drain_tick, this);
      if (!drain_tick_) return make_error_code(errc::libevent_failure);
      stop_listening();
      core_.draining = true;  // from now on every reply closes its connection
      const timeval period{0, 5000};
      event_add(drain_tick_, &period);
      drain_started_ = now;
      drain_until_ = now + ms;
    } else if (now + ms < drain_until_) {
      drain_until_ = now + ms;
    }
    event_active(drain_tick_, EV_TIMEOUT, 0);
    return {};
  }
  /// True from drain() on.
  bool draining() const noexcept { return drain_tick_ != nullptr; }
  /// True once the drain is done.
  bool drained() const noexcept { return drain_done_; }
  /// What the drain did so far (complete once drained()).
  const drain_report& drain_result() const noexcept { return drain_report_; }

  // ----- introspection ------------------------------------------------------------

  /// Connections open on this server.
  std::size_t open_connections() const noexcept { return core_.open; }
  /// Open connections with a close callback, a handle or a request in progress (the
  /// evhttp engine's "tracked" connections); walks the list.
  std::size_t tracked_connections() const noexcept {
    std::size_t n = 0;
    for (auto* c = core_.first; c; c = c->next)
      if (c->has_callback || c->refs > 0 || c->ph == detail::lean_phase::pending ||
          c->ph == detail::lean_phase::streaming)
        ++n;
    return n;
  }
  /// Bytes the server holds for its connections: each connection's object, read buffer,
  /// queued output, request body and reply fields, and the spare parsers. What a hostile
  /// client can make the lean engine hold is bounded by the limits (tests/integration/
  /// hostile_test.cpp measures it); the evhttp engine's equivalent is libevent's memory.
  /// Walks the list.
  std::size_t buffered_bytes() const noexcept {
    std::size_t n = core_.spare_parsers.size() * sizeof(http1::request_parser);
    for (auto* c = core_.first; c; c = c->next)
      n += sizeof(*c) + c->in_cap + c->out.capacity() + c->body.capacity() + c->reply_headers.capacity() +
           (c->parser ? sizeof(http1::request_parser) : 0);
    return n;
  }
  /// Requests dispatched to handlers so far.
  std::uint64_t requests_served() const noexcept { return core_.requests; }
  /// The libevent loop this server runs on.
  event_base* base() const noexcept { return core_.base; }

 private:
  template <close_policy, buffer_policy, close_callback, class>
  friend class basic_virtual_host;
  friend struct detail::group_access;

  template <class Handler>
  static constexpr void check_handler() noexcept {
    static_assert(request_handler<std::decay_t<Handler>, request>,
                  "tether: a request handler must be callable as handler(req) with this server's request& "
                  "(server_t::request&, or auto& in a lambda) (docs/concepts/request_handler.md)");
  }

  template <class F>
  void update(F&& change) noexcept {
    server_limits l = core_.limits;
    change(l);
    core_.apply(l);
  }

  void add_allowed_methods(method_set methods) noexcept {
    if ((allowed_ | methods) != allowed_) allow_methods(allowed_ | methods);
  }

  result<std::uint16_t> adopt_listener(int fd, std::string address) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
      return std::error_code(errno, std::system_category());
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) return make_error_code(errc::invalid_argument);
    evutil_make_socket_nonblocking(fd);
    event* ev = event_new(core_.base, fd, EV_READ | EV_PERSIST, &on_accept, this);
    // A listener added while accepting is paused (or held by a group) starts paused.
    if (!ev || (!backoff_.off() && event_add(ev, nullptr) != 0)) {
      if (ev) event_free(ev);
      return make_error_code(errc::libevent_failure);
    }
    const std::uint16_t port = ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                                            : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    try {
      listen_events_.reserve(listen_events_.size() + 1);
      listeners_.push_back(listener{std::move(address), port, nullptr, fd});
    } catch (...) {
      event_free(ev);
      return std::make_error_code(std::errc::not_enough_memory);
    }
    listen_events_.push_back(ev);  // reserved: cannot throw
    return port;
  }

  /// Closes listeners_[i] and its event; the others keep their order.
  void drop_listener(std::size_t i) noexcept {
    event_free(listen_events_[i]);
    ::close(listeners_[i].fd);
    listeners_.erase(listeners_.begin() + static_cast<std::ptrdiff_t>(i));
    listen_events_.erase(listen_events_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  static void on_accept(evutil_socket_t fd, short, void* self) noexcept {
    auto* srv = static_cast<basic_server*>(self);
    for (int i = 0; i < 64; ++i) {  // a bounded batch per wake-up
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      const int c = ::accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) {
        // Out of descriptors (or memory): the connection stays queued and the socket
        // readable, so the level-triggered event would call accept() again at once,
        // forever. Pause every listener and retry from a timer (detail/accept_backoff.hpp).
        if (detail::accept_resource_error(errno)) srv->backoff_.fail(errno);
        return;  // EAGAIN, ECONNABORTED, ...: the event retries
      }
      srv->core_.adopt(c, peer);
      if (srv->backoff_.off()) return;  // a group's balance held this loop meanwhile
    }
  }

  static void toggle_listeners(void* self, bool enable) noexcept {
    for (event* ev : static_cast<basic_server*>(self)->listen_events_) {
      if (enable) event_add(ev, nullptr);
      else event_del(ev);
    }
  }
  static void report_event(void* self, const server_event& e) noexcept { static_cast<basic_server*>(self)->core_.report(e); }

  // server_group.hpp's accept balance: hold this loop's listeners, hear its count.
  void group_hold_accepts(bool on) noexcept { backoff_.hold(on); }
  void group_observe_count(void (*f)(void*, std::size_t) noexcept, void* arg) noexcept {
    core_.count_observer = f;
    core_.count_observer_arg = arg;
  }

  /// The route table of `r`'s host (libevent's evhttp_find_vhost): an alias of the server,
  /// then of each virtual host; then the virtual hosts' patterns, in creation order.
  const detail::lean_route_table<request>& table_of(request& r) const noexcept {
    if (vhosts_.empty()) return routes_;
    const std::string_view host =
        detail::lean_request_host(r.uri(), detail::lean_access::absolute(r), r.host());
    if (host.empty()) return routes_;
    for (const auto& a : aliases_)
      if (http1::detail::iequals(a, host)) return routes_;
    for (const auto* v : vhosts_)
      if (v->has_alias(host)) return v->table;
    for (const auto* v : vhosts_)
      if (detail::lean_host_match(v->pattern, host)) return v->table;
    return routes_;
  }

  /// The dispatch trampoline: choose the host's table, route by path and method.
  static void dispatch(void* self, request& r) noexcept {
    auto* srv = static_cast<basic_server*>(self);
    try {
      if (!srv->table_of(r).dispatch(r)) (void)r.send_error(404);
    } catch (...) {
      // As on the evhttp engine: a 500 if nothing was sent yet, else the connection is cut
      // (a stream cannot say "failed" any other way).
      detail::report_exception("a request handler");
      if (r.pending()) (void)r.send_error(500);
      else if (auto* c = detail::lean_access::conn(r); c && !c->closed && c->ph == detail::lean_phase::streaming)
        c->core->close(*c, close_reason::error);
    }
  }

  using conn_t = detail::lean_connection<config>;

  /// One look at every connection: answer what is held, end what streams, close what
  /// idles, let the rest finish with `Connection: close`; done when nothing is left.
  static void on_drain_tick(evutil_socket_t, short, void* self) noexcept {
    auto* srv = static_cast<basic_server*>(self);
    auto& core = srv->core_;
    if (srv->drain_done_) return;
    const bool late = std::chrono::steady_clock::now() >= srv->drain_until_;
    conn_t* c = core.first;
    if (c) c->add_ref();
    while (c) {
      conn_t* next = c->next;
      if (next) next->add_ref();
      if (!c->closed) srv->drain_one(*c, late);
      c->release();
      c = next;
    }
    if (late) srv->drain_report_.closed_at_deadline += core.end_all_lingering();
    // Done when every connection is closed and every client has read its end (or the
    // linger passed), as on the evhttp engine.
    if (core.open == 0 && core.lingering_count == 0) srv->finish_drain();
  }

  void drain_one(conn_t& c, bool late) noexcept {
    using detail::lean_phase;
    if (late) {
      ++drain_report_.closed_at_deadline;
      drain_report_.deadline_passed = true;
      core_.close(c, close_reason::server_shutdown);
      return;
    }
    const bool handled = c.ph == lean_phase::pending || c.ph == lean_phase::streaming;
    if (!handled && c.pending_output() == 0 && !c.head_live && c.unread() == 0 && !c.close_after_write) {
      // Between requests, unless a request waits in the kernel: the read event serves it
      // (with `Connection: close`). Else FIN, and its input is discarded until the client
      // closes: a request in flight meets the FIN, not a RST.
      char b;
      if (::recv(c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0) return;
      ++drain_report_.idle_closed;
      core_.close(c, close_reason::server_shutdown, /*graceful=*/true);
      return;
    }
    if (!c.close_after_write) c.keep_alive = false;  // what it answers next closes it
    if (c.ph == lean_phase::pending && c.held && !c.in_handler) {
      answer_held(c);
    } else if (c.ph == lean_phase::streaming && !c.in_handler && !c.sized_reply) {
      // A chunked stream gets its last words and its final chunk; an unframed one (HTTP/1.0)
      // ends with the close. A reply with a Content-Length (start_sized()) is left to
      // finish, as on the evhttp engine: ending it early would cut it short.
      if (drain_options_.last_words) {
        request_handle h = detail::lean_access::handle(&c);
        try {
          drain_options_.last_words(h);
        } catch (...) {
          detail::report_exception("a drain's last-words hook");
        }
      }
      if (!c.closed && c.ph == lean_phase::streaming) {
        ++drain_report_.streams_ended;
        (void)core_.end(c);  // written now; the connection closes after it
      }
    }
  }

  void answer_held(conn_t& c) noexcept {
    std::string& out = c.reply_headers;
    const lean_output_headers headers(&out);
    if (drain_options_.retry_after.count() > 0) {
      char seconds[24];
      (void)headers.set("Retry-After",
                        detail::to_decimal(static_cast<std::int64_t>(drain_options_.retry_after.count()), seconds));
    }
    const char* body = drain_options_.held_body ? drain_options_.held_body : "";
    if (!core_.reply(c, drain_options_.held_status, nullptr, std::string_view(body))) ++drain_report_.held_answered;
  }

  void finish_drain() noexcept {
    drain_done_ = true;
    event_del(drain_tick_);
    drain_report_.took =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - drain_started_);
    if (drain_options_.on_done) {
      try {
        drain_options_.on_done(drain_report_);
      } catch (...) {
        detail::report_exception("a drain's on_done callback");
      }
    }
    if (drain_options_.stop_loop) event_base_loopbreak(core_.base);
  }

  detail::lean_core<config> core_;
  detail::accept_pause backoff_;
  event* drain_tick_ = nullptr;
  std::chrono::steady_clock::time_point drain_started_{};
  std::chrono::steady_clock::time_point drain_until_{};
  bool drain_done_ = false;
  drain_options drain_options_{};
  drain_report drain_report_{};
  // libevent's default (evhttp_new_object), kept on both engines.
  method_set allowed_ = method::get | method::post | method::head | method::put | method::delete_;
  detail::lean_route_table<request> routes_;
  std::vector<std::string> aliases_;                   // add_alias
  std::vector<detail::lean_vhost<request>*> vhosts_;   // attached virtual hosts, in creation order
  std::vector<listener> listeners_;
  std::vector<event*> listen_events_;  // listeners_[i]'s accept event is listen_events_[i]
};

/// A virtual host of a lean server (virtual_host.hpp has the primary template and its
/// documentation): routes of its own for requests whose host matches its pattern or one
/// of its aliases. Not movable (the server holds a pointer to it); it may die before or
/// after its server. Do not destroy it from inside one of its own handlers.
template <close_policy ClosePolicy, buffer_policy BufferPolicy, close_callback CloseCallback>
class basic_virtual_host<ClosePolicy, BufferPolicy, CloseCallback, lean_engine> {
 public:
  /// The server type it attaches to.
  using server_type = basic_server<ClosePolicy, BufferPolicy, CloseCallback, lean_engine>;
  /// The request type its handlers take: the server's.
  using request = typename server_type::request;

  /// Attaches a new virtual host for `pattern` to `parent`. Throws std::bad_alloc.
  basic_virtual_host(server_type& parent, cstring_view pattern) : parent_(&parent) {
    host_.pattern = std::string(pattern.view());
    parent.vhosts_.push_back(&host_);
  }
  basic_virtual_host(const basic_virtual_host&) = delete;
  basic_virtual_host& operator=(const basic_virtual_host&) = delete;
  /// Detaches it from its server (if the server still lives).
  ~basic_virtual_host() {
    if (!host_.parent_gone) std::erase(parent_->vhosts_, &host_);
  }

  /// As basic_server::route(path, handler), for this host.
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, Handler&& handler) {
    server_type::template check_handler<Handler>();
    if (auto e = host_.table.add(path, method_set{}, std::forward<Handler>(handler))) return e;
    if (attached()) parent_->add_allowed_methods(handler_own_methods<std::decay_t<Handler>>);
    return {};
  }
  /// As basic_server::route(path, methods, handler), for this host.
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, method_set methods, Handler&& handler) {
    server_type::template check_handler<Handler>();
    if (methods.empty())
      return route_error(make_error_code(errc::invalid_argument), path.view(), detail::no_methods_why);
    methods = methods | handler_own_methods<std::decay_t<Handler>>;
    if (methods.contains(method::get)) methods = methods | method::head;
    if (auto e = host_.table.add(path, methods, std::forward<Handler>(handler))) return e;
    if (attached()) parent_->add_allowed_methods(methods);
    return {};
  }
  /// As basic_server::route(router), for this host.
  template <router_type Router>
  [[nodiscard]] route_error route(Router&& table) {
    using router_t = std::remove_cvref_t<Router>;
    if constexpr (!detail::router_answers<request, router_t>::value) {
      (void)sizeof(detail::router_handler_checks<request, router_t>);
      return {};
    } else {
      router_t copy(std::forward<Router>(table));
      if (auto e = host_.table.add_router(std::move(copy))) return e;
      if (attached()) parent_->add_allowed_methods(detail::lean_router_binding<request, router_t>::methods());
      return {};
    }
  }
  /// Stops routing `path` on this host. Errors: errc::invalid_argument if not routed here.
  [[nodiscard]] route_error unroute(cstring_view path) { return host_.table.remove(path); }
  /// Calls `handler` for this host's requests no route of this host matched.
  template <class Handler>
  void fallback(Handler&& handler) {
    server_type::template check_handler<Handler>();
    host_.table.set_fallback(std::forward<Handler>(handler));
    if (attached()) parent_->add_allowed_methods(handler_own_methods<std::decay_t<Handler>>);
  }
  /// Also answers requests whose host is exactly `alias` (without regard to case).
  /// Errors: errc::invalid_argument if it is an alias of this host already.
  [[nodiscard]] std::error_code add_alias(cstring_view alias) {
    if (host_.has_alias(alias.view())) return make_error_code(errc::invalid_argument);
    host_.aliases.emplace_back(alias.view());
    return {};
  }
  /// Forgets an alias. Errors: errc::invalid_argument if there is none.
  [[nodiscard]] std::error_code remove_alias(cstring_view alias) noexcept {
    for (auto it = host_.aliases.begin(); it != host_.aliases.end(); ++it)
      if (http1::detail::iequals(*it, alias.view())) {
        host_.aliases.erase(it);
        return {};
      }
    return make_error_code(errc::invalid_argument);
  }
  /// The pattern given at construction.
  const std::string& pattern() const noexcept { return host_.pattern; }
  /// False once its server is gone.
  bool attached() const noexcept { return !host_.parent_gone; }

 private:
  server_type* parent_;
  detail::lean_vhost<request> host_;
};

/// The default policies on the lean engine.
using lean_server = basic_server<eager_close<>, copy_buffer, close_function<>, lean_engine>;

TETHER_END_NAMESPACE
