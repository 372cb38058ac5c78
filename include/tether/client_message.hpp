// tether/client_message.hpp - what an HTTP client sends and what it gets back.
/// @file
/// tether::client_request, tether::client_response and the client's close event.
//
// `client_request` is a request being put together: method, target, headers, body. It
// owns what it holds until client_connection::request() takes it.
// `client_response` is the view a completion (or chunk) callback gets; it is valid only
// during that callback.
#pragma once

#include <tether/buffer.hpp>
#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/libevent_use.hpp>
#include <tether/error.hpp>
#include <tether/headers.hpp>
#include <tether/inplace_function.hpp>
#include <tether/method.hpp>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

TETHER_BEGIN_NAMESPACE

namespace detail {
struct client_core;
struct client_call;

inline void init_headers(evkeyvalq& h) noexcept {
  h.tqh_first = nullptr;
  h.tqh_last = &h.tqh_first;
}
/// Moves every header of `from` to the end of `to`, without copying (TAILQ_CONCAT).
inline void move_headers(evkeyvalq& from, evkeyvalq& to) noexcept {
  if (!from.tqh_first) return;
  *to.tqh_last = from.tqh_first;
  from.tqh_first->next.tqe_prev = to.tqh_last;
  to.tqh_last = from.tqh_last;
  init_headers(from);
}
}  // namespace detail

/// An HTTP request a client_connection will send: method, request-target, headers, body.
///
/// The connection adds `Host` (from its host and port) unless you set one, and
/// `Content-Length` when there is a body or the method is POST, PUT or PATCH. Headers
/// are checked as they are added (headers_ref::add refuses CR, LF and bad names).
///
///     tether::client_request req{tether::method::post, "/items?draft=1"};
///     req.headers().add("Content-Type", "application/json");
///     req.body().append(R"({"name":"x"})");
///     conn.request(std::move(req), on_done);
///
/// Movable, not copyable. Used on the loop's thread (it holds libevent objects).
class client_request {
 public:
  /// `target` is what the request line names: an origin-form path and query
  /// ("/a/b?x=1"), an absolute URL (for proxies), or "*" for OPTIONS. It must be visible
  /// ASCII without spaces (percent-encode the rest, see percent_encode); request()
  /// refuses anything else with errc::invalid_argument.
  client_request(tether::method m, std::string target) : method_(m), target_(std::move(target)) {
    detail::init_headers(headers_);
  }
  /// Takes over `o`'s target, headers and body (`o` is left empty).
  client_request(client_request&& o) noexcept : method_(o.method_), target_(std::move(o.target_)), body_(std::exchange(o.body_, nullptr)) {
    detail::init_headers(headers_);
    detail::move_headers(o.headers_, headers_);
  }
  /// Drops what this request held and takes over `o`'s.
  client_request& operator=(client_request&& o) noexcept {
    if (this != &o) {
      evhttp_clear_headers(&headers_);
      detail::move_headers(o.headers_, headers_);
      if (body_) evbuffer_free(body_);
      body_ = std::exchange(o.body_, nullptr);
      method_ = o.method_;
      target_ = std::move(o.target_);
    }
    return *this;
  }
  client_request(const client_request&) = delete;
  client_request& operator=(const client_request&) = delete;
  ~client_request() {
    evhttp_clear_headers(&headers_);
    if (body_) evbuffer_free(body_);
  }

  /// The request method.
  tether::method method() const noexcept { return method_; }
  /// The request-target the request line will name.
  std::string_view target() const noexcept { return target_; }

  /// The headers to send (add, set, remove; validated).
  headers_ref headers() noexcept { return headers_ref(&headers_); }
  /// The body to send. Throws std::bad_alloc if libevent cannot create the buffer.
  buffer_ref body() {
    if (!body_) {
      detail::note_libevent_use();
      body_ = evbuffer_new();
      if (!body_) throw std::bad_alloc{};
    }
    return buffer_ref(body_);
  }
  /// Bytes of body queued so far.
  std::size_t body_size() const noexcept { return body_ ? evbuffer_get_length(body_) : 0; }

