// tether/route.hpp - a route known at compile time: a path, the methods it answers, and
// the code that answers them.
//
// A static route is any type that says, as constants, which path and methods it serves
// and can be called with the request. tether::route<Path, Handler, Methods...> makes one
// from a handler; tether::get<"/path">(handler) and friends make one from a lambda. A
// router (router.hpp) collects routes and is installed on a server.
//
//     struct health {                                  // a route written by hand
//       static constexpr std::string_view path = "/health";
//       static constexpr tether::method_set methods = tether::method::get;
//       void operator()(auto& req) const { (void)req.reply(200, "ok"); }
//     };
//     auto items = tether::on<"/items", tether::method::get, tether::method::post>(items_handler{});
//     auto hello = tether::get<"/hello">([](auto& req) { (void)req.reply(200, "hello"); });
//
// Paths match exactly, as libevent's evhttp_set_cb does: the request's path after
// percent-decoding, without the query. Write a route's path decoded ("/a b", not "/a%20b").
/// @file
/// Static routes: tether::route and tether::get, tether::post, ... that make one from a
/// handler. See docs/routing.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/allow_value.hpp>
#include <tether/fixed_string.hpp>
#include <tether/method.hpp>
#include <tether/request_handler.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

namespace detail {

constexpr bool valid_route_path(std::string_view p) noexcept {
  return !p.empty() && p.front() == '/' && p.find_first_of("?#") == std::string_view::npos;
}

// A base of tether::route rather than checks in its body, so that a failed check is the
// only error, not the first of several. It takes all of the route's arguments so that two
// routes of one router never share this empty base: two objects of one type need distinct
// addresses, which would give a router of stateless routes a size.
template <auto Path, class Handler, method... Methods>
struct check_route_declaration {
  // A route answers at least one method, e.g. tether::route<"/items", H, tether::method::get>
  // or tether::on<"/items", tether::method::get>(handler).
  static_assert(sizeof...(Methods) > 0,
                "tether::route: a route needs at least one method: tether::on<\"/path\", tether::method::get>(handler), "
                "or tether::get<\"/path\">(handler) (docs/routing.md)");
  // Paths match the request's decoded path exactly, without the query.
  static_assert(valid_route_path(Path.view()),
                "tether::route: a route's path starts with '/' and has no '?' or '#': the query is not part of "
                "the path; read it with req.query_params() (docs/routing.md)");
};

// The parts of static_route, one rule each, so that a diagnostic names the rule broken.

template <class R>
concept route_has_constant_path = requires {
  { R::path } -> std::convertible_to<std::string_view>;
  // a constant expression: the router checks paths at compile time
  typename std::integral_constant<std::size_t, std::string_view(R::path).size()>;
};

template <class R>
concept route_path_is_valid = valid_route_path(std::string_view(R::path));

template <class R>
concept route_has_constant_methods = requires {
  { R::methods } -> std::convertible_to<method_set>;
  // a constant expression: the router builds each path's method switch at compile time
  typename std::integral_constant<std::uint16_t, method_set(R::methods).bits()>;
};

template <class R>
concept route_has_some_method = !method_set(R::methods).empty();

}  // namespace detail

/// A type `R` models static_route if:
/// 1. `R::path` is a constant string (anything convertible to std::string_view in a
///    constant expression: a fixed_string, a literal, a constexpr string_view);
/// 2. that path starts with '/' and holds no '?' or '#' (matching ignores the query);
/// 3. `R::methods` is a constant method_set (a single `method` converts to one);
/// 4. with at least one method;
/// 5. `R` is move-constructible: a router keeps its routes by value.
///
/// That a route can be called with the request is checked where the request type is
/// known, when a router is installed on a server: see static_route_for.
///
/// @see docs/concepts/static_route.md; tether::route makes one from any handler.
template <class R>
concept static_route =
    detail::route_has_constant_path<R> &&     // 1. R::path: a constant string
    detail::route_path_is_valid<R> &&         // 2. "/...", no query
    detail::route_has_constant_methods<R> &&  // 3. R::methods: a constant method_set
    detail::route_has_some_method<R> &&       // 4. not empty
    std::move_constructible<R>;               // 5. stored by value

