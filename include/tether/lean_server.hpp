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
// `auto&`) compiles against either engine. docs/engine.md lists what the lean engine does
// not serve yet (virtual hosts, routers of static routes, TLS, buffer policies other than
// copying, hubs and SSE helpers, drain).
#pragma once

#include <tether/buffer_policy.hpp>
#include <tether/close_callback.hpp>
#include <tether/close_policy.hpp>
#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/date_cache.hpp>
#include <tether/detail/decimal.hpp>
#include <tether/detail/lean_connection.hpp>
#include <tether/detail/listen_address.hpp>
#include <tether/detail/owner.hpp>
#include <tether/detail/sigpipe.hpp>
#include <tether/engine.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/headers.hpp>
#include <tether/http1/parse_error.hpp>
#include <tether/http1/request_parser.hpp>
#include <tether/http1/response_writer.hpp>
#include <tether/limits.hpp>
#include <tether/method.hpp>
#include <tether/request.hpp>
#include <tether/route.hpp>
#include <tether/server.hpp>
#include <tether/sse.hpp>
#include <tether/stream.hpp>
#include <tether/uri.hpp>

#include <event2/event.h>
#include <event2/util.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
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

/// A body the lean engine can send: bytes (std::string_view, std::string, const char*),
/// tether::shared_bytes and tether::static_bytes. It copies them into the connection's
/// output buffer (copy_buffer's semantics).
template <class Body>
concept lean_body = std::convertible_to<const Body&, std::string_view> ||
                    requires(const Body& b) {
                      { b.view() } -> std::convertible_to<std::string_view>;
                    };

template <class Body>
std::string_view lean_bytes(const Body& b) noexcept {
  if constexpr (std::convertible_to<const Body&, std::string_view>) return std::string_view(b);
  else return std::string_view(b.view());
}

template <class Body>
constexpr void refuse_lean_body() noexcept {
  static_assert(lean_body<std::remove_cvref_t<Body>>,
                "tether: the lean engine sends bytes (std::string_view, std::string, const char*), "
                "tether::shared_bytes and tether::static_bytes; file ranges and other bodies need the evhttp "
                "engine for now (docs/engine.md)");
}

/// ASCII case-insensitive equality of two header names.
inline bool lean_iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (static_cast<unsigned>(x - 'A') < 26u) x = static_cast<unsigned char>(x | 0x20);
    if (static_cast<unsigned>(y - 'A') < 26u) y = static_cast<unsigned char>(y | 0x20);
    if (x != y) return false;
  }
  return true;
}

/// The lean engine's per-server state and every connection-level step: accept, read,
/// parse, dispatch, reply, write, deadlines and close.
template <class Config>
struct lean_core {
  using conn = lean_connection<Config>;
  using request_type = basic_lean_request<Config>;

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

  /// Bytes of queued output past which pipelined requests wait (the socket is slow).
  static constexpr std::size_t output_pause = 64 * 1024;

  lean_core() = default;
  lean_core(const lean_core&) = delete;
  lean_core& operator=(const lean_core&) = delete;

  // ----- limits and deadlines --------------------------------------------------------

