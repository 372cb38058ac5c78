// tether/limits.hpp - what one client may cost a server, in bytes and in time.
/// @file
/// server_limits, the bounds every connection is held to, and tether::unlimited. See
/// docs/limits.md.
//
// A server facing the internet must hold its memory and time against clients that do not
// play fair: endless headers, bodies declared at 2^63 bytes, one byte every few seconds,
// floods while a reply is written, readers that stop reading. server_limits names every
// such bound with a safe default (docs/limits.md has the table: the standard each one
// follows, the status sent, the close reason reported). Every limit is on by default;
// `tether::unlimited` turns one off explicitly.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>

#include <cstddef>
#include <cstdint>

TETHER_BEGIN_NAMESPACE

/// The explicit spelling of "no limit", for sizes, counts and durations alike:
///
///     limits.max_body_bytes = tether::unlimited;
///     limits.idle_timeout = tether::unlimited;
struct unlimited_t {
  /// As a size or a count: the largest value, which no limit check ever reaches.
  constexpr operator std::size_t() const noexcept { return SIZE_MAX; }
  /// As a duration: the longest one, which no deadline ever reaches.
  constexpr operator std::chrono::milliseconds() const noexcept { return std::chrono::milliseconds::max(); }
};
/// "No limit": assign it to any field of server_limits (or pass it to a limit setter).
inline constexpr unlimited_t unlimited{};

/// True unless `n` is tether::unlimited.
constexpr bool is_limited(std::size_t n) noexcept { return n != SIZE_MAX; }
/// True unless `d` is tether::unlimited (or not positive, which means the same).
constexpr bool is_limited(std::chrono::milliseconds d) noexcept {
  return d > std::chrono::milliseconds::zero() && d != std::chrono::milliseconds::max();
}

/// The bounds a server enforces on every connection, in every phase, tracked or not.
///
/// Defaults follow nginx and Node.js (docs/limits.md says which, and why). Sizes are in
/// bytes; a timeout that is zero or tether::unlimited never fires.
struct server_limits {
  /// Request line, header fields and the blank line that ends them. Over it: 431 Request
  /// Header Fields Too Large, close_reason::limit_exceeded.
  std::size_t max_header_bytes = 16 * 1024;
  /// A request body. A declared Content-Length over it, or a chunked body that grows past
  /// it, gets 413 Content Too Large before the body is buffered,
  /// close_reason::limit_exceeded (protocol_error for libevent's own chunked check).
  std::size_t max_body_bytes = 1024 * 1024;
  /// From the first byte of a request (from accept for a new connection) to the end of
  /// its header fields, however the bytes trickle in. Over it: 408 Request Timeout,
  /// close_reason::timeout.
  std::chrono::milliseconds head_timeout{std::chrono::seconds(60)};
  /// From the end of the header fields to the end of the body. Over it: 408,
  /// close_reason::timeout.
  std::chrono::milliseconds body_timeout{std::chrono::seconds(60)};
  /// A keep-alive connection waiting for its next request after a complete reply. Over
  /// it: closed without a reply, close_reason::timeout.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(75)};
  /// A reply the client does not read: the connection is cut once no byte of its pending
  /// output reached the kernel for this long (progress re-arms it, queueing more does
  /// not). close_reason::timeout.
  std::chrono::milliseconds send_timeout{std::chrono::seconds(60)};
  /// Bytes a client may send that nobody reads yet: while its request is handled, held,
  /// answered or streamed (pipelined requests included). Over it: the connection is
  /// closed, close_reason::limit_exceeded.
  std::size_t max_unread_input = 64 * 1024;
  /// Bytes of a streamed reply queued for one client and not yet written. A chunk that
  /// would pass it closes the connection (close_reason::slow_consumer) and reports
  /// errc::limit_exceeded. Bounded buffer policies refuse chunks far earlier (their High).
  std::size_t max_pending_output = 16 * 1024 * 1024;
  /// Open connections. One more gets 503 Service Unavailable and is closed
  /// (close_reason::limit_exceeded).
  std::size_t max_connections = 10'000;
};

TETHER_END_NAMESPACE
