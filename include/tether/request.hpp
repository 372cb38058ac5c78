// tether/request.hpp - a request inside its handler, a handle that outlives the handler,
// and a view of the request's connection.
//
// Ownership in one paragraph: libevent owns every evhttp_request and evhttp_connection.
// `basic_request` is the handler's view; it is valid until the handler returns.
// `basic_request_handle` (from hold()) is how a request outlives its handler: it is a
// counted reference to tether's per-connection state, never to libevent's objects, so
// it stays safe to use after the client hung up or the server was destroyed. Every
// reply call then returns an error (errc::peer_gone, errc::reply_finished) and touches
// nothing. `basic_connection` is a view; do not keep it past the handle or handler it
// came from.
/// @file
/// tether::basic_request (a request inside its handler), tether::basic_request_handle (a
/// request kept past its handler) and tether::basic_connection (its connection). See
/// docs/close-lifecycle.md for the ownership rules.
#pragma once

#include <tether/buffer.hpp>
#include <tether/buffer_policy.hpp>
#include <tether/bufferevent.hpp>
#include <tether/close_callback.hpp>
#include <tether/close_policy.hpp>
#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/engine.hpp>
#include <tether/detail/connection_state.hpp>
#include <tether/detail/direct_write.hpp>
#include <tether/detail/request_screen.hpp>
#include <tether/error.hpp>
#include <tether/headers.hpp>
#include <tether/limits.hpp>
#include <tether/method.hpp>
#include <tether/reply_hook.hpp>
#include <tether/server_event.hpp>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

// Defined in uri.hpp, which a program that calls basic_request::query_params() includes:
// the query parser (its decoded strings, <vector>) is not part of every server's build.
class query_params;

namespace detail {
// What query_params() returns after its one error (uri.hpp not included): enough of
// query_params that the usual uses of the result add no second error to the sentence.
struct query_params_missing {
  template <class... A>
  std::optional<std::string_view> find(A&&...) const noexcept { return std::nullopt; }
  template <class... A>
  bool contains(A&&...) const noexcept { return false; }
  template <class... A>
  std::size_t count(A&&...) const noexcept { return 0; }
  std::size_t size() const noexcept { return 0; }
  bool empty() const noexcept { return true; }
};
}  // namespace detail

/// The policies of a server, as one type that requests and handles are keyed on.
template <close_policy ClosePolicy, buffer_policy BufferPolicy, close_callback CloseCallback,
          class Engine = evhttp_engine>
struct server_config {
  /// The engine beneath the requests (engine.hpp): evhttp_engine or lean_engine, the
  /// fourth template argument of basic_server.
  using engine = Engine;
  /// How the server notices hang-ups (eager_close, native_close): the first template
  /// argument of basic_server.
  using close_policy = ClosePolicy;
  /// How reply bytes are queued and bounded (copy_buffer, reference_buffer, file_buffer,
  /// bounded): the second template argument of basic_server.
  using buffer_policy = BufferPolicy;
  /// The type each connection's close callback is stored as (close_function<>, a lambda's
  /// type, no_close_callback): the third template argument of basic_server.
  using close_callback = CloseCallback;
};

/// The policies of tether::server (basic_server<> with its defaults).
using default_config = server_config<eager_close<>, copy_buffer, close_function<>>;

template <class Config>
class basic_request;
template <class Config>
class basic_request_handle;
template <class Config>
class basic_connection;
template <class Config>
class basic_lean_request;
template <class Config>
class basic_lean_request_handle;

namespace detail {
/// The engine a config names (evhttp_engine for a config without one).
template <class Config>
struct config_engine {
  using type = evhttp_engine;
};
template <class Config>
  requires requires { typename Config::engine; }
struct config_engine<Config> {
  using type = typename Config::engine;
};
/// The request and handle types of a config's engine: the engine-neutral seam helpers
/// (streams, SSE) are written against.
template <class Config, class Engine = typename config_engine<Config>::type>
struct engine_types {
  using request = basic_request<Config>;
  using handle = basic_request_handle<Config>;
};
template <class Config>
struct engine_types<Config, lean_engine> {
  using request = basic_lean_request<Config>;
  using handle = basic_lean_request_handle<Config>;
};
}  // namespace detail

/// The request type handlers of a server with `Config` receive: basic_request<Config> on
/// the evhttp engine, basic_lean_request<Config> on the lean engine.
template <class Config>
using request_t = typename detail::engine_types<Config>::request;
/// The request handle type of a server with `Config` (what request_t<Config>::hold()
/// returns).
template <class Config>
using request_handle_t = typename detail::engine_types<Config>::handle;