  void apply(const server_limits& l) noexcept {
    limits = l;
    parser_limits.max_head_bytes = static_cast<std::uint32_t>(l.max_header_bytes < 65535 ? l.max_header_bytes : 65535);
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

  // ----- accept ---------------------------------------------------------------------

  /// Takes a connection accepted on a listening socket.
  void adopt(int fd, const sockaddr_storage& peer) noexcept {
    if (is_limited(limits.max_connections) && open >= limits.max_connections) {
      static constexpr std::string_view busy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
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
    if (!c->in || !c->rd || !c->wr || event_add(c->rd, nullptr) != 0) {
      if (c->rd) event_free(c->rd);
      if (c->wr) event_free(c->wr);
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
  }

  // ----- close ----------------------------------------------------------------------

  /// Closes `c` once: its events and socket go, its exchange is aborted if a reply was
  /// still owed, its close callback runs. The object lives on while handles refer to it.
  void close(conn& c, close_reason why) noexcept {
    if (c.closed) return;
    c.closed = true;
    delete std::exchange(c.parser, nullptr);  // its state may be mid-message: not a spare
    const bool aborted = c.ph == lean_phase::pending || c.ph == lean_phase::streaming;
    if (aborted) c.ph = lean_phase::aborted;
    event_free(c.rd);
    event_free(c.wr);
    c.rd = c.wr = nullptr;
    if (c.prev) c.prev->next = c.next;
    else first = c.next;
    if (c.next) c.next->prev = c.prev;
    c.prev = c.next = nullptr;
    --open;
    if (why == close_reason::completed || why == close_reason::limit_exceeded || why == close_reason::protocol_error ||
        why == close_reason::timeout)
      ::shutdown(c.fd, SHUT_WR);
    ::close(c.fd);
    c.fd = -1;
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
    c.add_ref();
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
    c.release();
  }

  static void on_write(evutil_socket_t, short, void* arg) noexcept {
    auto& c = *static_cast<conn*>(arg);
    c.add_ref();
    c.core->flush(c);
    if (!c.closed && c.pending_output() == 0) c.core->process(c);
    c.release();
  }

  /// Room for one more read: moves the unconsumed bytes to the front, or grows the
  /// buffer up to the head limit plus max_unread_input. False if the client passed it.
  bool make_room(conn& c) noexcept {
    if (c.in_cap == 0) {  // given back by shed_buffers()
      c.in.reset(new (std::nothrow) char[4096]);
      if (!c.in) return false;
      c.in_cap = 4096;
      return true;
    }
    if (c.in_len < c.in_cap) return true;
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
        c.keep_alive = h.keep_alive;
        c.minor = h.version_minor;
        c.is_head = h.is_head();
        c.body.clear();
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

  static bool has_header(const std::string& lines, std::string_view name) noexcept {
    std::size_t at = 0;
    while (at < lines.size()) {
      const std::size_t colon = lines.find(':', at);
      if (colon == std::string::npos) break;
      if (lean_iequal(std::string_view(lines).substr(at, colon - at), name)) return true;
      const std::size_t eol = lines.find("\r\n", colon);
      if (eol == std::string::npos) break;
      at = eol + 2;
    }
    return false;
  }

  /// The head of a reply: status line, the application's fields, the framing fields,
  /// Date and Connection.
  void append_head(conn& c, int status, const char* reason, std::uint64_t length, bool chunked) noexcept {
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
    if (!default_content_type.empty() && http1::content_length_allowed(status) && (chunked || length != 0) &&
        !has_header(c.reply_headers, "Content-Type")) {
      c.out.append(http1::content_type_prefix);
      c.out.append(default_content_type);
      c.out.append("\r\n");
    }
    if (chunked) {
      c.out.append(http1::transfer_encoding_chunked);
    } else if (http1::content_length_allowed(status)) {
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
  std::error_code reply(conn& c, int status, const char* reason, std::string_view body) noexcept {
    if (c.ph != lean_phase::pending) return phase_error(c.ph, true);
    if (!valid_status(status) || !valid_reason(reason)) return make_error_code(errc::invalid_argument);
    append_head(c, status, reason, body.size(), false);
    if (http1::response_has_content(status, c.is_head)) c.out.append(body);
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
    if (!c.in_handler) after_reply_outside(c);
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
    c.ph = lean_phase::streaming;
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

  std::error_code chunk(conn& c, std::string_view bytes) noexcept {
    if (c.ph != lean_phase::streaming) return phase_error(c.ph, false);
    if (bytes.empty() || c.is_head) return {};
    if (is_limited(limits.max_pending_output) && c.pending_output() + bytes.size() + 32 > limits.max_pending_output) {
      close(c, close_reason::slow_consumer);
      return make_error_code(errc::limit_exceeded);
    }
    const http1::chunk_header h(bytes.size());
    if (!c.in_handler && c.pending_output() == 0) {
      // Outside a handler with nothing queued (an SSE event, a tick): one writev of the
      // framing and the caller's bytes, no copy; only what the socket refuses is queued.
      http1::iovec_list<3> iov;
      if (c.chunked_reply) iov.push(h.view());
      iov.push(bytes);
      if (c.chunked_reply) iov.push(http1::chunk_end);
      ssize_t n;
      do n = ::writev(c.fd, iov.data(), iov.count());
      while (n < 0 && errno == EINTR);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        close(c, errno == ECONNRESET || errno == EPIPE ? close_reason::peer_reset : close_reason::error);
        return make_error_code(errc::peer_gone);
      }
      if (n > 0) iov.consume(static_cast<std::size_t>(n));
      if (iov.empty()) return {};
      for (int i = 0; i < iov.count(); ++i)
        c.out.append(static_cast<const char*>(iov.data()[i].iov_base), iov.data()[i].iov_len);
      flush(c);  // arms EV_WRITE
      return {};
    }
    if (c.chunked_reply) {
      c.out.append(h.view());
      c.out.append(bytes);
      c.out.append(http1::chunk_end);
    } else {
      c.out.append(bytes);
    }
    if (!c.in_handler) flush(c);
    return {};
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
    std::string().swap(c.body);
    std::string().swap(c.reply_headers);
  }

  std::error_code end(conn& c) noexcept {
    if (c.ph != lean_phase::streaming) return phase_error(c.ph, false);
    if (c.chunked_reply) c.out.append(http1::last_chunk);
    complete(c);
    return {};
  }

  // ----- write ----------------------------------------------------------------------

  /// Writes what is queued: one send() in the common case; EV_WRITE only when the socket
  /// refuses bytes. Closes the connection after the last byte if it was to close.
  void flush(conn& c) noexcept {
    if (c.closed) return;
    while (c.pending_output() > 0) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.pending_output(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out_off += static_cast<std::size_t>(n);
        if (c.deadline_kind == lean_deadline::send) set_deadline(c, lean_deadline::send);  // progress
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
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
    if (c.writing) {
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
      if (detail::lean_iequal(line.substr(0, colon), name)) return line.substr(colon + 2);
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
      if (detail::lean_iequal(std::string_view(*lines_).substr(at, colon - at), name)) {
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

  // ----- replying -----------------------------------------------------------------

  /// Sends a complete reply: `status`, the output headers, Content-Length, Date and
  /// `body`. Errors: as basic_request::reply.
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, Body&& body) noexcept {
    if constexpr (!detail::lean_body<std::remove_cvref_t<Body>>) {
      detail::refuse_lean_body<Body>();
      return make_error_code(errc::invalid_argument);
    } else {
      return c_->core->reply(*c_, status, nullptr, detail::lean_bytes(body));
    }
  }
  /// Sends a complete reply with no body.
  [[nodiscard]] std::error_code reply(int status) noexcept { return c_->core->reply(*c_, status, nullptr, {}); }
  /// As reply(status, body) with a reason phrase of your own.
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, cstring_view reason, Body&& body) noexcept {
    if constexpr (!detail::lean_body<std::remove_cvref_t<Body>>) {
      detail::refuse_lean_body<Body>();
      return make_error_code(errc::invalid_argument);
    } else {
      return c_->core->reply(*c_, status, reason.c_str(), detail::lean_bytes(body));
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
    if constexpr (!(detail::lean_body<std::remove_cvref_t<Bodies>> && ...)) {
      (detail::refuse_lean_body<Bodies>(), ...);
      return make_error_code(errc::invalid_argument);
    } else if constexpr (sizeof...(Bodies) == 1) {
      return c_->core->chunk(*c_, detail::lean_bytes(bodies)...);
    } else {
      std::string joined;
      (joined.append(detail::lean_bytes(bodies)), ...);
      return c_->core->chunk(*c_, joined);
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
    if constexpr (!detail::lean_body<std::remove_cvref_t<Body>>) {
      detail::refuse_lean_body<Body>();
      return make_error_code(errc::invalid_argument);
    } else {
      return with([&] { return c_->core->reply(*c_, status, nullptr, detail::lean_bytes(body)); });
    }
  }
  /// Sends a complete reply with no body.
  [[nodiscard]] std::error_code reply(int status) noexcept {
    return with([&] { return c_->core->reply(*c_, status, nullptr, {}); });
  }
  /// As reply(status, body) with a reason phrase of your own.
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, cstring_view reason, Body&& body) noexcept {
    if constexpr (!detail::lean_body<std::remove_cvref_t<Body>>) {
      detail::refuse_lean_body<Body>();
      return make_error_code(errc::invalid_argument);
    } else {
      return with([&] { return c_->core->reply(*c_, status, reason.c_str(), detail::lean_bytes(body)); });
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
    if constexpr (!(detail::lean_body<std::remove_cvref_t<Bodies>> && ...)) {
      (detail::refuse_lean_body<Bodies>(), ...);
      return make_error_code(errc::invalid_argument);
    } else if constexpr (sizeof...(Bodies) == 1) {
      return with([&] { return c_->core->chunk(*c_, detail::lean_bytes(bodies)...); });
    } else {
      return with([&] {
        std::string joined;
        (joined.append(detail::lean_bytes(bodies)), ...);
        return c_->core->chunk(*c_, joined);
      });
    }
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

/// A type-erased request handler, stored once per route (never per request).
template <class Request>
class lean_handler {
 public:
  lean_handler() = default;
  template <class H>
  explicit lean_handler(H&& h) : obj_(new std::decay_t<H>(std::forward<H>(h))) {
    using T = std::decay_t<H>;
    call_ = [](void* o, Request& r) { (*static_cast<T*>(o))(r); };
    destroy_ = [](void* o) noexcept { delete static_cast<T*>(o); };
  }
  lean_handler(lean_handler&& o) noexcept
      : obj_(std::exchange(o.obj_, nullptr)), call_(o.call_), destroy_(std::exchange(o.destroy_, nullptr)) {}
  lean_handler& operator=(lean_handler&& o) noexcept {
    if (this != &o) {
      if (destroy_) destroy_(obj_);
      obj_ = std::exchange(o.obj_, nullptr);
      call_ = o.call_;
      destroy_ = std::exchange(o.destroy_, nullptr);
    }
    return *this;
  }
  ~lean_handler() {
    if (destroy_) destroy_(obj_);
  }
  explicit operator bool() const noexcept { return obj_ != nullptr; }
  void operator()(Request& r) const { call_(obj_, r); }

 private:
  void* obj_ = nullptr;
  void (*call_)(void*, Request&) = nullptr;
  void (*destroy_)(void*) noexcept = nullptr;
};

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

  /// Creates the server on `loop`.
  explicit basic_server(event_loop& loop) : basic_server(loop.native()) {}
  /// Creates the server on a loop the application runs itself.
  explicit basic_server(event_base* base) {
    detail::ignore_sigpipe_unless_handled();
    core_.base = base;
    core_.owner = this;
    core_.dispatch = &dispatch;
    if constexpr (requires { config::close_policy::input_limit; })
      core_.policy_input_limit = config::close_policy::input_limit;
    core_.apply(server_limits{});
  }
  basic_server(const basic_server&) = delete;
  basic_server& operator=(const basic_server&) = delete;
  ~basic_server() {
    if (drain_tick_) event_free(drain_tick_);
    stop_listening();
    core_.close_all(close_reason::server_shutdown);
    if (core_.sweep) event_free(core_.sweep);
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
    auto bound = adopt_listener(fd);
    if (!bound) ::close(fd);
    return bound;
  }
  /// Serves a listening (or bound) TCP socket the application made; returns its port.
  result<std::uint16_t> accept(int fd, int backlog = 1024) {
    int listening = 0;
    socklen_t l = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) != 0)
      return std::error_code(errno, std::system_category());
    if (!listening && ::listen(fd, backlog) != 0) return std::error_code(errno, std::system_category());
    return adopt_listener(fd);
  }
  /// Stops listening on every socket and closes them; open connections are served on.
  void stop_listening() noexcept {
    for (auto& l : listeners_) {
      event_free(l.ev);
      ::close(l.fd);
    }
    listeners_.clear();
  }
  /// The port of the first listening socket (0 if none).
  std::uint16_t port() const noexcept { return listeners_.empty() ? 0 : listeners_.front().port; }

  // ----- routes -------------------------------------------------------------------

  /// Calls `handler` for requests whose path is exactly `path` (not decoded; query
  /// ignored), whatever their method. Errors: errc::invalid_argument if routed already.
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, Handler&& handler) {
    return add_route(path, method_set{}, std::forward<Handler>(handler));
  }
  /// Calls `handler` for requests on `path` whose method is in `methods` (GET implies
  /// HEAD); other methods get 405 with an Allow header.
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, method_set methods, Handler&& handler) {
    if (methods.empty())
      return route_error(make_error_code(errc::invalid_argument), path.view(),
                         "a route needs at least one method (tether::method::get, ...)");
    if (methods.contains(method::get)) methods = methods | method::head;
    return add_route(path, methods, std::forward<Handler>(handler));
  }
  /// Stops routing `path`. Errors: errc::invalid_argument if it was not routed.
  [[nodiscard]] route_error unroute(cstring_view path) {
    for (auto it = routes_.begin(); it != routes_.end(); ++it)
      if (it->path == path.view()) {
        routes_.erase(it);
        return {};
      }
    return route_error(make_error_code(errc::invalid_argument), path.view(), "the path is not routed");
  }
  /// Calls `handler` for every request no route matched (404 without one).
  template <class Handler>
  void fallback(Handler&& handler) {
    static_assert(std::is_invocable_v<std::decay_t<Handler>&, request&>,
                  "tether: a request handler must be callable as handler(req) with this server's request& "
                  "(server_t::request&, or auto& in a lambda) (docs/concepts/request_handler.md)");
    fallback_ = detail::lean_handler<request>(std::forward<Handler>(handler));
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

  // ----- graceful drain -------------------------------------------------------------

  /// Stops the server gracefully within `deadline`: stops listening, closes idle
  /// connections, lets requests in progress get their replies (then closes their
  /// connections), and closes what is left at the deadline (close_reason::server_shutdown
  /// throughout). When no connection is left the loop's run() returns. A second call only
  /// brings the deadline forward. Held requests are not answered for you (the evhttp
  /// engine's drain_options are not served yet). Errors: errc::libevent_failure.
  template <class Rep, class Period>
  std::error_code drain(std::chrono::duration<Rep, Period> deadline) noexcept {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline);
    if (ms.count() < 0) ms = std::chrono::milliseconds{0};
    if (drain_done_) return {};
    if (!drain_tick_) {
      drain_tick_ = event_new(core_.base, -1, EV_PERSIST, &on_drain_tick, this);
      if (!drain_tick_) return make_error_code(errc::libevent_failure);
      stop_listening();
      const timeval period{0, 5000};
      event_add(drain_tick_, &period);
      drain_until_ = std::chrono::steady_clock::now() + ms;
    } else if (std::chrono::steady_clock::now() + ms < drain_until_) {
      drain_until_ = std::chrono::steady_clock::now() + ms;
    }
    event_active(drain_tick_, EV_TIMEOUT, 0);
    return {};
  }
  /// True from drain() on.
  bool draining() const noexcept { return drain_tick_ != nullptr; }
  /// True once the drain is done.
  bool drained() const noexcept { return drain_done_; }

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
  /// Requests dispatched to handlers so far.
  std::uint64_t requests_served() const noexcept { return core_.requests; }
  /// The libevent loop this server runs on.
  event_base* base() const noexcept { return core_.base; }

 private:
  struct route_entry {
    std::string path;
    method_set methods;  // empty: every method
    detail::lean_handler<request> handler;
  };
  struct listening {
    int fd = -1;
    event* ev = nullptr;
    std::uint16_t port = 0;
  };

  template <class F>
  void update(F&& change) noexcept {
    server_limits l = core_.limits;
    change(l);
    core_.apply(l);
  }

  template <class Handler>
  route_error add_route(cstring_view path, method_set methods, Handler&& handler) {
    static_assert(std::is_invocable_v<std::decay_t<Handler>&, request&>,
                  "tether: a request handler must be callable as handler(req) with this server's request& "
                  "(server_t::request&, or auto& in a lambda) (docs/concepts/request_handler.md)");
    for (const auto& r : routes_)
      if (r.path == path.view())
        return route_error(make_error_code(errc::invalid_argument), path.view(),
                           "the path is already routed; unroute it first, or choose another path");
    routes_.push_back(route_entry{std::string(path.view()), methods, detail::lean_handler<request>(std::forward<Handler>(handler))});
    return {};
  }

  result<std::uint16_t> adopt_listener(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
      return std::error_code(errno, std::system_category());
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) return make_error_code(errc::invalid_argument);
    evutil_make_socket_nonblocking(fd);
    event* ev = event_new(core_.base, fd, EV_READ | EV_PERSIST, &on_accept, this);
    if (!ev || event_add(ev, nullptr) != 0) {
      if (ev) event_free(ev);
      return make_error_code(errc::libevent_failure);
    }
    const std::uint16_t port = ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                                            : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    listeners_.push_back(listening{fd, ev, port});
    return port;
  }

  static void on_accept(evutil_socket_t fd, short, void* self) noexcept {
    auto* srv = static_cast<basic_server*>(self);
    for (int i = 0; i < 64; ++i) {  // a bounded batch per wake-up
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      const int c = ::accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) return;  // EAGAIN, or a resource error: the level-triggered event retries
      srv->core_.adopt(c, peer);
    }
  }

  /// The dispatch trampoline: route by path and method, call the handler.
  static void dispatch(void* self, request& r) noexcept {
    auto* srv = static_cast<basic_server*>(self);
    const std::string_view path = r.path();
    try {
      for (const auto& e : srv->routes_) {
        if (e.path != path) continue;
        if (!e.methods.empty() && !e.methods.contains(r.method())) {
          (void)r.output_headers().add("Allow", allow_text(e.methods));
          (void)r.reply(405);
          return;
        }
        e.handler(r);
        return;
      }
      if (srv->fallback_) {
        srv->fallback_(r);
        return;
      }
      (void)r.send_error(404);
    } catch (...) {
      // As on the evhttp engine: a 500 if nothing was sent yet, else the connection is cut
      // (a stream cannot say "failed" any other way).
      detail::report_exception("a request handler");
      if (r.pending()) (void)r.send_error(500);
      else if (auto* c = detail::lean_access::conn(r); c && !c->closed && c->ph == detail::lean_phase::streaming)
        c->core->close(*c, close_reason::error);
    }
  }

  static std::string allow_text(method_set m) {
    std::string s;
    for (method x : {method::get, method::head, method::post, method::put, method::delete_, method::options,
                     method::trace, method::connect, method::patch}) {
      if (!m.contains(x)) continue;
      if (!s.empty()) s += ", ";
      s += to_string(x);
    }
    return s;
  }

  static void on_drain_tick(evutil_socket_t, short, void* self) noexcept {
    auto* srv = static_cast<basic_server*>(self);
    auto& core = srv->core_;
    if (srv->drain_done_) return;
    const bool late = std::chrono::steady_clock::now() >= srv->drain_until_;
    using conn = detail::lean_connection<config>;
    conn* c = core.first;
    if (c) c->add_ref();
    while (c) {
      conn* next = c->next;
      if (next) next->add_ref();
      if (!c->closed) {
        const bool busy = c->ph == detail::lean_phase::pending || c->ph == detail::lean_phase::streaming ||
                          c->pending_output() > 0 || c->head_live;
        if (late || !busy) core.close(*c, close_reason::server_shutdown);
        else if (!c->close_after_write) c->keep_alive = false;  // its reply closes it
        if (!c->closed && c->close_after_write) c->after_write_reason = close_reason::server_shutdown;
      }
      c->release();
      c = next;
    }
    if (core.open == 0) {
      srv->drain_done_ = true;
      event_del(srv->drain_tick_);
      event_base_loopbreak(core.base);
    }
  }

  detail::lean_core<config> core_;
  event* drain_tick_ = nullptr;
  std::chrono::steady_clock::time_point drain_until_{};
  bool drain_done_ = false;
  std::vector<route_entry> routes_;
  detail::lean_handler<request> fallback_;
  std::vector<listening> listeners_;
};

/// The default policies on the lean engine.
using lean_server = basic_server<eager_close<>, copy_buffer, close_function<>, lean_engine>;

TETHER_END_NAMESPACE
