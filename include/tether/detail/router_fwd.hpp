// tether/detail/router_fwd.hpp - the names a server needs to accept a router, without the
// router.
//
// basic_server::route(router) and the server's router constructor are templates: their
// bodies need the router's machinery (router.hpp) only when a program installs a router,
// and a program that builds a router has included router.hpp to build it. So the server
// declares what it names here and leaves route.hpp and router.hpp (static routes, the
// compile-time tables, <tuple>, <array>) to the programs that use them.
#pragma once

#include <tether/config.hpp>

#include <type_traits>

TETHER_BEGIN_NAMESPACE

template <class... Routes>
class router;

namespace detail {

template <class Request, class Router>
struct router_answers;
template <class Request, class Router>
struct router_handler_checks;
template <class Config, class Router>
class router_binding;

template <class T>
struct is_router : std::false_type {};
template <class... Routes>
struct is_router<router<Routes...>> : std::true_type {};

}  // namespace detail

/// True if `T` is a tether::router.
template <class T>
concept router_type = detail::is_router<std::remove_cvref_t<T>>::value;

TETHER_END_NAMESPACE
