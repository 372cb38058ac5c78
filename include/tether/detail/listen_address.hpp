// tether/detail/listen_address.hpp - the numeric address a server binds, as a sockaddr.
//
// Shared by both engines' bind(): an address is an IPv4 or IPv6 literal (an IPv6 one
// optionally in brackets), never a host name, so binding never waits on a resolver.
#pragma once

#include <tether/config.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

}  // namespace detail
TETHER_END_NAMESPACE