namespace detail {

constexpr bool valid_status(int status) noexcept { return status >= 100 && status <= 599; }
constexpr bool valid_reason(const char* reason) noexcept {
  if (!reason) return true;
  for (const char* p = reason; *p; ++p)
    if (*p == '\r' || *p == '\n') return false;
  return true;
}

/// libevent 2.1.12 writes a complete reply's body even in answer to HEAD, and leaves out
/// its Content-Length: on a keep-alive connection the client then reads the body as the
/// start of the next response. A HEAD reply gets what a GET would, minus the body (RFC
/// 9110 section 9.3.2).
inline void drop_body_for_head(evhttp_request* req) noexcept {
  evbuffer* out = evhttp_request_get_output_buffer(req);
  const std::size_t n = evbuffer_get_length(out);
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  if (!evhttp_find_header(headers, "Content-Length")) {
    char len[24];
    std::snprintf(len, sizeof len, "%zu", n);
    evhttp_add_header(headers, "Content-Length", len);
  }
  evbuffer_drain(out, n);
}

[[nodiscard]] inline std::error_code phase_error(phase ph, bool want_pending) noexcept {
  switch (ph) {
    case phase::pending: return want_pending ? std::error_code{} : make_error_code(errc::reply_not_started);
    case phase::streaming: return want_pending ? make_error_code(errc::reply_started) : std::error_code{};
    case phase::finishing:
    case phase::completed: return make_error_code(errc::reply_finished);
    case phase::aborted: return make_error_code(errc::peer_gone);
  }
  return make_error_code(errc::peer_gone);
}

/// A streamed reply to HTTP/1.0 has no chunked encoding: unless the application set a
/// Content-Length, its body ends when the connection closes. libevent would instead
/// answer a `Connection: keep-alive` request with "Content-Length: 0" (the output buffer
/// is empty when the reply starts) and stream the body past it, which the client reads
/// as the start of the next response. Dropping the request's Connection header makes
/// libevent treat it as a plain HTTP/1.0 request (no keep-alive, close after the reply).
inline void refuse_keep_alive_for_unsized_http10(evhttp_request* req) noexcept {
  if (req->major != 1 || req->minor != 0) return;
  if (evhttp_find_header(evhttp_request_get_output_headers(req), "Content-Length")) return;
  evkeyvalq* in = evhttp_request_get_input_headers(req);
  while (evhttp_remove_header(in, "Connection") == 0) {
  }
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  while (evhttp_remove_header(out, "Connection") == 0) {
  }
  evhttp_add_header(out, "Connection", "close");
}

/// Frees every header of `h` but those named "Connection" and, if `keep_length`,
/// "Content-Length" (compared case-insensitively), through libevent, which allocated them.
/// Once a reply's head is on the wire, and once a held or streamed request's handler has
/// returned, those are all libevent and tether still read from the two lists (evhttp's
/// keep-alive decision and tether's reply_will_close: Connection; drain's "is this stream
/// chunked": Content-Length). An idle SSE stream or a held long-poll would otherwise keep
/// every header it received and sent, 112 B or more each, for its whole life.
inline void shed_headers(evkeyvalq* h, bool keep_length) noexcept {
  auto kept = [keep_length](const char* key) noexcept {
    return evutil_ascii_strcasecmp(key, "Connection") == 0 ||
           (keep_length && evutil_ascii_strcasecmp(key, "Content-Length") == 0);
  };
  for (;;) {
    const evkeyval* victim = h->tqh_first;
    while (victim && kept(victim->key)) victim = victim->next.tqe_next;
    if (!victim) return;
    // The first header of this name is `victim`: every one before it has a kept name.
    evhttp_remove_header(h, victim->key);
  }
}

/// While its server drains (basic_server::drain), a reply closes its connection once
/// written: otherwise a busy keep-alive client would keep the connection (and so the
/// drain) open with request after request. Its close callback then reports
/// close_reason::server_shutdown.
inline void close_for_drain(evhttp_request* req, connection_core* st) noexcept {
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  while (evhttp_remove_header(out, "Connection") == 0) {
  }
  evhttp_add_header(out, "Connection", "close");
  if (st && !st->forced) st->forced = close_reason::server_shutdown;
}

/// The reply calls, shared by the in-handler view and the handle. `st` is null only for
/// an untracked request answered inside its handler.
template <class Config>
struct exchange_ops {
  using state = connection_state<Config>;
  using close_policy = typename Config::close_policy;
  using buffer_policy = typename Config::buffer_policy;
  using flow = typename buffer_policy::flow;

  // A file range goes by sendfile only into a plain socket: libevent makes a segment's
  // chain a sendfile chain when the buffer it is added to drains to a socket
  // (file_buffer::append), and a TLS bufferevent would encrypt that chain's bookkeeping
  // instead of the file's bytes. Only calls that queue a file range pay for the check.
  template <class... Bodies>
  static void mark_sendfile(evbuffer* b, const server_core* core) noexcept {
    if constexpr ((std::is_same_v<std::remove_cvref_t<Bodies>, file_range> || ...)) {
      if (!core || core->plain_socket) evbuffer_set_flags(b, EVBUFFER_FLAG_DRAINS_TO_FD);
      else evbuffer_clear_flags(b, EVBUFFER_FLAG_DRAINS_TO_FD);
    }
  }

  static void resume(exchange& ex, state* st) noexcept {
    if (st && ex.held) {
      connection_control ctl{*st};
      close_policy::on_resume(ctl);
    }
  }

  template <class Body>
  [[nodiscard]] static std::error_code reply(server_core* core, exchange& ex, state* st, int status, const char* reason,
                               Body&& body) noexcept {
    if (ex.ph != phase::pending) return phase_error(ex.ph, true);
    if (!valid_status(status) || !valid_reason(reason)) return make_error_code(errc::invalid_argument);
    mark_sendfile<Body>(evhttp_request_get_output_buffer(ex.req), core);
    if (auto ec = buffer_policy::append(evhttp_request_get_output_buffer(ex.req), std::forward<Body>(body))) return ec;
    if (evhttp_request_get_command(ex.req) == EVHTTP_REQ_HEAD) drop_body_for_head(ex.req);
    if (core && core->draining) [[unlikely]]
      close_for_drain(ex.req, st);
    resume(ex, st);
    if (st) ex.will_close = connection_core::reply_will_close(ex.req);
    ex.ph = phase::finishing;
    if (core) core->stamp_date(ex.req);
    evhttp_send_reply(ex.req, status, reason, nullptr);
    return {};
  }

  [[nodiscard]] static std::error_code send_error(server_core* core, exchange& ex, state* st, int status, const char* reason) noexcept {
    if (ex.ph != phase::pending) return phase_error(ex.ph, true);
    if (!valid_status(status) || !valid_reason(reason)) return make_error_code(errc::invalid_argument);
    if (core && core->draining) [[unlikely]]
      close_for_drain(ex.req, st);
    resume(ex, st);
    // The page replaces what the output buffer holds (libevent would send it first), as
    // its headers replace the application's; the lean engine does the same.
    evbuffer* out = evhttp_request_get_output_buffer(ex.req);
    evbuffer_drain(out, evbuffer_get_length(out));
    // libevent's error page always carries `Connection: close` (evhttp_send_page_).
    if (st) ex.will_close = true;
    ex.ph = phase::finishing;
    if (core) core->stamp_date(ex.req);
    evhttp_send_error(ex.req, status, reason);
    return {};
  }

