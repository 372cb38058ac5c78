// tether/router.hpp - a table of static routes, checked and compiled as a whole.
//
// A router is a list of static routes (route.hpp) known to the compiler. Installed on a
// server (basic_server::route(router), or the server's constructor), it becomes plain
// libevent: one evhttp_set_cb per distinct path, each with its own trampoline
// instantiated for that path, whose body is a switch over the request's method computed
// at compile time. So, for every request:
//  * an unknown path is libevent's business: the server's fallback, or libevent's 404;
//  * a known path with a method it answers calls that route's handler directly (no
//    virtual call, no std::function, no allocation);
//  * a known path with another method gets 405 with an Allow header built at compile time.
// Two routes answering the same method on the same path do not compile.
//
//     auto api = tether::router{
//         tether::get<"/hello">([](auto& req) { (void)req.reply(200, "hello"); }),
//         tether::get<"/items">(list_items{}),
//         tether::post<"/items">(add_item{&db}),
//     };
//     tether::server srv{loop, api};             // or: srv.route(api), next to runtime routes
//
// See docs/routing.md.
/// @file
/// tether::router: a table of static routes checked as a whole and compiled to one libevent
/// callback per path. See docs/routing.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/invoke_handler.hpp>
#include <tether/detail/router_fwd.hpp>
#include <tether/error.hpp>
#include <tether/fixed_string.hpp>
#include <tether/method.hpp>
#include <tether/request.hpp>
#include <tether/route.hpp>

#include <event2/http.h>

#include <array>
#include <concepts>
#include <cstddef>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

namespace detail {

/// Route `R`'s path as a NUL-terminated constant, for evhttp_set_cb.
template <class R>
inline constexpr auto route_path = fixed_string<std::string_view(R::path).size()>(std::string_view(R::path));

/// What the compiler knows about a list of routes: which share a path, what each answers.
template <class... Routes>
struct route_table {
  static constexpr std::size_t size = sizeof...(Routes);
  static constexpr std::array<std::string_view, size> paths{std::string_view(Routes::path)...};
  static constexpr std::array<method_set, size> declared{method_set(Routes::methods)...};

  /// The first route with route i's path: it stands for the path (one evhttp callback).
  static constexpr std::size_t leader(std::size_t i) noexcept {
    for (std::size_t j = 0; j < i; ++j)
      if (paths[j] == paths[i]) return j;
    return i;
  }
  /// Every method declared on route i's path.
  static constexpr method_set declared_on_path(std::size_t i) noexcept {
    method_set all;
    for (std::size_t j = 0; j < size; ++j)
      if (paths[j] == paths[i]) all = all | declared[j];
    return all;
  }
  /// The methods route i answers: those declared, and HEAD for a GET route when no route
  /// on the path declares HEAD.
  static constexpr method_set served(std::size_t i) noexcept {
    if (declared_on_path(i).contains(method::head)) return declared[i];
    return with_implied_head(declared[i]);
  }
  static constexpr method_set served_on_path(std::size_t i) noexcept { return with_implied_head(declared_on_path(i)); }

