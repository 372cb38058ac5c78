// tether/method.hpp - HTTP request methods as libevent knows them.
/// @file
/// tether::method and tether::method_set: HTTP request methods as libevent knows them.
#pragma once

#include <tether/config.hpp>

#include <event2/http.h>

#include <cstdint>
#include <string_view>

TETHER_BEGIN_NAMESPACE

/// The request methods evhttp parses (its evhttp_cmd_type bits).
enum class method : std::uint16_t {
  get = EVHTTP_REQ_GET,
  post = EVHTTP_REQ_POST,
  head = EVHTTP_REQ_HEAD,
  put = EVHTTP_REQ_PUT,
  delete_ = EVHTTP_REQ_DELETE,
  options = EVHTTP_REQ_OPTIONS,
  trace = EVHTTP_REQ_TRACE,
  connect = EVHTTP_REQ_CONNECT,
  patch = EVHTTP_REQ_PATCH,
};

/// The method's name as on the wire ("GET", "DELETE"); "UNKNOWN" for a value outside the enum.
constexpr std::string_view to_string(method m) noexcept {
  switch (m) {
    case method::get: return "GET";
    case method::post: return "POST";
    case method::head: return "HEAD";
    case method::put: return "PUT";
    case method::delete_: return "DELETE";
    case method::options: return "OPTIONS";
    case method::trace: return "TRACE";
    case method::connect: return "CONNECT";
    case method::patch: return "PATCH";
  }
  return "UNKNOWN";
}

/// A set of methods, for server::allow_methods and 405 replies.
class method_set {
 public:
  constexpr method_set() noexcept = default;
  /// The set holding just `m` (implicit, so a method can be passed where a set is expected).
  constexpr method_set(method m) noexcept : bits_(static_cast<std::uint16_t>(m)) {}  // NOLINT: implicit by design
  /// The union of this set and `o`.
  constexpr method_set operator|(method_set o) const noexcept { return from_bits(bits_ | o.bits_); }
  /// True if `m` is in the set.
  constexpr bool contains(method m) const noexcept { return (bits_ & static_cast<std::uint16_t>(m)) != 0; }
  /// True if the set holds no method.
  constexpr bool empty() const noexcept { return bits_ == 0; }
  /// The set as libevent's evhttp_cmd_type bit mask (for evhttp_set_allowed_methods).
  constexpr std::uint16_t bits() const noexcept { return bits_; }
  /// The set of the evhttp_cmd_type bits in `b`.
  static constexpr method_set from_bits(unsigned b) noexcept {
    method_set s;
    s.bits_ = static_cast<std::uint16_t>(b);
    return s;
  }
  /// Every method evhttp knows: GET, POST, HEAD, PUT, DELETE, OPTIONS, TRACE, CONNECT, PATCH.
  static constexpr method_set all() noexcept { return from_bits(0x1FF); }
  friend constexpr bool operator==(method_set, method_set) noexcept = default;

 private:
  std::uint16_t bits_ = 0;
};

/// `method::get | method::post`: the set of both.
constexpr method_set operator|(method a, method b) noexcept { return method_set(a) | method_set(b); }

TETHER_END_NAMESPACE
