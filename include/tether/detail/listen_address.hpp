// tether/detail/listen_address.hpp - the listening socket a server binds, from a numeric address.
//
// Shared by both engines' bind(): an address is an IPv4 or IPv6 literal (an IPv6 one
// optionally in brackets), never a host name, so binding never waits on a resolver.
#pragma once

#include <tether/config.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <cstdint>
#include <cstring>
#include <string_view>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// Fills `ss` and `len` with `text` ("127.0.0.1", "::1", "[::1]") and `port`; false if
/// `text` is not a numeric address.
inline bool parse_listen_address(std::string_view text, std::uint16_t port, sockaddr_storage& ss,
                                 socklen_t& len) noexcept {
  char buf[INET6_ADDRSTRLEN + 2] = {};
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (::inet_pton(AF_INET, buf, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET6, buf, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

/// A non-blocking listening socket on `address` and `port` (SO_REUSEADDR; IPv6 sockets
/// IPv6 only), shared by both engines' bind(). Returns it, or -1 with `err` set: 0 when
/// `address` is not a numeric address, else the errno of the call that failed.
inline int open_listener(std::string_view address, std::uint16_t port, int backlog, int& err) noexcept {
  sockaddr_storage ss{};
  socklen_t len = 0;
  err = 0;
  if (!parse_listen_address(address, port, ss, len)) return -1;
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, backlog) != 0) {
    err = errno;
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Readies a socket the application made for a server's accept(), shared by both
/// engines: a TCP stream that listens already, or is only bound, in which case it gets
/// listen(fd, backlog) (nothing would ever be accepted on it otherwise). Returns 0, -1
/// for a socket that is not a stream (or, not listening yet, not IPv4 or IPv6: checked
/// before listen() would change it), else the errno of the call that failed.
inline int ready_adopted_socket(int fd, int backlog) noexcept {
  int type = 0;
  socklen_t type_len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0) return errno;
  if (type != SOCK_STREAM) return -1;
  int listening = 0;
  socklen_t listening_len = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &listening_len) != 0) return errno;
  if (listening) return 0;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return errno;
  if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) return -1;
  return ::listen(fd, backlog) != 0 ? errno : 0;
}

}  // namespace detail
TETHER_END_NAMESPACE
