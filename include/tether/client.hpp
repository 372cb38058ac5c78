// tether/client.hpp - an HTTP/1.1 client connection over libevent's evhttp client.
/// @file
/// tether::client_connection (PECL event's EventHttpConnection) and parse_http_url.
/// See docs/client.md.
#pragma once

#include <tether/buffer.hpp>
#include <tether/client_message.hpp>
#include <tether/client_options.hpp>
#include <tether/config.hpp>
#include <tether/detail/client_core.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/method.hpp>
#include <tether/uri.hpp>

#include <event2/bufferevent.h>
#include <event2/http.h>

#include <concepts>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// A type `F` is a client_completion if it can be called as
/// `f(std::error_code, const client_response&)`: once per request, after its response
/// arrived (error empty) or it failed (error set).
template <class F>
concept client_completion = std::invocable<F&, std::error_code, const client_response&>;

/// A type `F` is a client_chunk_handler if it can be called as
/// `f(const client_response&, buffer_ref chunk)` or `f(buffer_ref chunk)`: for each
/// piece of a response body as it arrives.
template <class F>
concept client_chunk_handler =
    std::invocable<F&, const client_response&, buffer_ref> || std::invocable<F&, buffer_ref>;

/// One HTTP/1.1 client connection to one server (PECL event's EventHttpConnection).
///
/// Requests are sent one after another on one TCP connection, kept alive between them;
/// the connection is made on the first request and made again when the server closed
/// it. Each request's completion callback runs exactly once, on the loop's thread:
///   * with an empty error and the response, once the whole response arrived;
///   * with an error (docs/client.md has the table): std::errc::connection_refused,
///     errc::connect_timeout, errc::response_timeout, errc::no_response,
///     errc::incomplete_response, errc::response_too_large, errc::bad_response,
///     errc::resolve_failed, errc::cancelled, or the system's reason for a connect error.
/// request() itself returns an error, and then never calls back, when the request cannot
/// even be sent (invalid target, a local address that cannot be bound, a host name the
/// blocking resolver rejects).
///
/// Callbacks are stored by their own types in a per-request node (one allocation); no
/// std::function. An exception escaping one is caught and reported on stderr.
///
/// Lifetime: create it after its event_loop, destroy it before. Destroying it completes
/// every request still outstanding with errc::cancelled (before the destructor returns)
/// and closes the connection (the close callback runs with closed_by_client). This is
/// safe inside any of its own callbacks; libevent's connection is then freed on the next
/// loop iteration. Movable.
///
///     tether::event_loop loop;
///     tether::client_connection conn{loop, "127.0.0.1", 8080};
///     auto sent = conn.get("/hello", [&](std::error_code ec, const tether::client_response& res) {
///       if (!ec) std::printf("%d %s\n", res.status(), res.body().to_string().c_str());
///       loop.stop();
///     });
///     if (!sent) return 1;
///     loop.run();
class client_connection {
 public:
  /// Identifies a request of this connection (for cancel()).
  using request_id = std::uint64_t;

  /// A connection to `host` (a name, an IPv4 address, or an IPv6 address with or
  /// without brackets) and `port`. Nothing is connected until the first request.
  /// Throws std::bad_alloc if libevent cannot allocate. Invalid settings (port 0, an
  /// empty host, a local_address that is not an IP literal) make every request()
  /// return errc::invalid_argument or errc::invalid_address.
  client_connection(event_loop& loop, std::string_view host, std::uint16_t port, const client_options& options = {})
      : client_connection(loop.native(), nullptr, host, port, options) {}
  /// As above, on a libevent event_base.
  client_connection(event_base* base, std::string_view host, std::uint16_t port, const client_options& options = {})
      : client_connection(base, nullptr, host, port, options) {}
  /// As above over a bufferevent you made (evhttp_connection_base_bufferevent_new):
  /// the client takes it over and libevent frees it with the connection. This is where
  /// a TLS bufferevent (bufferevent_openssl_socket_new with BUFFEREVENT_SSL_CONNECTING)
  /// plugs in. Null means a plain socket.
  client_connection(event_base* base, bufferevent* transport, std::string_view host, std::uint16_t port,
                    const client_options& options = {})
      : core_(detail::client_core::create(base, transport, host, port, options)) {
    if (!core_) throw std::bad_alloc{};
  }

  /// As above over a transport's bufferevent, with the transport's explanation of a
  /// failed connect (tls.hpp's https_client: errc::tls_handshake_failed,
  /// errc::tls_certificate_rejected). Throws std::bad_alloc if libevent cannot allocate.
  client_connection(event_base* base, const detail::client_transport& transport, std::string_view host,
                    std::uint16_t port, const client_options& options = {})
      : client_connection(base, transport.bev, host, port, options) {
    core_->transport_error = transport.explain;
  }