  /// The first pair of routes answering a method on the same path, if any.
  struct duplicate {
    bool found = false;
    std::size_t first = 0;
    std::size_t second = 0;
    method on = method::get;
  };
  static constexpr duplicate find_duplicate() noexcept {
    for (std::size_t j = 0; j < size; ++j)
      for (std::size_t i = 0; i < j; ++i)
        if (paths[i] == paths[j])
          for (const method m : allow_order)
            if (declared[i].contains(m) && declared[j].contains(m)) return {true, i, j, m};
    return {};
  }
};

// ----- diagnostics ------------------------------------------------------------------
// Each check is a base class that is empty when the rule holds and, when it does not,
// names a type whose instantiation fails with a sentence. The compiler prints that
// type's template arguments, which is how an error can name the route at fault.

template <std::size_t Position, class R>
struct check_static_route {
  // Every route of a router must model tether::static_route (route.hpp); the notes that
  // follow this error name the rule this route breaks.
  static_assert(static_route<R>,
                "tether::router: a route does not model tether::static_route: it needs a static path (starting "
                "with '/', no '?' or '#'), a non-empty static method_set methods and a call operator; build it "
                "with tether::get<\"/path\">(handler) (post, put, ...) or give your type those members "
                "(docs/concepts/static_route.md)");
};

// Two routes of one router answer the same method on the same path. The template
// arguments of this error name them: the positions of the two routes in the router
// (from 0), the method, then the path, character by character.
template <std::size_t First, std::size_t Second, method Method, char... Path>
struct duplicate_route {
  static_assert(First == Second,
                "tether::router: two routes answer the same method on the same path (see duplicate_route's "
                "template arguments: the routes' positions, the method, the path); remove one, or give it "
                "another method or path (docs/routing.md)");
};

struct no_error {};

template <class Table>
constexpr std::size_t duplicate_path_size() noexcept {
  constexpr auto dup = Table::find_duplicate();
  if constexpr (dup.found) return Table::paths[dup.first].size();
  return 0;
}

template <class Table, class Chars = std::make_index_sequence<duplicate_path_size<Table>()>>
struct duplicate_error;
template <class Table, std::size_t... K>
struct duplicate_error<Table, std::index_sequence<K...>> {
  static constexpr typename Table::duplicate dup = Table::find_duplicate();
  using type = std::conditional_t<dup.found, duplicate_route<dup.first, dup.second, dup.on, Table::paths[dup.first][K]...>,
                                  no_error>;
};

// Checked only once every route is a static_route (else the error above says why).
template <bool AllRoutes, class... Routes>
struct check_unique_routes {};
template <class... Routes>
struct check_unique_routes<true, Routes...> : duplicate_error<route_table<Routes...>>::type {};

template <class Indices, class... Routes>
struct check_routes;
template <std::size_t... I, class... Routes>
struct check_routes<std::index_sequence<I...>, Routes...> : check_static_route<I, Routes>...,
                                                            check_unique_routes<(static_route<Routes> && ...), Routes...> {};

// A route of a router cannot be called with this server's request type. The template
// arguments of this error name it: its position in the router (from 0), then its path,
// character by character. A handler is called as handler(req) with the server's
// `request&` (basic_server<...>::request): take `auto&` to fit any server.
template <std::size_t Position, char... Path>
struct route_handler_not_callable {
  static_assert(Position != Position,
                "tether: a route's handler must be callable as handler(req) with the server's request& (see "
                "route_handler_not_callable's template arguments: the route's position, its path); take auto& "
                "(docs/concepts/request_handler.md)");
};

template <std::size_t Position, class R, class Request, class Chars = std::make_index_sequence<route_path<R>.size()>>
struct check_route_handler;
template <std::size_t Position, class R, class Request, std::size_t... K>
struct check_route_handler<Position, R, Request, std::index_sequence<K...>>
    : std::conditional_t<request_handler<R, Request>, no_error, route_handler_not_callable<Position, route_path<R>.chars[K]...>> {};

template <class Request, class Indices, class... Routes>
struct check_route_handlers;
template <class Request, std::size_t... I, class... Routes>
struct check_route_handlers<Request, std::index_sequence<I...>, Routes...> : check_route_handler<I, Routes, Request>... {};

template <std::size_t I, class R>
struct route_slot {
  constexpr route_slot() = default;
  constexpr explicit route_slot(R&& r) noexcept(std::is_nothrow_move_constructible_v<R>) : route(std::move(r)) {}
  [[no_unique_address]] R route;
};

template <class Indices, class... Routes>
struct route_storage;

// One base per route: routes with no state (captureless lambdas) take no space.
template <std::size_t... I, class... Routes>
struct route_storage<std::index_sequence<I...>, Routes...> : route_slot<I, Routes>... {
  constexpr route_storage() = default;
  constexpr explicit route_storage(Routes&&... routes) requires(sizeof...(Routes) > 0)
      : route_slot<I, Routes>(std::move(routes))... {}
};

struct router_access;

template <class Request, class... Routes>
struct router_answers<Request, router<Routes...>>
    : std::bool_constant<(request_handler<Routes, Request> && ...)> {};

template <class Request, class... Routes>
struct router_handler_checks<Request, router<Routes...>>
    : check_route_handlers<Request, std::index_sequence_for<Routes...>, Routes...> {};

}  // namespace detail