 private:
  friend struct detail::client_core;
  tether::method method_;
  std::string target_;
  evkeyvalq headers_;
  evbuffer* body_ = nullptr;
};

/// The response a completion or chunk callback is given. Valid only during the callback.
///
/// After a success: status(), reason(), headers() and (unless the request streams its
/// body to a chunk callback) the whole body(). After an error: status() is the status
/// the server had sent before failing, or 0; body() holds the bytes that had arrived
/// (for a request that does not stream); headers() is empty.
class client_response {
 public:
  /// The status code (200, 404, ...), or 0 if no status line arrived.
  int status() const noexcept { return status_; }
  /// The reason phrase ("OK"); empty after an error.
  std::string_view reason() const noexcept {
    const char* r = req_ ? evhttp_request_get_response_code_line(req_) : nullptr;
    return r ? std::string_view(r) : std::string_view{};
  }
  /// The response headers (empty after an error).
  headers_ref headers() const noexcept { return headers_ref(req_ ? evhttp_request_get_input_headers(req_) : empty_headers_); }
  /// The first header named `name` (case-insensitive), if any.
  std::optional<std::string_view> header(cstring_view name) const noexcept { return headers().find(name); }
  /// The body received (empty for a request that streams its body to a chunk callback).
  buffer_ref body() const noexcept { return buffer_ref(body_); }
  /// HTTP version of the response ({1, 1}, {1, 0}); {0, 0} after an error.
  std::pair<int, int> version() const noexcept { return req_ ? std::pair<int, int>{req_->major, req_->minor} : std::pair<int, int>{0, 0}; }
  /// How many connection attempts the request took (1 unless a retry was needed).
  unsigned attempts() const noexcept { return attempts_; }
  /// The libevent request (null after an error), for calls tether does not wrap. Do not
  /// keep or free it.
  evhttp_request* native() const noexcept { return req_; }

 private:
  friend struct detail::client_core;
  client_response(evhttp_request* req, int status, evbuffer* body, evkeyvalq* empty_headers, unsigned attempts) noexcept
      : req_(req), status_(status), body_(body), empty_headers_(empty_headers), attempts_(attempts) {}

  evhttp_request* req_;
  int status_;
  evbuffer* body_;
  evkeyvalq* empty_headers_;
  unsigned attempts_;
};

/// Why a client connection closed.
enum class client_close_reason : std::uint8_t {
  /// The server closed it after a complete response (`Connection: close`, HTTP/1.0).
  completed,
  /// The server closed its side (TCP FIN): an idle keep-alive connection it timed out,
  /// or a hang-up in the middle of a request.
  peer_closed,
  /// The server's kernel reset the connection (TCP RST).
  peer_reset,
  /// The read or write timeout expired (on a request, or on an idle connection).
  timeout,
  /// This side closed it: a request was cancelled, a response was over a limit, or the
  /// client_connection was destroyed.
  closed_by_client,
  /// Anything else: a malformed response, unexpected bytes on an idle connection.
  error,
};

/// A short, stable name for `r` ("peer_closed", ...).
constexpr std::string_view to_string(client_close_reason r) noexcept {
  switch (r) {
    case client_close_reason::completed: return "completed";
    case client_close_reason::peer_closed: return "peer_closed";
    case client_close_reason::peer_reset: return "peer_reset";
    case client_close_reason::timeout: return "timeout";
    case client_close_reason::closed_by_client: return "closed_by_client";
    case client_close_reason::error: return "error";
  }
  return "unknown";
}

/// What a client's close callback is told, once per TCP connection that closes.
struct client_close_event {
  /// Why it closed.
  client_close_reason reason;
  /// True if a request was in progress: it failed with `error`.
  bool aborted;
  /// The in-progress request's error (empty unless `aborted`).
  std::error_code error;
  /// The server as the client was told to reach it (host and port), valid during the
  /// callback.
  std::string_view peer_address;
  /// The server's port.
  std::uint16_t peer_port;
};

/// A client close callback: any small callable, stored in place (no heap).
template <std::size_t Capacity = 3 * sizeof(void*)>
using client_close_function = inplace_function<void(const client_close_event&), Capacity>;

TETHER_END_NAMESPACE
