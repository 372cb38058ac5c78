// tether/client_options.hpp - how a client_connection connects, waits, retries and limits.
/// @file
/// tether::client_options: timeouts, retries, limits, local address and DNS of a client.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

struct evdns_base;

TETHER_BEGIN_NAMESPACE

/// Which address family a client resolves its host to (evhttp_connection_set_family).
enum class ip_family : std::uint8_t { any, ipv4, ipv6 };

/// Settings of a client_connection, fixed when it is created.
///
/// Timeouts: libevent 2.1 has one timeout per connection; tether applies it per phase.
///   * connect_timeout: from the start of a connection attempt to the established TCP
///     connection. Zero means libevent's default, 45 s.
///   * write_timeout: while the request is being written, the longest wait for the socket
///     to take more bytes.
///   * read_timeout: once connected, the longest wait for the next response byte; it also
///     closes an idle keep-alive connection that long after its last response.
///   Zero for read or write means no timeout.
///
/// Retries (evhttp_connection_set_retries and evhttp_connection_set_initial_retry_tv, done
/// by tether so that each failed attempt is classified): a request whose connection is
/// refused or times out is tried again up to `retries` more times, the first after
/// `initial_retry_delay`, each later wait twice the previous (at most one hour). Nothing
/// is retried once the request has reached the server.
struct client_options {
  /// Longest wait for a connection (0: libevent's 45 s).
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(45)};
  /// Longest wait for the next response byte, and idle keep-alive lifetime (0: none).
  std::chrono::milliseconds read_timeout{std::chrono::seconds(50)};
  /// Longest wait for the socket to take more of the request (0: none).
  std::chrono::milliseconds write_timeout{std::chrono::seconds(50)};

  /// Further attempts after a refused or timed-out connect.
  unsigned retries = 0;
  /// Wait before the first retry; each later one waits twice as long (at most an hour).
  std::chrono::milliseconds initial_retry_delay{std::chrono::seconds(2)};

  /// No limit (the default of the size limits).
  static constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();
  /// Longest status line plus headers accepted (evhttp_connection_set_max_headers_size).
  std::size_t max_header_size = unlimited;
  /// Largest response body accepted (counted as it arrives, chunked or not); a larger
  /// one fails the request with errc::response_too_large and closes the connection.
  std::size_t max_body_size = unlimited;

  /// Local address to connect from (an IPv4 or IPv6 literal; empty: any).
  std::string local_address;
  /// Local port to connect from (0: any).
  std::uint16_t local_port = 0;

  /// Address family the host is resolved to (evhttp_connection_set_family).
  ip_family family = ip_family::any;
  /// Resolves host names asynchronously (see dns.hpp). Without one, a host name is
  /// resolved with a blocking getaddrinfo(): fine for IP literals and /etc/hosts names.
  /// It must outlive the client.
  evdns_base* dns = nullptr;
};

TETHER_END_NAMESPACE