/// A list of static routes, checked as a whole at compile time and installed on a
/// server as one unit.
///
/// Routes are stored by value; a router of stateless routes is an empty object. Routes
/// may share a path when they answer different methods; two routes answering the same
/// method on the same path are a compile error naming both. Install it with
/// basic_server::route(router) (next to runtime routes and a fallback) or the server's
/// constructor; the server keeps its own copy (moved in) for as long as it lives.
///
/// @tparam Routes each a static_route (tether::route, the get<>/post<>/on<> factories,
///         or a type of your own). Checked in the class rather than in its template
///         head, so that the error names the rule a route breaks.
///
/// @see docs/routing.md (how a router compiles down), docs/concepts/static_route.md
template <class... Routes>
class router : detail::check_routes<std::index_sequence_for<Routes...>, Routes...>,
               detail::route_storage<std::index_sequence_for<Routes...>, Routes...> {
  using storage = detail::route_storage<std::index_sequence_for<Routes...>, Routes...>;

 public:
  /// The number of routes (not of distinct paths).
  static constexpr std::size_t size() noexcept { return sizeof...(Routes); }

  /// Default-constructs every route (routes written as types).
  constexpr router() requires(std::default_initializable<Routes> && ...) = default;
  /// Takes the routes (from the get<>/post<>/on<> factories, or route objects).
  constexpr explicit router(Routes... routes) requires(sizeof...(Routes) > 0)
      : storage(std::move(routes)...) {}

 private:
  friend struct detail::router_access;
};

template <class... Routes>
router(Routes...) -> router<Routes...>;

namespace detail {

struct router_access {
  template <std::size_t I, class... Routes>
  static auto& get(router<Routes...>& r) noexcept {
    using R = std::tuple_element_t<I, std::tuple<Routes...>>;
    return static_cast<route_slot<I, R>&>(r).route;
  }
};

/// A router installed on a server: libevent calls dispatch<P> for requests on the path
/// of route P, with `this` as its argument.
template <class Config, class... Routes>
class router_binding<Config, router<Routes...>> final : public handler_holder_base {
  using table = route_table<Routes...>;

 public:
  router_binding(server_core& core, router<Routes...>&& r) noexcept(std::is_nothrow_move_constructible_v<router<Routes...>>)
      : core_(&core), router_(std::move(r)) {}

  /// One evhttp_set_cb per distinct path; all or nothing. Errors:
  /// errc::invalid_argument if a path is already routed (errc::libevent_failure if
  /// libevent cannot allocate).
  /// Errors: errc::invalid_argument (a path already routed: `failed` points at it) or
  /// errc::libevent_failure; nothing stays installed then.
  [[nodiscard]] std::error_code install(evhttp* http, const char*& failed) noexcept {
    static constexpr auto entries = make_entries(std::index_sequence_for<Routes...>{});
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (!entries[i].first_on_path) continue;
      if (const int rc = evhttp_set_cb(http, entries[i].path, entries[i].callback, this); rc != 0) {
        failed = entries[i].path;
        for (std::size_t j = 0; j < i; ++j)
          if (entries[j].first_on_path) evhttp_del_cb(http, entries[j].path);
        return make_error_code(rc == -1 ? errc::invalid_argument : errc::libevent_failure);
      }
    }
    return {};
  }

  /// Every method the router's routes answer (for evhttp_set_allowed_methods).
  static constexpr method_set methods() noexcept {
    method_set all;
    for (std::size_t i = 0; i < table::size; ++i) all = all | table::served(i);
    return all;
  }

 private:
  struct entry {
    const char* path;
    bool first_on_path;
    void (*callback)(evhttp_request*, void*);
  };

  template <std::size_t... I>
  static constexpr std::array<entry, sizeof...(I)> make_entries(std::index_sequence<I...>) noexcept {
    return {entry{route_path<Routes>.c_str(), table::leader(I) == I, &dispatch<table::leader(I)>}...};
  }

  // The C -> C++ boundary for one path. Each path has its own instantiation, so the
  // method switch below is over constants; the compiler turns it into a few compares.
  template <std::size_t P>
  static void dispatch(evhttp_request* r, void* self) noexcept {
    auto* b = static_cast<router_binding*>(self);
    const unsigned cmd = static_cast<unsigned>(evhttp_request_get_command(r));
    const bool served = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (b->template serve_if<P, I>(r, cmd) || ...);
    }(std::index_sequence_for<Routes...>{});
    if (!served) b->template refuse<P>(r);
  }

  template <std::size_t P, std::size_t I>
  bool serve_if(evhttp_request* r, unsigned cmd) noexcept {
    if constexpr (table::leader(I) != P) {
      return false;  // another path
    } else {
      constexpr unsigned bits = table::served(I).bits();
      if ((cmd & bits) == 0) return false;
      invoke_handler<Config>(*core_, r, router_access::get<I>(router_));
      return true;
    }
  }

  template <std::size_t P>
  void refuse(evhttp_request* r) noexcept {
    static constexpr allow_value allow = make_allow_value(table::served_on_path(P));
    method_not_allowed reply{allow.c_str()};
    invoke_handler<Config>(*core_, r, reply);
  }

  server_core* core_;
  [[no_unique_address]] router<Routes...> router_;
};

}  // namespace detail

TETHER_END_NAMESPACE
