// tether/error.hpp - how tether reports failure: std::error_code in the tether category.
//
// tether never throws on its own account. Every operation that can fail for a reason the
// caller should handle (a bind on a busy port, a header with a newline in it, a send on a
// request whose client hung up) returns a std::error_code, or a tether::result<T> when it
// also produces a value. The codes are tether::errc values in tether::category(), or
// std::errc / errno values where the operating system gave the reason (bind, listen).
//
// Two exceptions to "never throws", both standard practice:
//   * constructors that need memory from libevent throw std::bad_alloc when libevent
//     returns NULL (as the standard library does when it cannot allocate);
//   * result<T>::value() on an error throws std::system_error, like std::expected.
/// @file
/// How tether reports failure: tether::errc in tether::category(), and tether::result for
/// an operation that also produces a value. See docs/errors.md.
#pragma once

#include <tether/config.hpp>

#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// The reasons tether itself reports.
enum class errc : int {
  /// The client hung up (FIN, RST, timeout or server shutdown) before this call;
  /// nothing was sent and the request no longer exists in libevent.
  peer_gone = 1,
  /// The reply was already completed (or the request handle refers to an earlier
  /// request on a keep-alive connection); nothing was sent.
  reply_finished,
  /// A complete reply was asked for, but a streamed reply was already started.
  reply_started,
  /// A chunk or end was sent before the streamed reply was started.
  reply_not_started,
  /// An argument is malformed: a header name that is not an RFC 9110 token, a value
  /// with CR or LF, a status code outside 100..599, a port out of range.
  invalid_argument,
  /// The address could not be parsed as an IPv4 or IPv6 literal.
  invalid_address,
  /// The handle is empty (default-constructed or moved from).
  empty_handle,
  /// The connection's output is above the buffer policy's high-water mark; the data
  /// was not queued. Wait for the writable notification.
  would_block,
  /// The connection passed a limit and was closed: the close policy's input limit, or a
  /// streamed chunk that would take the client's pending output past
  /// server_limits::max_pending_output.
  limit_exceeded,
  /// The chunk was discarded by a bounded buffer policy (slow_consumer::drop): the
  /// client's output is above the high-water mark.
  dropped,
  /// libevent could not allocate or refused the operation.
  libevent_failure,
  /// The operation needs a file that could not be opened or stat'ed.
  file_error,
  /// A known-length stream was written past, or ended before, its declared length.
  length_mismatch,
  /// install_memory_policy: a different memory policy is already installed.
  memory_policy_conflict,
  /// install_memory_policy: tether already made libevent allocate in this process, so
  /// libevent's allocator can no longer be replaced; nothing was installed.
  libevent_in_use,

  // ----- URIs (uri.hpp) and the HTTP client (client.hpp) -----
  /// The text is not a URI libevent's RFC 3986 parser accepts (or holds a NUL byte).
  invalid_uri,
  /// The URL's scheme is not one the client speaks (http).
  unsupported_scheme,
  /// The request was cancelled (client_connection::cancel) or its connection was
  /// destroyed before the response arrived.
  cancelled,
  /// No connection could be made before the connect timeout (on every attempt).
  connect_timeout,
  /// The connection could not be made, for a reason libevent did not report.
  connect_failed,
  /// The host name could not be resolved.
  resolve_failed,
  /// Connected, but the request could not be written within the write timeout, or no
  /// response byte arrived within the read timeout.
  response_timeout,
  /// The server closed the connection before sending a response.
  no_response,
  /// The server closed the connection in the middle of the response.
  incomplete_response,
  /// The response body is larger than client_options::max_body_size.
  response_too_large,
  /// The response could not be parsed: its status line, a header line or its chunked
  /// framing is malformed, or its headers exceed client_options::max_header_size.
  bad_response,

  // ----- the broker (broker.hpp) -----
  /// A channel has as many subscribers as its cap allows (broker_options::max_subscribers,
  /// broker::set_max_subscribers); nothing was subscribed.
  channel_full,
  /// A new channel would exceed broker_options::max_channels and no idle channel could
  /// make room.
  too_many_channels,

