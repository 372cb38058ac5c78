// The Date header value of the peer hello servers, formatted at most once per second, as
// tether's hello does with the loop's cached clock (RFC 9110 section 6.6.1: an origin server
// with a clock sends Date). time() is a vDSO call, not a system call.
#pragma once

#include <ctime>
#include <string_view>

namespace peers {

inline std::string_view cached_date() {
  static char text[40];
  static std::time_t second = -1;
  static std::size_t size = 0;
  const std::time_t now = std::time(nullptr);
  if (now != second) {
    std::tm tm{};
    size = gmtime_r(&now, &tm) != nullptr ? std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm) : 0;
    second = now;
  }
  return {text, size};
}

}  // namespace peers