  [[nodiscard]] static std::error_code start(exchange& ex, state& st, int status, const char* reason) noexcept {
    if (ex.ph != phase::pending) return phase_error(ex.ph, true);
    if (!valid_status(status) || !valid_reason(reason)) return make_error_code(errc::invalid_argument);
    refuse_keep_alive_for_unsized_http10(ex.req);
    if (st.server && st.server->draining) [[unlikely]]
      close_for_drain(ex.req, &st);
    resume(ex, &st);
    connection_control ctl{st};
    close_policy::on_stream_start(ctl);
    ex.ph = phase::streaming;
    if (st.server) st.server->stamp_date(ex.req);
    evhttp_send_reply_start(ex.req, status, reason);
    // The head is in the output buffer: the reply's header list is written.
    shed_headers(evhttp_request_get_output_headers(ex.req), true);
    if constexpr (flow::bounded) {
      long deadline_ms = 0;
      if constexpr (is_disconnect<typename flow::action>::value) deadline_ms = static_cast<long>(flow::action::deadline.count());
      if (ex.ph == phase::streaming) st.flow.start(flow::high_water, flow::low_water, deadline_ms);
    }
    return {};
  }

  /// Queues one chunk made of `bodies`, in order (one chunk on the wire).
  template <class... Bodies>
  [[nodiscard]] static std::error_code chunk(exchange& ex, state& st, Bodies&&... bodies) noexcept {
    if (ex.ph != phase::streaming) return phase_error(ex.ph, false);
    {
      connection_control ctl{st};
      close_policy::on_stream_write(ctl);
    }
    if (ex.ph != phase::streaming)
      return st.forced == close_reason::limit_exceeded ? make_error_code(errc::limit_exceeded) : make_error_code(errc::peer_gone);
    evbuffer* scratch = st.server->scratch;
    mark_sendfile<Bodies...>(scratch, st.server);
    auto stage = [&]() noexcept {
      std::error_code ec;
      ((ec ? void() : void(ec = buffer_policy::append(scratch, std::forward<Bodies>(bodies)))), ...);
      return ec;
    };
    if constexpr (flow::bounded) {
      using action = typename flow::action;
      const bool parked = std::is_same_v<action, slow_consumer::coalesce> && st.flow.parked();
      if (parked || st.flow.above_high_water()) {
        st.flow.paused = true;
        if constexpr (std::is_same_v<action, slow_consumer::drop>) {
          return make_error_code(errc::dropped);
        } else if constexpr (std::is_same_v<action, slow_consumer::coalesce>) {
          // The newest chunk replaces the parked one; on_drain sends it at the low mark.
          auto ec = stage();
          if (!ec && !st.flow.park(scratch)) ec = make_error_code(errc::libevent_failure);
          evbuffer_drain(scratch, evbuffer_get_length(scratch));
          return ec;
        } else {
          st.flow.arm_slow_timer();
          return make_error_code(errc::would_block);
        }
      }
    }
    if (auto ec = stage()) {
      evbuffer_drain(scratch, evbuffer_get_length(scratch));
      return ec;
    }
    if (evbuffer_get_length(scratch) == 0) return {};
    // server_limits::max_pending_output: an unbounded policy's producer must not grow a
    // reader that stopped reading without limit.
    const std::size_t before = st.output_size();
    if (const std::size_t ceiling = st.server->guards.limits().max_pending_output;
        is_limited(ceiling) && (before > ceiling || evbuffer_get_length(scratch) > ceiling - before)) {
      evbuffer_drain(scratch, evbuffer_get_length(scratch));
      st.close(close_reason::slow_consumer);
      return make_error_code(errc::limit_exceeded);
    }
    switch (try_direct_write<Bodies...>(ex, st, scratch)) {
      case direct_write_result::taken: break;
      case direct_write_result::broken:
        // Part of the chunk is on the wire and the rest could not be queued: the body is
        // cut, so the connection must go (out of memory).
        st.close(close_reason::error);
        return make_error_code(errc::libevent_failure);
      case direct_write_result::not_applied:
        if constexpr (flow::bounded) st.flow.send_chunk(scratch);
        else evhttp_send_reply_chunk(ex.req, scratch);
        break;
    }
    // libevent leaves the buffer untouched when it drops the chunk (HEAD, 204, 304).
    evbuffer_drain(scratch, evbuffer_get_length(scratch));
    // What was queued (framing included) is not progress for the send timeout.
    if (st.guard) {
      const std::size_t after = st.output_size();
      guard_set::note_queued(*st.guard, after > before ? after - before : 0);
    }
    return {};
  }

  // A chunk for an idle plain socket goes straight to it (detail/direct_write.hpp): one
  // sendmsg instead of evhttp's epoll_ctl, writev, epoll_ctl. Not when evhttp would drop
  // the chunk (no body: HEAD, 1xx, 204, 304), not into a TLS bufferevent, not for file
  // ranges (sendfile chains), and under a bounded policy only once evhttp holds the
  // policy's drain callback (flow_state::send_chunk sets it with the first chunk it
  // queues): the rest of a partial write is queued behind evhttp's back, and evhttp must
  // then still call on_drain when the output falls to the low-water mark.
  template <class... Bodies>
  static direct_write_result try_direct_write(exchange& ex, state& st, evbuffer* scratch) noexcept {
    if constexpr ((std::is_same_v<std::remove_cvref_t<Bodies>, file_range> || ...)) {
      return direct_write_result::not_applied;
    } else {
      if (!st.server->plain_socket || !response_has_body(ex.req)) return direct_write_result::not_applied;
      if constexpr (flow::bounded) {
        if (!st.flow.drain_callback_set) return direct_write_result::not_applied;
      }
      return direct_write(st.bev(), scratch, ex.req->chunked != 0);
    }
  }

