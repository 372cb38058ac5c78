// tether/close_reason.hpp - why a connection closed, as delivered to close callbacks.
/// @file
/// tether::close_reason: why a connection ended, as reported once to its close callback.
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
  /// One of the server's timeouts expired (server_limits: the request head or body took
  /// too long, the keep-alive connection idled too long, or the client stopped reading a
  /// reply); 408 was sent where a reply was still possible.
  timeout,
  /// The server object was destroyed while the connection was open.
  server_shutdown,
  /// The application closed it (connection::close() or request_handle::close()).
  closed_by_server,
  /// The client passed one of the server's size limits (server_limits: unread input,
  /// header bytes, declared body size, connections) or the close policy's input limit;
  /// 431, 413 or 503 was sent where a reply was still possible.
  limit_exceeded,
  /// The client read too slowly: its unwritten output stayed above the low-water mark
  /// past the deadline of bounded<..., slow_consumer::disconnect<Ms>>, or a streamed reply
  /// passed server_limits::max_pending_output.
  slow_consumer,
  /// The client sent something that is not an acceptable HTTP request: an ambiguous or
  /// malformed head (duplicate Content-Length, a Transfer-Encoding tether does not accept,
  /// a bad version, a NUL in the head: tether answers 400 or 501 with Connection: close
  /// before any handler runs, docs/security.md), or one libevent refused itself (400, 413,
  /// 417, 501).
  protocol_error,
  /// Any other failure (a socket error other than a reset, a handler that threw
  /// mid-stream).
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
  /// The client's address ("127.0.0.1", "::1").
  std::string_view peer_address;
  /// The client's port.
  std::uint16_t peer_port;
};

TETHER_END_NAMESPACE
