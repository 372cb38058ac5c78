// The static_route concept: fakes that must and must not model it, and the exemplar from
// docs/concepts/static_route.md, used in a real server.
#include <tether/route.hpp>
#include <tether/tether.hpp>

#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

//[exemplar_static_route
// A route written as a type: its path and methods are constants, its call operator is
// the handler, and its members are state that lives as long as the server.
struct health_check {
  static constexpr std::string_view path = "/health";
  static constexpr tether::method_set methods = tether::method::get;
  int served = 0;
  void operator()(auto& req) {
    ++served;
    (void)req.reply(200, "ok " + std::to_string(served));
  }
};
//]

// A named namespace: clang warns about constants nobody reads in an anonymous one, and
// these exist only to be rejected.
namespace fakes {
struct no_path {
  static constexpr tether::method_set methods = tether::method::get;
  void operator()(auto&) {}
};
struct runtime_path {  // not a constant: the router needs paths at compile time
  static inline const char* path = "/x";
  static constexpr tether::method_set methods = tether::method::get;
  void operator()(auto&) {}
};
struct relative_path {
  static constexpr std::string_view path = "health";
  static constexpr tether::method_set methods = tether::method::get;
  void operator()(auto&) {}
};
struct path_with_query {
  static constexpr std::string_view path = "/health?full=1";
  static constexpr tether::method_set methods = tether::method::get;
  void operator()(auto&) {}
};
struct no_methods {
  static constexpr std::string_view path = "/x";
  void operator()(auto&) {}
};
struct empty_methods {
  static constexpr std::string_view path = "/x";
  static constexpr tether::method_set methods = {};
  void operator()(auto&) {}
};
struct methods_as_int {
  static constexpr std::string_view path = "/x";
  static constexpr int methods = 1;
  void operator()(auto&) {}
};
struct pinned {  // a router stores its routes by value
  static constexpr std::string_view path = "/x";
  static constexpr tether::method_set methods = tether::method::get;
  pinned() = default;
  pinned(pinned&&) = delete;
  void operator()(auto&) {}
};
struct one_method_and_literal {  // a single method and a C string are enough
  static constexpr const char* path = "/x";
  static constexpr tether::method methods = tether::method::post;
  void operator()(auto&) {}
};
struct not_callable {
  static constexpr std::string_view path = "/x";
  static constexpr tether::method_set methods = tether::method::get;
};
struct takes_default_request {
  static constexpr std::string_view path = "/x";
  static constexpr tether::method_set methods = tether::method::get;
  void operator()(tether::request&) {}
};
using native_request = tether::basic_server<tether::native_close>::request;
}  // namespace fakes

using namespace fakes;

TEST_CASE("static_route: the exemplar, tether::route and hand-written routes with constant paths model it",
          "[concepts][static_route]") {
  STATIC_REQUIRE(tether::static_route<health_check>);
  STATIC_REQUIRE(tether::static_route<one_method_and_literal>);
  STATIC_REQUIRE(tether::static_route<not_callable>);  // calling is checked per server
  STATIC_REQUIRE(tether::static_route<tether::route<"/a", not_callable, tether::method::get>>);
  STATIC_REQUIRE(tether::static_route<decltype(tether::get<"/a">([](auto&) {}))>);
}

TEST_CASE("static_route: a route without a constant, absolute, query-free path is rejected",
          "[concepts][static_route]") {
  STATIC_REQUIRE_FALSE(tether::static_route<no_path>);
  STATIC_REQUIRE_FALSE(tether::static_route<runtime_path>);
  STATIC_REQUIRE_FALSE(tether::static_route<relative_path>);
  STATIC_REQUIRE_FALSE(tether::static_route<path_with_query>);
}

TEST_CASE("static_route: a route without a non-empty constant method set, or that cannot move, is rejected",
          "[concepts][static_route]") {
  STATIC_REQUIRE_FALSE(tether::static_route<no_methods>);
  STATIC_REQUIRE_FALSE(tether::static_route<empty_methods>);
  STATIC_REQUIRE_FALSE(tether::static_route<methods_as_int>);
  STATIC_REQUIRE_FALSE(tether::static_route<pinned>);
}

TEST_CASE("static_route_for: a route answers a server's requests only if it can be called with them",
          "[concepts][static_route]") {
  STATIC_REQUIRE(tether::static_route_for<health_check, tether::request>);
  STATIC_REQUIRE(tether::static_route_for<health_check, native_request>);  // auto& fits every server
  STATIC_REQUIRE(tether::static_route_for<takes_default_request, tether::request>);
  STATIC_REQUIRE_FALSE(tether::static_route_for<takes_default_request, native_request>);
  STATIC_REQUIRE_FALSE(tether::static_route_for<not_callable, tether::request>);
  STATIC_REQUIRE_FALSE(tether::static_route_for<relative_path, tether::request>);
}

TEST_CASE("static_route: a user-written route serves a real server and keeps its state", "[concepts][static_route]") {
  tether::event_loop loop;
  tether::server srv{loop, tether::router<health_check>{}};
  tt::client c(*srv.bind("127.0.0.1", 0));
  c.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "ok 1"));
  c.send("GET /health?verbose HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "ok 2"));
  c.send("POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(c.wait_for(loop, "Allow: GET, HEAD\r\n"));
  CHECK(c.data().find("405 Method Not Allowed") != std::string::npos);
}