  // evhttp_response_needs_body (http.c, static): evhttp drops every chunk of a reply
  // without a body.
  static bool response_has_body(const evhttp_request* req) noexcept {
    const int code = req->response_code;
    return req->type != EVHTTP_REQ_HEAD && code != 204 && code != 304 && (code < 100 || code >= 200);
  }

  [[nodiscard]] static std::error_code end(exchange& ex, state* st) noexcept {
    if (ex.ph != phase::streaming) return phase_error(ex.ph, false);
    if (st) {
      if constexpr (flow::bounded) st->flow.finish(ex.req);
      ex.will_close = connection_core::reply_will_close(ex.req);
    }
    evhttp_request* req = ex.req;
    ex.ph = phase::finishing;
    if (!st) ex.req = nullptr;
    // May run on_complete and closecb before it returns (HTTP/1.0, nothing left to
    // write): nothing below may touch `req`.
    evhttp_send_reply_end(req);
    return {};
  }

  /// True if the server's buffer policy can queue every one of `Bodies`.
  template <class... Bodies>
  static constexpr bool accepts = (buffer_policy_accepts<buffer_policy, Bodies> && ...);

  /// The one error for a body type the server's buffer policy cannot queue. The reply
  /// calls call it instead of their body (if constexpr), so nothing else is compiled.
  template <class... Bodies>
  [[nodiscard]] static std::error_code refuse_bodies() noexcept {
    (refuse_body<Bodies>(), ...);
    return make_error_code(errc::invalid_argument);
  }
  template <class Body>
  static constexpr void refuse_body() noexcept {
    if constexpr (!buffer_policy_accepts<buffer_policy, Body>) {
      using B = std::remove_cvref_t<Body>;
      static_assert(!std::is_same_v<B, file_range>,
                    "tether: this server's buffer policy cannot queue a tether::file_range: file ranges are sent "
                    "with sendfile(2) by tether::file_buffer only; declare the server as "
                    "tether::basic_server<tether::eager_close<>, tether::file_buffer> (or bounded<tether::file_buffer, "
                    "...>) (docs/buffers/file.md)");
      static_assert(std::is_same_v<B, file_range>,
                    "tether: this server's buffer policy cannot queue this body type: every shipped policy takes "
                    "bytes (std::string_view, std::string, const char*), tether::shared_bytes and "
                    "tether::static_bytes, and tether::file_buffer also tether::file_range; convert the body, or "
                    "give your policy an append(evbuffer*, Body) overload (docs/concepts/buffer_policy.md)");
    }
  }
};

template <class Server, class Handler>
struct handler_holder;
struct request_access;

}  // namespace detail

/// The request a handler is called with. Valid until the handler returns.
///
/// Reading: method(), uri(), path(), query(), host(), input_headers(), body().
/// Replying, once: reply() or send_error(); or start(), send_chunk()..., end().
/// Keeping it: hold() returns a handle that outlives the handler (long-poll, streaming).
/// A handler that returns with no reply and no handle gets a 500 sent for it (and a line
/// on stderr): otherwise the client would wait forever.
template <class Config>
class basic_request {
 public:
  /// The server_config of the server this request came from; the helpers built on a
  /// request (basic_stream, basic_sse_stream, ...) are keyed on it.
  using config = Config;
  /// What hold() returns: the request, kept past the handler.
  using handle_type = basic_request_handle<Config>;
  /// What connection() returns: a view of the connection, for on_close() and the peer.
  using connection_type = basic_connection<Config>;

  basic_request(const basic_request&) = delete;
  basic_request& operator=(const basic_request&) = delete;

  // ----- reading ------------------------------------------------------------------

  /// The request method (method::get, method::post, ...).
  tether::method method() const noexcept { return static_cast<tether::method>(evhttp_request_get_command(req_)); }
  /// The request-target as sent ("/a/b?x=1"), not decoded.
  std::string_view uri() const noexcept { return str(evhttp_request_get_uri(req_)); }
  /// The path part of the target, not decoded.
  std::string_view path() const noexcept {
    const evhttp_uri* u = evhttp_request_get_evhttp_uri(req_);
    return u ? str(evhttp_uri_get_path(u)) : std::string_view{};
  }
  /// The query part of the target (after '?'), if any, not decoded.
  std::optional<std::string_view> query() const noexcept {
    const evhttp_uri* u = evhttp_request_get_evhttp_uri(req_);
    const char* q = u ? evhttp_uri_get_query(u) : nullptr;
    if (!q) return std::nullopt;
    return std::string_view(q);
  }
  /// The query parsed into decoded name/value pairs; empty without a query. Include
  /// `<tether/uri.hpp>` (or `<tether/tether.hpp>`) to call it: a template, so that
  /// servers that never parse a query do not compile the parser.
  /// Errors: errc::invalid_argument for a malformed %-escape.
  /// Returns result<tether::query_params>.
  template <class Params = tether::query_params>
  auto query_params() const {
    if constexpr (requires { sizeof(Params); }) {
      return Params::parse(query().value_or(std::string_view{}));
    } else {
      static_assert(requires { sizeof(Params); },
                    "tether: request::query_params(): include <tether/uri.hpp> (or <tether/tether.hpp>) before "
                    "calling it; it defines tether::query_params (docs/uri.md)");
      return result<detail::query_params_missing>(errc::invalid_argument);
    }
  }
  /// The Host header (or the host of an absolute target), as sent.
  std::string_view host() const noexcept { return str(evhttp_request_get_host(req_)); }
  /// HTTP version of the request: {1, 1}, {1, 0}.
  std::pair<int, int> version() const noexcept { return {req_->major, req_->minor}; }

