// What a router knows at compile time: each route's path and methods, which routes share a
// path, the methods each answers (HEAD implied by GET) and the Allow header of each path;
// and what routes cost in storage. Routing on real sockets: integration/routing_test.cpp.
#include <tether/router.hpp>

#include <tether/server.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <type_traits>

using tether::method;
using tether::method_set;

namespace {
struct handler {
  void operator()(auto&) const {}
};
constexpr auto noop = [](auto&) {};

template <class... Routes>
using table = tether::detail::route_table<Routes...>;

using items_get = tether::route<"/items", handler, method::get>;
using items_post = tether::route<"/items", handler, method::post>;
using items_head = tether::route<"/items", handler, method::head>;
using other_put = tether::route<"/other", handler, method::put, method::patch>;

struct stateful {
  std::string name;
  void operator()(auto&) {}
};
}  // namespace

TEST_CASE("route: carries its path and methods as constants and its handler by value", "[router][route]") {
  STATIC_REQUIRE(items_get::path.view() == "/items");
  STATIC_REQUIRE(items_get::methods == method_set(method::get));
  STATIC_REQUIRE(other_put::methods == (method::put | method::patch));
  STATIC_REQUIRE(std::is_empty_v<items_get>);  // an empty handler takes no space

  using named = tether::route<"/n", stateful, method::get>;
  STATIC_REQUIRE(sizeof(named) == sizeof(stateful));
  named r{stateful{"state"}};
  CHECK(r.handler().name == "state");
}

TEST_CASE("route: the factories deduce the handler and fix the method", "[router][route]") {
  auto r = tether::get<"/a">(noop);
  STATIC_REQUIRE(std::is_same_v<decltype(r), tether::route<"/a", std::decay_t<decltype(noop)>, method::get>>);
  STATIC_REQUIRE(decltype(tether::post<"/a">(noop))::methods == method_set(method::post));
  STATIC_REQUIRE(decltype(tether::put<"/a">(noop))::methods == method_set(method::put));
  STATIC_REQUIRE(decltype(tether::delete_<"/a">(noop))::methods == method_set(method::delete_));
  STATIC_REQUIRE(decltype(tether::patch<"/a">(noop))::methods == method_set(method::patch));
  STATIC_REQUIRE(decltype(tether::head<"/a">(noop))::methods == method_set(method::head));
  STATIC_REQUIRE(decltype(tether::options<"/a">(noop))::methods == method_set(method::options));
  STATIC_REQUIRE(decltype(tether::on<"/a", method::get, method::trace>(noop))::methods == (method::get | method::trace));
}

TEST_CASE("route: calling it calls the handler with the request", "[router][route]") {
  int seen = 0;
  auto r = tether::get<"/a">([&](int& req) { seen = req; return req * 2; });
  int req = 21;
  CHECK(r(req) == 42);
  CHECK(seen == 21);
}

TEST_CASE("router: routes on one path form one group, led by the first", "[router][table]") {
  using t = table<items_get, other_put, items_post>;
  STATIC_REQUIRE(t::leader(0) == 0);
  STATIC_REQUIRE(t::leader(1) == 1);
  STATIC_REQUIRE(t::leader(2) == 0);
  STATIC_REQUIRE(t::declared_on_path(2) == (method::get | method::post));
  STATIC_REQUIRE_FALSE(t::find_duplicate().found);
}

TEST_CASE("router: GET implies HEAD unless a route on the path declares HEAD", "[router][table][head]") {
  using implied = table<items_get, items_post>;
  STATIC_REQUIRE(implied::served(0) == (method::get | method::head));
  STATIC_REQUIRE(implied::served(1) == method_set(method::post));
  STATIC_REQUIRE(implied::served_on_path(1) == (method::get | method::head | method::post));

  using explicit_head = table<items_get, items_head>;
  STATIC_REQUIRE(explicit_head::served(0) == method_set(method::get));
  STATIC_REQUIRE(explicit_head::served(1) == method_set(method::head));
}

TEST_CASE("router: finds the first pair of routes answering one method on one path", "[router][table]") {
  using t = table<other_put, items_get, items_post, tether::route<"/items", handler, method::delete_, method::post>>;
  constexpr auto dup = t::find_duplicate();
  STATIC_REQUIRE(dup.found);
  STATIC_REQUIRE(dup.first == 2);
  STATIC_REQUIRE(dup.second == 3);
  STATIC_REQUIRE(dup.on == method::post);
  // HEAD implied by GET is not a declaration: a GET route and a HEAD route do not clash.
  STATIC_REQUIRE_FALSE(table<items_get, items_head>::find_duplicate().found);
}

TEST_CASE("router: the Allow header lists methods in RFC 9110's order, whatever the declaration order",
          "[router][allow]") {
  using tether::detail::make_allow_value;
  STATIC_REQUIRE(make_allow_value(method::post | method::get).view() == "GET, POST");
  STATIC_REQUIRE(make_allow_value(method::patch | method::delete_ | method::head).view() == "HEAD, DELETE, PATCH");
  STATIC_REQUIRE(make_allow_value(method_set::all()).view() ==
                 "GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH");
  STATIC_REQUIRE(make_allow_value(method_set{}).view().empty());
  STATIC_REQUIRE(tether::detail::with_implied_head(method::get) == (method::get | method::head));
  STATIC_REQUIRE(tether::detail::with_implied_head(method::post) == method_set(method::post));
}

TEST_CASE("router: stateless routes cost no storage; stateful ones exactly their state", "[router][storage]") {
  using stateless = decltype(tether::router{tether::get<"/a">(noop), tether::post<"/a">(handler{}),
                                            tether::get<"/b">([](auto&) {})});
  STATIC_REQUIRE(std::is_empty_v<stateless>);
  STATIC_REQUIRE(stateless::size() == 3);

  int n = 0;
  auto mixed = tether::router{tether::get<"/a">(noop), tether::get<"/b">([&n](auto&) { ++n; }),
                              tether::get<"/c">(handler{})};
  STATIC_REQUIRE(sizeof(mixed) == sizeof(int*));
  STATIC_REQUIRE(std::is_empty_v<tether::router<>>);

  // One empty handler type on several routes: C++ gives each object of a type its own
  // address, so each repeat takes a byte (still no heap, no per-request cost).
  using repeated = decltype(tether::router{tether::get<"/a">(handler{}), tether::get<"/b">(handler{})});
  STATIC_REQUIRE(sizeof(repeated) <= 2);
}

TEST_CASE("router: routes written as types make a default-constructible router", "[router][types]") {
  STATIC_REQUIRE(std::is_default_constructible_v<tether::router<items_get, other_put>>);
  auto with_capture = tether::get<"/x">([&](auto&) {});
  STATIC_REQUIRE_FALSE(std::is_default_constructible_v<tether::router<decltype(with_capture)>>);
}

TEST_CASE("router: router_type recognises routers only", "[router][concepts]") {
  STATIC_REQUIRE(tether::router_type<tether::router<items_get>>);
  STATIC_REQUIRE(tether::router_type<const tether::router<items_get>&>);
  STATIC_REQUIRE_FALSE(tether::router_type<items_get>);
  STATIC_REQUIRE_FALSE(tether::router_type<handler>);
}
