// tether/detail/allow_value.hpp - the Allow header of a 405 reply, built without allocating.
//
// Apart from route.hpp so that the server's runtime routes (detail/path_handlers.hpp) can
// build it without the static routes' machinery (route.hpp, router.hpp), which a server
// that uses no router does not pay to compile.
#pragma once

#include <tether/config.hpp>
#include <tether/method.hpp>

#include <cstddef>
#include <string_view>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// The order methods are listed in an Allow header: RFC 9110's order of definition, then
/// PATCH (RFC 5789). Fixed, so the header does not depend on how routes were declared.
inline constexpr method allow_order[] = {
    method::get,     method::head,    method::post,  method::put,   method::delete_,
    method::connect, method::options, method::trace, method::patch,
};

/// The methods a path answers once HEAD is implied by GET (RFC 9110 section 9.3.2: HEAD
/// is GET without the body; tether sends the headers and drops the body).
constexpr method_set with_implied_head(method_set declared) noexcept {
  return declared.contains(method::get) ? declared | method::head : declared;
}

/// An Allow header value ("GET, HEAD, POST"), built without allocating; at compile time
/// for static routes, at registration for runtime ones.
struct allow_value {
  char chars[64] = {};  // all nine methods: 60 characters
  std::size_t size = 0;

  constexpr const char* c_str() const noexcept { return chars; }
  constexpr std::string_view view() const noexcept { return std::string_view(chars, size); }
};

constexpr allow_value make_allow_value(method_set methods) noexcept {
  allow_value v;
  for (const method m : allow_order) {
    if (!methods.contains(m)) continue;
    if (v.size != 0) {
      v.chars[v.size++] = ',';
      v.chars[v.size++] = ' ';
    }
    for (const char c : to_string(m)) v.chars[v.size++] = c;
  }
  return v;
}

/// The 405 reply: no body, the Allow header, the connection kept alive.
struct method_not_allowed {
  const char* allow;
  template <class Request>
  void operator()(Request& req) const noexcept {
    (void)req.output_headers().add("Allow", allow);
    (void)req.reply(405);
  }
};

}  // namespace detail
TETHER_END_NAMESPACE