  /// The request's header fields, as the client sent them (names compare case-insensitively).
  /// Valid until the handler returns; copy what you keep.
  headers_ref input_headers() const noexcept { return headers_ref(evhttp_request_get_input_headers(req_)); }
  /// The reply's header fields: add them before reply() or start(). libevent adds
  /// Content-Length, Date (HTTP/1.1) and Connection itself; the server's default content
  /// type (basic_server::set_default_content_type) is added if there is none.
  headers_ref output_headers() const noexcept { return headers_ref(evhttp_request_get_output_headers(req_)); }
  /// The request body (libevent reads it whole before calling the handler).
  buffer_ref body() const noexcept { return buffer_ref(evhttp_request_get_input_buffer(req_)); }
  /// The reply body buffer; reply() sends what is in it, after appending its argument;
  /// send_error() discards it; start() writes it after the head unframed (so use it with
  /// start_sized() or HTTP/1.0 only: the lean engine sends it as a first chunk).
  buffer_ref output() const noexcept { return buffer_ref(evhttp_request_get_output_buffer(req_)); }

  // ----- replying -----------------------------------------------------------------

  /// Sends a complete reply: `status`, the output headers, the output buffer plus
  /// `body` (bytes, or anything the buffer policy accepts: shared_bytes, file ranges...).
  /// libevent adds Content-Length (and Date on HTTP/1.1).
  /// Errors: errc::reply_finished (already answered), errc::reply_started (a stream was
  /// started: use end()), errc::peer_gone (the client left), errc::invalid_argument (a
  /// status outside 100 to 599); nothing is sent then.
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, Body&& body) noexcept {
    if constexpr (!ops::template accepts<Body>) return ops::template refuse_bodies<Body>();
    else return ops::reply(srv_, *ex_, st_, status, nullptr, std::forward<Body>(body));
  }
  /// Sends a complete reply with `status` and what the output buffer holds (usually nothing).
  /// Errors: as reply(status, body).
  [[nodiscard]] std::error_code reply(int status) noexcept { return ops::reply(srv_, *ex_, st_, status, nullptr, std::string_view{}); }
  /// As above with an explicit reason phrase ("OK" is libevent's default for 200).
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, cstring_view reason, Body&& body) noexcept {
    if constexpr (!ops::template accepts<Body>) return ops::template refuse_bodies<Body>();
    else return ops::reply(srv_, *ex_, st_, status, reason.c_str(), std::forward<Body>(body));
  }
  /// Sends libevent's HTML error page for `status`.
  [[nodiscard]] std::error_code send_error(int status, const char* reason = nullptr) noexcept {
    return ops::send_error(srv_, *ex_, st_, status, reason);
  }
  /// Starts a streamed reply: HTTP/1.1 chunked unless Content-Length was set; an
  /// HTTP/1.0 client gets a body that ends when the connection closes.
  [[nodiscard]] std::error_code start(int status, const char* reason = nullptr) noexcept {
    auto* st = promote();
    if (!st) return make_error_code(errc::libevent_failure);
    return ops::start(*ex_, *st, status, reason);
  }
  /// Queues one chunk of a streamed reply (bytes, or anything the buffer policy accepts).
  /// Under a bounded policy it may return errc::would_block or errc::dropped.
  /// Several bodies make one chunk, in order.
  template <class... Bodies>
  [[nodiscard]] std::error_code send_chunk(Bodies&&... bodies) noexcept {
    if constexpr (!ops::template accepts<Bodies...>) {
      return ops::template refuse_bodies<Bodies...>();
    } else {
      if (!st_) return detail::phase_error(ex_->ph, false);
      return ops::chunk(*ex_, *st_, std::forward<Bodies>(bodies)...);
    }
  }
  /// Ends a streamed reply.
  [[nodiscard]] std::error_code end() noexcept { return ops::end(*ex_, st_); }

  // ----- keeping it ---------------------------------------------------------------

  /// A handle through which the request can be answered after the handler returns.
  /// The close policy starts watching the connection when the handler returns.
  handle_type hold() noexcept {
    auto* st = promote();
    if (!st) return handle_type{};
    return handle_type(st, st->seq);
  }

  /// The connection this request arrived on.
  connection_type connection() noexcept { return connection_type(this); }

  /// True until a reply is sent or the client hangs up.
  bool pending() const noexcept { return ex_->ph == detail::phase::pending; }

  /// The libevent request, for calls tether does not wrap. Do not free it, and do not
  /// keep it past the handler: use hold().
  evhttp_request* native() const noexcept { return req_; }

 private:
  friend struct detail::request_access;
  template <class>
  friend class basic_connection;
  using ops = detail::exchange_ops<Config>;

  basic_request(detail::server_core& s, evhttp_request* r) noexcept : srv_(&s), req_(r) {
    local_.req = r;
  }

  static std::string_view str(const char* s) noexcept { return s ? std::string_view(s) : std::string_view{}; }

  /// Attaches tether's per-connection state to this request (once).
  detail::connection_state<Config>* promote() noexcept {
    if (st_) return st_;
    evhttp_connection* evcon = evhttp_request_get_connection(req_);
    if (!evcon) return nullptr;
    auto* st = detail::connection_state<Config>::acquire(*srv_, evcon);
    if (!st) return nullptr;
    attach(st);
    return st;
  }

  void attach(detail::connection_state<Config>* st) noexcept {
    st->add_ref();
    if (local_.req && local_.ph != detail::phase::aborted) {
      st->begin(local_.req);
      st->ex.ph = local_.ph;
      if (local_.ph == detail::phase::finishing)
        st->ex.will_close = detail::connection_core::reply_will_close(local_.req);
    } else {
      ++st->seq;
      st->ex = local_;
    }
    st_ = st;
    ex_ = &st->ex;
  }

  /// Tells the connection's guard that a handler has the request (its read deadlines
  /// end; it hears when the reply completes). On a connection tether already tracks,
  /// every request is tracked too, so that close reasons and stale handles stay exact.
  void adopt() noexcept {
    detail::connection_guard* g = srv_->guards.dispatch(req_);
    if (g && g->tracked) attach(static_cast<detail::connection_state<Config>*>(g->tracked));
  }

  /// Answers a request detail::screen_request refused, instead of its handler: the
  /// status and `Connection: close` (libevent's error page), so the connection closes
  /// once the reply is written and nothing after this head is parsed as a request. A
  /// tracked connection reports close_reason::protocol_error (docs/security.md).
  void refuse(detail::screen_verdict v) noexcept {
    // libevent writes the request's version into the status line ("HTTP/1.-1").
    if (req_->major != 1 || req_->minor < 0 || req_->minor > 1) {
      req_->major = 1;
      req_->minor = 1;
    }
    if (st_) st_->forced = close_reason::protocol_error;
    server_event ev{server_event_kind::request_rejected};
    ev.status = v.status;
    ev.what = v.what;
    const auto peer = connection();
    ev.peer_address = peer.peer_address();
    ev.peer_port = peer.peer_port();
    srv_->report(ev);
    (void)send_error(v.status, nullptr);
  }

  /// Runs after the handler: watch a held request, answer an abandoned one.
  void finish(bool threw) noexcept {
    if (threw && ex_->ph == detail::phase::streaming && st_) {
      st_->close(close_reason::error);
    } else if (ex_->ph == detail::phase::streaming) {
      // The request outlives its handler: keep only what its end still reads (native()
      // is not to be kept past the handler; handles read no headers).
      detail::shed_headers(evhttp_request_get_input_headers(req_), false);
      if (st_ && st_->guard) detail::guard_set::read_small(*st_->guard);
    } else if (ex_->ph == detail::phase::pending) {
      if (!threw && st_ && st_->refs > 1) {
        ex_->held = true;
        detail::shed_headers(evhttp_request_get_input_headers(req_), false);  // before on_hold may close
        if (st_->guard) detail::guard_set::read_small(*st_->guard);
        connection_control ctl{*st_};
        Config::close_policy::on_hold(ctl);
      } else {
        if (!threw)
          std::fprintf(stderr, "tether: %.*s %.*s: the handler returned without replying or holding the request; sent 500\n",
                       static_cast<int>(to_string(method()).size()), to_string(method()).data(),
                       static_cast<int>(uri().size()), uri().data());
        (void)send_error(500, nullptr);
      }
    }
    if (st_) st_->release();
  }

  detail::server_core* srv_;
  evhttp_request* req_;
  detail::exchange local_{};
  detail::exchange* ex_ = &local_;
  detail::connection_state<Config>* st_ = nullptr;
};