  client_connection(const client_connection&) = delete;
  client_connection& operator=(const client_connection&) = delete;
  /// Takes over `o`'s connection and requests; `o` then returns errc::empty_handle.
  client_connection(client_connection&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  /// Ends this connection as the destructor does, then takes over `o`'s.
  client_connection& operator=(client_connection&& o) noexcept {
    if (this != &o) {
      reset();
      core_ = std::exchange(o.core_, nullptr);
    }
    return *this;
  }
  ~client_connection() { reset(); }

  // ----- requests -------------------------------------------------------------------

  /// Sends `req`; `done(error, response)` runs once when the response is complete or
  /// the request failed. Returns the request's id (for cancel()).
  template <class Done>
  result<request_id> request(client_request req, Done&& done) {
    // The completion callback is called as done(std::error_code, const tether::client_response&).
    static_assert(client_completion<std::decay_t<Done>>,
                  "tether: a client completion callback must be callable as f(std::error_code, const tether::client_response&)");
    return submit(req, detail::no_chunk_handler{}, std::forward<Done>(done));
  }

  /// As above, streaming the body: `on_chunk` gets each piece of the body as it arrives
  /// (chunked or not) and the response passed to `done` has an empty body(). The
  /// buffer is emptied after each call.
  template <class OnChunk, class Done>
  result<request_id> request(client_request req, OnChunk&& on_chunk, Done&& done) {
    // Chunk handlers are called as on_chunk(const tether::client_response&, tether::buffer_ref)
    // or on_chunk(tether::buffer_ref).
    static_assert(client_chunk_handler<std::decay_t<OnChunk>>,
                  "tether: a client chunk callback must be callable as f(const tether::client_response&, tether::buffer_ref) or f(tether::buffer_ref)");
    static_assert(client_completion<std::decay_t<Done>>,
                  "tether: a client completion callback must be callable as f(std::error_code, const tether::client_response&)");
    return submit(req, std::forward<OnChunk>(on_chunk), std::forward<Done>(done));
  }

  /// GET `target` ("/path?query").
  template <class Done>
  result<request_id> get(std::string target, Done&& done) {
    return request(client_request(method::get, std::move(target)), std::forward<Done>(done));
  }

  /// Cancels a request that has not completed: its completion runs with
  /// errc::cancelled before cancel() returns (also when called from that request's own
  /// chunk callback, which gets no further chunks). If it was being sent or received, the
  /// connection is closed. Returns false if `id` is not outstanding.
  bool cancel(request_id id) noexcept { return core_ && core_->cancel(id, make_error_code(errc::cancelled)); }

  /// Requests sent or waiting to be retried, not yet completed.
  std::size_t outstanding() const noexcept { return core_ ? core_->outstanding() : 0; }

  // ----- the connection -------------------------------------------------------------

  /// Sets the callback run once for each TCP connection of this client that closes
  /// (evhttp_connection_set_closecb; PECL's setCloseCallback), with why it closed. When
  /// a request was in flight, its completion runs first. A later call replaces it.
  template <class F>
  void on_close(F&& f) noexcept(std::is_nothrow_constructible_v<client_close_function<>, F&&>) {
    // Stored in place as a client_close_function<> (three pointers of captures at most).
    static_assert(std::is_constructible_v<client_close_function<>, F&&>,
                  "tether: a client close callback must be callable as f(const tether::client_close_event&)");
    if (core_) core_->on_close = client_close_function<>(std::forward<F>(f));
  }

  /// True while a TCP connection to the server is up.
  bool connected() const noexcept { return core_ && core_->connected(); }

  /// The server as given (evhttp_connection_get_peer): host without brackets, and port.
  std::string_view peer_address() const noexcept { return core_ ? std::string_view(core_->host) : std::string_view{}; }
  /// The server's port as given.
  std::uint16_t peer_port() const noexcept { return core_ ? core_->port : 0; }

  /// The local port of the current TCP connection (0 if none).
  std::uint16_t local_port() const noexcept {
    if (!core_ || !core_->bev) return 0;
    const evutil_socket_t fd = bufferevent_getfd(core_->bev);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (fd < 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return 0;
  }

  /// The libevent connection, for calls tether does not wrap. Do not free it, and do
  /// not replace its close callback or its bufferevent's callbacks.
  evhttp_connection* native() const noexcept { return core_ ? core_->evcon : nullptr; }

 private:
  template <class Chunk, class Done>
  result<request_id> submit(client_request& req, Chunk&& chunk, Done&& done) {
    if (!core_) return errc::empty_handle;
    if (auto ec = core_->check(req)) return ec;
    using call_type = detail::client_call_impl<std::decay_t<Done>, std::decay_t<Chunk>>;
    auto* call = new (std::nothrow) call_type(std::forward<Done>(done), std::forward<Chunk>(chunk));
    if (!call) return std::error_code(std::make_error_code(std::errc::not_enough_memory));
    return core_->submit(*call, req);
  }

  void reset() noexcept {
    if (auto* c = std::exchange(core_, nullptr)) c->destroy();
  }

  detail::client_core* core_;
};

/// The parts of an `http://` URL a client needs.
struct http_url {
  std::string host;     ///< without IPv6 brackets
  std::uint16_t port;   ///< 80 unless the URL names one
  std::string target;   ///< path and query: what the request line names
};

/// Parses an absolute `http://host[:port][/path][?query]` URL (strict RFC 3986; a
/// fragment is dropped, as browsers do).
/// Errors: errc::invalid_uri (not a URI, no host, port 0), errc::unsupported_scheme
/// (any scheme but http, including https until TLS is supported).
inline result<http_url> parse_http_url(std::string_view text) {
  auto u = uri::parse(text);
  if (!u) return u.error();
  const auto scheme = u->scheme();
  if (!scheme) return errc::invalid_uri;
  std::string lower(*scheme);
  for (char& ch : lower) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  if (lower != "http") return errc::unsupported_scheme;
  if (u->hostname().empty()) return errc::invalid_uri;
  const std::uint16_t port = u->port().value_or(80);
  if (port == 0) return errc::invalid_uri;
  return http_url{std::string(u->hostname()), port, u->request_target()};
}

TETHER_END_NAMESPACE