/// A static route that can answer `Request`s: callable as `r(req)` with a `Request&`.
template <class R, class Request>
concept static_route_for = static_route<R> && request_handler<R, Request>;

/// A static route made of a path, a handler and the methods it answers.
///
/// The handler is stored by value, with no storage at all for a captureless lambda;
/// calling the route calls the handler. Several routes may share a path with different
/// methods; a router dispatches between them with a compile-time switch.
///
/// @tparam Path    the exact path ("/items"), as a string literal
/// @tparam Handler called as `handler(req)` with the server's request type
/// @tparam Methods the methods answered (at least one); GET implies HEAD
///
///     using items = tether::route<"/items", items_handler, tether::method::get, tether::method::post>;
///
/// The factories on<Path, Methods...>(handler), get<Path>(handler), post, put, delete_,
/// patch, head and options deduce Handler.
template <fixed_string Path, class Handler, method... Methods>
class route : detail::check_route_declaration<Path, Handler, Methods...> {
 public:
  /// The handler's type, stored by value in the route.
  using handler_type = Handler;
  /// The exact path this route answers (a fixed_string: `path.view()`, `path.c_str()`).
  static constexpr auto path = Path;
  /// `Methods`, and those the handler answers on its own (handler_own_methods: OPTIONS
  /// for a cors_handler, so that a preflight reaches it).
  static constexpr method_set methods = (method_set{} | ... | method_set(Methods)) | handler_own_methods<Handler>;

  constexpr route() requires std::default_initializable<Handler> = default;
  /// A route calling `handler` (get<"/x">(handler) and friends deduce the type for you).
  constexpr explicit route(Handler handler) noexcept(std::is_nothrow_move_constructible_v<Handler>)
      : handler_(std::move(handler)) {}

  /// Calls the handler.
  template <class Request>
    requires std::invocable<Handler&, Request&>
  decltype(auto) operator()(Request& req) noexcept(std::is_nothrow_invocable_v<Handler&, Request&>) {
    return handler_(req);
  }

  /// The handler, for access to its state.
  constexpr Handler& handler() noexcept { return handler_; }
  /// The handler, for access to its state.
  constexpr const Handler& handler() const noexcept { return handler_; }

 private:
  [[no_unique_address]] Handler handler_;
};

/// A route for `Path` answering `Methods`, calling `handler`.
///
///     tether::on<"/items", tether::method::get, tether::method::post>([](auto& req) { ... })
template <fixed_string Path, method... Methods, class Handler>
constexpr route<Path, std::decay_t<Handler>, Methods...> on(Handler&& handler) {
  return route<Path, std::decay_t<Handler>, Methods...>(std::forward<Handler>(handler));
}

/// A route answering GET (and so HEAD) on `Path`.
template <fixed_string Path, class Handler>
constexpr auto get(Handler&& handler) {
  return on<Path, method::get>(std::forward<Handler>(handler));
}
/// A route answering POST on `Path`.
template <fixed_string Path, class Handler>
constexpr auto post(Handler&& handler) {
  return on<Path, method::post>(std::forward<Handler>(handler));
}
/// A route answering PUT on `Path`.
template <fixed_string Path, class Handler>
constexpr auto put(Handler&& handler) {
  return on<Path, method::put>(std::forward<Handler>(handler));
}
/// A route answering DELETE on `Path` (named after method::delete_).
template <fixed_string Path, class Handler>
constexpr auto delete_(Handler&& handler) {
  return on<Path, method::delete_>(std::forward<Handler>(handler));
}
/// A route answering PATCH on `Path`.
template <fixed_string Path, class Handler>
constexpr auto patch(Handler&& handler) {
  return on<Path, method::patch>(std::forward<Handler>(handler));
}
/// A route answering HEAD on `Path` (a GET route answers HEAD already).
template <fixed_string Path, class Handler>
constexpr auto head(Handler&& handler) {
  return on<Path, method::head>(std::forward<Handler>(handler));
}
/// A route answering OPTIONS on `Path`.
template <fixed_string Path, class Handler>
constexpr auto options(Handler&& handler) {
  return on<Path, method::options>(std::forward<Handler>(handler));
}

TETHER_END_NAMESPACE