/// A counted reference to a request that outlives its handler (hold()).
///
/// Copyable; all copies refer to the same request. Every reply call checks first and
/// returns errc::peer_gone once the client hung up, errc::reply_finished once the reply
/// is complete; neither touches libevent. When the last handle to a request that is still
/// waiting goes away, tether finishes it for you: a held request gets a 500, a stream is
/// ended. Use on the loop's thread only.
template <class Config>
class basic_request_handle {
 public:
  /// The server_config of the server the request came from.
  using config = Config;
  /// What connection() returns: a view of the request's connection.
  using connection_type = basic_connection<Config>;

  basic_request_handle() noexcept = default;
  /// Another reference to the same request (the count grows; nothing is sent).
  basic_request_handle(const basic_request_handle& o) noexcept : st_(o.st_), seq_(o.seq_) {
    if (st_) st_->add_ref();
  }
  /// Takes over `o`'s reference; `o` becomes empty (its calls return errc::empty_handle).
  basic_request_handle(basic_request_handle&& o) noexcept
      : st_(std::exchange(o.st_, nullptr)), seq_(o.seq_) {}
  /// Refers to `o`'s request instead; the reference held before is dropped as by reset(),
  /// which may finish that request (see the class comment).
  basic_request_handle& operator=(basic_request_handle o) noexcept {
    std::swap(st_, o.st_);
    std::swap(seq_, o.seq_);
    return *this;
  }
  ~basic_request_handle() { reset(); }

  /// Drops this reference (finishing the request if it was the last, see above).
  void reset() noexcept {
    auto* st = std::exchange(st_, nullptr);
    if (!st) return;
    if (st->refs == 1 && !st->closed && st->seq == seq_) {
      if (st->ex.ph == detail::phase::pending)
        (void)detail::exchange_ops<Config>::send_error(st->server, st->ex, st, 500, nullptr);
      else if (st->ex.ph == detail::phase::streaming)
        (void)detail::exchange_ops<Config>::end(st->ex, st);
    }
    st->release();
  }

  /// True while the request waits for (the rest of) its reply and the client is there.
  bool alive() const noexcept {
    return st_ && st_->seq == seq_ &&
           (st_->ex.ph == detail::phase::pending || st_->ex.ph == detail::phase::streaming);
  }
  /// True once the client hung up (or the server went away) before the reply completed.
  bool peer_gone() const noexcept { return st_ && st_->seq == seq_ && st_->ex.ph == detail::phase::aborted; }
  /// True unless the handle is empty (default-constructed, moved from or reset). Says
  /// nothing about the client: use alive() or peer_gone() for that.
  explicit operator bool() const noexcept { return st_ != nullptr; }