  // ----- TLS (tls.hpp) -----
  /// The certificate (chain) file is not a PEM certificate OpenSSL can load. (A file that
  /// cannot be opened is reported with the system's reason: no such file, permission.)
  tls_bad_certificate,
  /// The private key file is not a PEM private key OpenSSL can load.
  tls_bad_private_key,
  /// The private key is encrypted and the passphrase is missing or does not decrypt it.
  tls_wrong_passphrase,
  /// The private key does not belong to the certificate.
  tls_key_mismatch,
  /// The CA file or directory holds no certificate OpenSSL can load.
  tls_bad_ca,
  /// The cipher list, the TLS 1.3 cipher suites or the protocol versions were refused.
  tls_bad_settings,
  /// The TLS handshake failed: the peer does not speak TLS, or no protocol version or
  /// cipher is common to both sides, or the peer refused our certificate.
  tls_handshake_failed,
  /// The peer's certificate was not accepted: not signed by a trusted CA, expired or not
  /// yet valid, issued for another host name, or missing when one was required.
  tls_certificate_rejected,
  // ----- the Redis hub (redis_hub.hpp) -----
  /// The hub is not connected to Redis (or not caught up yet, or has too many publishes
  /// awaiting Redis's answer); nothing was published.
  redis_unavailable,
  /// Redis answered with an error, or the connection ended before it answered: the
  /// message may or may not have been published.
  redis_failed,
  // ----- signals (drain_on_signals.hpp) -----
  /// SIGTERM and SIGINT are already watched by a drain_on_signals on another loop:
  /// libevent lets one event_base per process handle signals, and a second one would
  /// silently take them from the first. Drain the other servers or groups from that one
  /// (basic_server_group::also_drain, docs/drain.md).
  signals_in_use,
};

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tether"; }
  // One std::string built from a table of C strings: the switch returns pointers, so
  // this virtual function (emitted in every program that names the category) stays small.
  std::string message(int code) const override { return text(code); }
  static const char* text(int code) noexcept {
    switch (static_cast<errc>(code)) {
      case errc::peer_gone: return "the client hung up; nothing was sent";
      case errc::reply_finished: return "the reply was already completed";
      case errc::reply_started: return "a streamed reply was already started";
      case errc::reply_not_started: return "the streamed reply was not started";
      case errc::invalid_argument: return "invalid argument";
      case errc::invalid_address: return "not an IPv4 or IPv6 address";
      case errc::empty_handle: return "empty handle";
      case errc::would_block: return "output above the high-water mark; wait until writable";
      case errc::limit_exceeded: return "the connection exceeded a configured limit and was closed";
      case errc::dropped: return "chunk dropped: the client reads too slowly";
      case errc::libevent_failure: return "libevent failed or refused the operation";
      case errc::file_error: return "the file could not be opened or stat'ed";
      case errc::length_mismatch: return "the stream's body does not match its declared length";
      case errc::memory_policy_conflict: return "a different memory policy is already installed";
      case errc::libevent_in_use:
        return "libevent is already in use; install the memory policy first in main, before any loop, server or buffer";
      case errc::invalid_uri: return "not a valid URI";
      case errc::unsupported_scheme: return "unsupported URL scheme (the client speaks http)";
      case errc::cancelled: return "the request was cancelled";
      case errc::connect_timeout: return "could not connect to the server before the connect timeout";
      case errc::connect_failed: return "could not connect to the server";
      case errc::resolve_failed: return "the host name could not be resolved";
      case errc::response_timeout: return "the server did not respond within the timeout";
      case errc::no_response: return "the server closed the connection without responding";
      case errc::incomplete_response: return "the server closed the connection in the middle of the response";
      case errc::response_too_large: return "the response body is larger than the client's limit";
      case errc::bad_response: return "malformed response (status line, headers or chunked framing), or headers over the limit";
      case errc::channel_full: return "the channel has as many subscribers as its cap allows";
      case errc::too_many_channels: return "no room for another channel (broker_options::max_channels)";
      case errc::tls_bad_certificate: return "the certificate file does not hold a PEM certificate";
      case errc::tls_bad_private_key: return "the private key file does not hold a PEM private key";
      case errc::tls_wrong_passphrase: return "the private key is encrypted and the passphrase is missing or wrong";
      case errc::tls_key_mismatch: return "the private key does not match the certificate";
      case errc::tls_bad_ca: return "the CA file or directory holds no usable certificate";
      case errc::tls_bad_settings: return "the TLS cipher list, cipher suites or protocol versions were refused";
      case errc::tls_handshake_failed:
        return "the TLS handshake failed (not a TLS peer, no common protocol version or cipher, or our certificate was refused)";
      case errc::tls_certificate_rejected:
        return "the peer's TLS certificate was rejected (untrusted CA, expired, wrong host name, or missing)";
      case errc::redis_unavailable: return "not connected to Redis; nothing was published";
      case errc::redis_failed: return "Redis failed or went away before answering; the message may not have been published";
      case errc::signals_in_use:
        return "SIGTERM and SIGINT are already watched by a drain_on_signals on another loop (one per process); "
               "drain the other servers or groups from that one (docs/drain.md)";
    }
    return "unknown tether error";
  }
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (static_cast<errc>(code)) {
      case errc::invalid_argument:
      case errc::invalid_address:
      case errc::invalid_uri: return std::errc::invalid_argument;
      case errc::would_block: return std::errc::operation_would_block;
      case errc::peer_gone:
      case errc::no_response:
      case errc::incomplete_response: return std::errc::connection_reset;
      case errc::cancelled: return std::errc::operation_canceled;
      case errc::connect_timeout:
      case errc::response_timeout: return std::errc::timed_out;
      case errc::response_too_large: return std::errc::message_size;
      case errc::bad_response: return std::errc::bad_message;
      case errc::unsupported_scheme: return std::errc::protocol_not_supported;
      case errc::tls_bad_settings: return std::errc::invalid_argument;
      default: return {code, *this};
    }
  }
};
}  // namespace detail

