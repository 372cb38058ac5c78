// tether/close_reason.hpp - why a connection closed, as delivered to close callbacks.
#pragma once

#include <tether/config.hpp>

#include <cstdint>
#include <string_view>

TETHER_BEGIN_NAMESPACE

/// Why a connection ended. Every connection reports exactly one reason, once.
enum class close_reason : std::uint8_t {
  /// The server closed the connection after its last reply was handed to the kernel:
  /// the client asked for `Connection: close`, or spoke HTTP/1.0 without keep-alive.
  completed,
  /// The client closed its side (TCP FIN): it exited, closed the socket, or half-closed
  /// with shutdown(SHUT_WR). Under eager_close a half-close counts as a hang-up.
  peer_closed,
  /// The client's kernel reset the connection (TCP RST): SO_LINGER {1, 0}, a process
  /// killed with unread data in its socket, or a write to a socket it had closed.
  peer_reset,
  /// The server's timeout (server_options::timeout) expired.
  timeout,
  /// The server object was destroyed while the connection was open.
  server_shutdown,
  /// The application closed it (connection::close() or request_handle::close()).
  closed_by_server,
  /// The client sent more than the close policy allows while its request was held.
  limit_exceeded,
  /// The client read too slowly: its unwritten output stayed above the low-water mark
  /// past the deadline of bounded<..., slow_consumer::disconnect<Ms>>.
  slow_consumer,
  /// The client broke HTTP/1.1 framing: an ambiguous or malformed request head (duplicate
  /// Content-Length, Transfer-Encoding tether does not accept, a bad version...). It was
  /// answered with 400 or 501 and `Connection: close` before any handler ran
  /// (docs/security.md).
  protocol_error,
  /// Any other failure (a socket error other than a reset, or a protocol error).
  error,
};

/// A short, stable name for `r` ("peer_closed", ...).
constexpr std::string_view to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::completed: return "completed";
    case close_reason::peer_closed: return "peer_closed";
    case close_reason::peer_reset: return "peer_reset";
    case close_reason::timeout: return "timeout";
    case close_reason::server_shutdown: return "server_shutdown";
    case close_reason::closed_by_server: return "closed_by_server";
    case close_reason::limit_exceeded: return "limit_exceeded";
    case close_reason::slow_consumer: return "slow_consumer";
    case close_reason::protocol_error: return "protocol_error";
    case close_reason::error: return "error";
  }
  return "unknown";
}

/// True for the reasons that mean the client went away on its own.
constexpr bool is_hang_up(close_reason r) noexcept {
  return r == close_reason::peer_closed || r == close_reason::peer_reset;
}

/// What a close callback is told. The strings are borrowed from libevent and valid only
/// during the callback.
struct close_event {
  /// Why the connection ended.
  close_reason reason;
  /// True if a request was still in progress (held without a reply, or its reply still
  /// streaming) when the connection ended: the client did not get a complete reply.
  bool aborted;
  /// The client's address ("127.0.0.1", "::1") and port.
  std::string_view peer_address;
  std::uint16_t peer_port;
};

TETHER_END_NAMESPACE