  /// Sends a complete reply: `status` (100 to 599), the headers added so far and `body`
  /// (bytes, or anything the server's buffer policy accepts). libevent adds Content-Length.
  /// Errors: errc::peer_gone (the client left; nothing sent), errc::reply_finished (already
  /// answered, or the handle is from an earlier request of the connection),
  /// errc::reply_started (a stream was started: use end()), errc::empty_handle,
  /// errc::invalid_argument (a status outside 100 to 599).
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, Body&& body) noexcept {
    if constexpr (!ops::template accepts<Body>) return ops::template refuse_bodies<Body>();
    else return with([&](auto& ex) { return ops::reply(st_->server, ex, st_, status, nullptr, std::forward<Body>(body)); });
  }
  /// Sends a complete reply with no body. Errors: as reply(status, body).
  [[nodiscard]] std::error_code reply(int status) noexcept {
    return with([&](auto& ex) { return ops::reply(st_->server, ex, st_, status, nullptr, std::string_view{}); });
  }
  /// As reply(status, body) with a reason phrase of your own ("OK" is libevent's for 200);
  /// errc::invalid_argument also for a reason holding CR or LF.
  template <class Body>
  [[nodiscard]] std::error_code reply(int status, cstring_view reason, Body&& body) noexcept {
    if constexpr (!ops::template accepts<Body>) return ops::template refuse_bodies<Body>();
    else return with([&](auto& ex) { return ops::reply(st_->server, ex, st_, status, reason.c_str(), std::forward<Body>(body)); });
  }
  /// Sends libevent's HTML error page for `status` with `Connection: close`, so the
  /// connection closes once it is written. Errors: as reply(status, body).
  [[nodiscard]] std::error_code send_error(int status, const char* reason = nullptr) noexcept {
    return with([&](auto& ex) { return ops::send_error(st_->server, ex, st_, status, reason); });
  }
  /// Starts a streamed reply (chunked for HTTP/1.1 unless a Content-Length header was added;
  /// ended by closing the connection for HTTP/1.0); send chunks with send_chunk(), finish
  /// with end(). The close policy watches the connection from here on.
  /// Errors: as reply(status, body).
  [[nodiscard]] std::error_code start(int status, const char* reason = nullptr) noexcept {
    return with([&](auto& ex) { return ops::start(ex, *st_, status, reason); });
  }
  /// Queues one chunk; under a bounded policy it may return errc::would_block (wait
  /// for reply_hook::on_writable) or errc::dropped.
  /// Several bodies make one chunk, in order.
  template <class... Bodies>
  [[nodiscard]] std::error_code send_chunk(Bodies&&... bodies) noexcept {
    if constexpr (!ops::template accepts<Bodies...>) return ops::template refuse_bodies<Bodies...>();
    else return with([&](auto& ex) { return ops::chunk(ex, *st_, std::forward<Bodies>(bodies)...); });
  }
  /// Ends a streamed reply (the zero-length chunk, or the connection's close for HTTP/1.0).
  /// Errors: errc::reply_not_started (no start()), errc::peer_gone, errc::reply_finished,
  /// errc::empty_handle.
  [[nodiscard]] std::error_code end() noexcept {
    return with([&](auto& ex) { return ops::end(ex, st_); });
  }
  /// Links `hook` to this request: it hears when a bounded output is writable again and
  /// when the exchange ends (completed, client gone, server gone). Errors: as the reply
  /// calls, when the request is no longer waiting.
  [[nodiscard]] std::error_code attach(reply_hook& hook) noexcept {
    hook.detach();
    return watch(detail::reply_hook_access::watcher(hook));
  }
  /// Links a bare watcher (what reply_hook, hubs and long-poll queues are built on).
  [[nodiscard]] std::error_code watch(detail::exchange_watcher& w) noexcept {
    return with([&](auto& ex) -> std::error_code {
      if (ex.ph != detail::phase::pending && ex.ph != detail::phase::streaming) return detail::phase_error(ex.ph, false);
      detail::connection_core::unlink(w);
      st_->link(w);
      return {};
    });
  }
  /// Bytes queued for the client and not yet written (0 once the connection is gone).
  std::size_t queued_bytes() const noexcept {
    return st_ && st_->seq == seq_ && !st_->closed ? st_->output_size() : 0;
  }
  /// Adds a header to the reply (before reply() or start()).
  [[nodiscard]] std::error_code add_header(cstring_view name, cstring_view value) noexcept {
    return with([&](auto& ex) -> std::error_code {
      if (ex.ph != detail::phase::pending) return detail::phase_error(ex.ph, true);
      return headers_ref(evhttp_request_get_output_headers(ex.req)).add(name, value);
    });
  }

  /// Closes the connection now (close_reason::closed_by_server); close callbacks run
  /// before this returns.
  void close() noexcept {
    if (st_ && st_->seq == seq_) st_->close(close_reason::closed_by_server);
  }

  /// The connection of this request (a view; valid while this handle is).
  connection_type connection() const noexcept { return connection_type(st_); }

 private:
  friend class basic_request<Config>;
  friend struct detail::request_access;
  using ops = detail::exchange_ops<Config>;

  basic_request_handle(detail::connection_state<Config>* st, std::uint32_t seq) noexcept : st_(st), seq_(seq) {
    st_->add_ref();
  }

  template <class F>
  [[nodiscard]] std::error_code with(F&& f) noexcept {
    if (!st_) return make_error_code(errc::empty_handle);
    if (st_->seq != seq_) return make_error_code(errc::reply_finished);
    return f(st_->ex);
  }

  detail::connection_state<Config>* st_ = nullptr;
  std::uint32_t seq_ = 0;
};

/// A view of the connection a request arrived on.
template <class Config>
class basic_connection {
 public:
  /// The type on_close() stores the callback as: the server's CloseCallback (close_function<>
  /// for tether::server).
  using callback_type = typename Config::close_callback;

  /// The client's address ("127.0.0.1", "::1"); empty once the connection is gone.
  std::string_view peer_address() const noexcept {
    evhttp_connection* c = evcon();
    if (!c) return {};
    char* a = nullptr;
    ev_uint16_t p = 0;
    evhttp_connection_get_peer(c, &a, &p);
    return a ? std::string_view(a) : std::string_view{};
  }
  /// The client's port; 0 once the connection is gone.
  std::uint16_t peer_port() const noexcept {
    evhttp_connection* c = evcon();
    if (!c) return 0;
    char* a = nullptr;
    ev_uint16_t p = 0;
    evhttp_connection_get_peer(c, &a, &p);
    return p;
  }
  /// False once the connection is closed.
  bool open() const noexcept { return evcon() != nullptr; }