/// The category of tether::errc codes.
inline const std::error_category& category() noexcept {
  static const detail::error_category_impl instance;
  return instance;
}

/// Makes `e` a std::error_code in tether::category(), so that `ec == tether::errc::peer_gone`
/// works and `ec.message()` reads well (found by argument-dependent lookup).
[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

/// A value or the std::error_code that explains why there is none (a small
/// std::expected<T, std::error_code>, which C++20 lacks).
///
///     auto port = tether::parse_port(argv[1]);
///     if (!port) { std::cerr << port.error().message() << '\n'; return 1; }
///     use(*port);
template <class T>
class [[nodiscard]] result {
 public:
  /// A result holding `value` (implicit, so a function returning result<T> can `return v;`).
  result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit by design
      : ok_(true) {
    ::new (static_cast<void*>(&value_)) T(std::move(value));
  }
  /// A result holding the error `ec` (it should be non-zero: has_value() is false whatever it is).
  result(std::error_code ec) noexcept : ok_(false) { ::new (static_cast<void*>(&error_)) std::error_code(ec); }
  /// A result holding the tether error `e` (so a function can `return errc::invalid_argument;`).
  result(errc e) noexcept : result(make_error_code(e)) {}

  /// Copies the value or the error.
  result(const result& o) : ok_(o.ok_) {
    if (ok_) ::new (static_cast<void*>(&value_)) T(o.value_);
    else ::new (static_cast<void*>(&error_)) std::error_code(o.error_);
  }
  /// Moves the value (`o` keeps a moved-from value) or copies the error.
  result(result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(o.ok_) {
    if (ok_) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
    else ::new (static_cast<void*>(&error_)) std::error_code(o.error_);
  }
  /// Replaces the value or error with `o`'s.
  result& operator=(result o) noexcept(std::is_nothrow_move_constructible_v<T>) {
    this->~result();
    ::new (static_cast<void*>(this)) result(std::move(o));
    return *this;
  }
  ~result() {
    if (ok_) value_.~T();
  }

  /// True if the result holds a value; false if it holds an error.
  bool has_value() const noexcept { return ok_; }
  /// Same as has_value(): `if (auto r = f()) use(*r);`.
  explicit operator bool() const noexcept { return ok_; }

  /// The error; a default (zero) error_code when there is a value.
  [[nodiscard]] std::error_code error() const noexcept { return ok_ ? std::error_code{} : error_; }

  /// The value. Only when has_value() is true (not checked: use value() for a checked access).
  T& operator*() & noexcept { return value_; }
  /// The value. Only when has_value() is true (not checked).
  const T& operator*() const& noexcept { return value_; }
  /// The value, moved out. Only when has_value() is true (not checked).
  T&& operator*() && noexcept { return std::move(value_); }
  /// A member of the value. Only when has_value() is true (not checked).
  T* operator->() noexcept { return &value_; }
  /// A member of the value. Only when has_value() is true (not checked).
  const T* operator->() const noexcept { return &value_; }

  /// The value; throws std::system_error(error()) when there is none.
  T& value() & {
    if (!ok_) throw std::system_error(error_);
    return value_;
  }
  /// The value; throws std::system_error(error()) when there is none.
  const T& value() const& {
    if (!ok_) throw std::system_error(error_);
    return value_;
  }
  /// A copy of the value, or `fallback` when there is none.
  T value_or(T fallback) const { return ok_ ? value_ : fallback; }

 private:
  union {
    T value_;
    std::error_code error_;
  };
  bool ok_;
};

namespace detail {
// What route_error::message() says after the path, worded once for both engines, servers
// and virtual hosts.
inline constexpr const char* already_routed_why =
    "the path is already routed (by a runtime route or a router); unroute it first, or choose another path";
inline constexpr const char* no_methods_why = "a route needs at least one method (tether::method::get, ...)";
inline constexpr const char* not_routed_why = "the path is not routed";
}  // namespace detail

/// What a runtime route call (basic_server::route, unroute) did: nothing on success;
/// otherwise the error code and the path it is about, so that the message names it.
/// Converts to std::error_code and compares with error codes and conditions as one.
///
///     if (auto err = server.route("/status", status_handler)) {
///       std::fprintf(stderr, "%s\n", err.message().c_str());
///       // tether: route "/status": the path is already routed (by a runtime route or a
///       // router); unroute it first, or choose another path
///     }
class [[nodiscard]] route_error {
 public:
  /// Success.
  route_error() noexcept = default;
  /// The error `ec` about `path`; `why` is the sentence message() puts after the path.
  route_error(std::error_code ec, std::string_view path, const char* why) : ec_(ec), why_(why) {
    if (ec_) path_.assign(path);  // a success keeps nothing (no allocation)
  }

  /// True on error.
  explicit operator bool() const noexcept { return bool(ec_); }
  /// The error code (errc::invalid_argument, errc::libevent_failure...); zero on success.
  const std::error_code& code() const noexcept { return ec_; }
  /// The error code, for code that stores or passes a std::error_code (the path is lost).
  operator std::error_code() const noexcept { return ec_; }  // NOLINT: implicit by design
  /// As std::error_code::value(), for code written against one.
  int value() const noexcept { return ec_.value(); }
  /// As std::error_code::category(), for code written against one.
  const std::error_category& category() const noexcept { return ec_.category(); }
  /// The path the error is about (empty on success).
  const std::string& path() const noexcept { return path_; }
  /// One sentence that names the path and the cause: `tether: route "/status": ...`.
  std::string message() const {
    if (!ec_) return "success";
    std::string m = "tether: route \"";
    m.append(path_);
    m.append("\": ");
    m.append(why_ ? why_ : ec_.message().c_str());
    return m;
  }

  friend bool operator==(const route_error& e, const std::error_code& c) noexcept { return e.ec_ == c; }
  friend bool operator==(const route_error& e, const std::error_condition& c) noexcept { return e.ec_ == c; }

 private:
  std::error_code ec_{};
  std::string path_{};
  const char* why_ = nullptr;
};

TETHER_END_NAMESPACE

template <>
struct std::is_error_code_enum<tether::errc> : std::true_type {};