  /// Sets the callback run once when this connection closes, whatever the reason (see
  /// close_event). It is stored by value in the connection's state. It also fires for a
  /// graceful close after a complete reply (close_reason::completed) and on keep-alive
  /// connections after later requests.
  ///
  /// One callback per connection: a second on_close on the same connection (a later
  /// request on a keep-alive connection, or the same handler twice) REPLACES the first,
  /// which is destroyed without being called; only the last one set runs, once. Errors:
  /// errc::peer_gone when the connection is already gone (nothing is stored).
  ///
  /// A callback this server cannot store is one compile error that says why and what to
  /// do (docs/concepts/close_callback.md).
  template <class F>
    requires(detail::close_callback_fault_of<callback_type, F>() == detail::close_callback_fault::none)
  [[nodiscard]] std::error_code on_close(F&& f) noexcept(std::is_nothrow_constructible_v<callback_type, F&&>) {
    auto* st = state();
    if (!st) return make_error_code(errc::peer_gone);
    st->set_callback(callback_type(std::forward<F>(f)));
    return {};
  }
  /// A callback this server cannot store: the one error that says why (nothing else of
  /// the call is compiled).
  template <class F>
    requires(detail::close_callback_fault_of<callback_type, F>() != detail::close_callback_fault::none)
  [[nodiscard]] std::error_code on_close(F&&) noexcept {
    using fault = detail::close_callback_fault;
    constexpr fault why = detail::close_callback_fault_of<callback_type, F>();
    static_assert(why != fault::no_callbacks,
                  "tether: on_close: this server keeps no close callback (its CloseCallback is "
                  "tether::no_close_callback); declare it with tether::close_function<> (the default) or your "
                  "callback's type to set one (docs/concepts/close_callback.md)");
    static_assert(why != fault::not_callable,
                  "tether: on_close: the callback must be callable as f(const tether::close_event&); give it that "
                  "parameter: [](const tether::close_event& e) noexcept { ... } (docs/concepts/close_callback.md)");
    static_assert(why != fault::too_large ||
                      sizeof(std::remove_cvref_t<F>) <= detail::close_function_capacity<callback_type>::value,
                  "tether: on_close: the callback is larger than the server's in-place close_function<Capacity> "
                  "(3 pointers by default, never a heap block); capture less (a pointer or reference to the state, "
                  "or a std::unique_ptr to it), or declare the server with a larger capacity: "
                  "tether::basic_server<ClosePolicy, BufferPolicy, tether::close_function<64>> "
                  "(docs/concepts/close_callback.md)");
    static_assert(why != fault::over_aligned,
                  "tether: on_close: the callback is over-aligned for close_function's storage; capture a pointer "
                  "to the over-aligned object instead (docs/concepts/close_callback.md)");
    static_assert(why != fault::throwing_move,
                  "tether: on_close: the callback must be nothrow-move-constructible (tether moves it into the "
                  "connection's state); capture what moves without throwing, or a pointer "
                  "(docs/concepts/close_callback.md)");
    static_assert(why != fault::wrong_type,
                  "tether: on_close: this server stores close callbacks of one type (its CloseCallback template "
                  "argument) and this callback has another; pass an object of that type, or declare the server "
                  "with tether::close_function<> to take any small callable (docs/concepts/close_callback.md)");
    return {};
  }

  /// Closes the connection now (close_reason::closed_by_server).
  void close() noexcept {
    if (auto* st = state()) st->close(close_reason::closed_by_server);
  }

  /// The connection's bufferevent (owned by evhttp), to inspect its buffers; null view
  /// once the connection is gone.
  std::optional<bufferevent_ref> bufferevent() const noexcept {
    evhttp_connection* c = evcon();
    if (!c) return std::nullopt;
    return bufferevent_ref(evhttp_connection_get_bufferevent(c));
  }

  /// The libevent connection, for calls tether does not wrap; null once it is gone. evhttp
  /// owns it: do not free it or replace its callbacks (tether's close path relies on them).
  evhttp_connection* native() const noexcept { return evcon(); }

 private:
  friend class basic_request<Config>;
  friend class basic_request_handle<Config>;
  explicit basic_connection(basic_request<Config>* r) noexcept : req_(r) {}
  explicit basic_connection(detail::connection_state<Config>* st) noexcept : st_(st) {}

  detail::connection_state<Config>* state() noexcept {
    if (req_) return req_->promote();
    return st_ && !st_->closed ? st_ : nullptr;
  }
  evhttp_connection* evcon() const noexcept {
    if (req_) return evhttp_request_get_connection(req_->req_);
    return st_ ? st_->evcon : nullptr;
  }

  basic_request<Config>* req_ = nullptr;
  detail::connection_state<Config>* st_ = nullptr;
};

namespace detail {
/// What the server's dispatch trampoline needs from a request.
struct request_access {
  template <class Config>
  static basic_request<Config> make(server_core& s, evhttp_request* r) noexcept {
    return basic_request<Config>(s, r);
  }
  template <class Config>
  static void adopt(basic_request<Config>& r) noexcept {
    r.adopt();
  }
  template <class Config>
  static void finish(basic_request<Config>& r, bool threw) noexcept {
    r.finish(threw);
  }
  template <class Config>
  static void refuse(basic_request<Config>& r, screen_verdict v) noexcept {
    r.refuse(v);
  }
  /// A handle to the current exchange of `st` (the drain's last-words hook gets one).
  template <class Config>
  static basic_request_handle<Config> handle(connection_state<Config>* st) noexcept {
    return basic_request_handle<Config>(st, st->seq);
  }
};
}  // namespace detail

TETHER_END_NAMESPACE
