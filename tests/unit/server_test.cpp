#include <tether/router.hpp>
#include <tether/server.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

TEST_CASE("parse_port: accepts 1..65535 in decimal and nothing else", "[server][port]") {
  CHECK(*tether::parse_port("1") == 1);
  CHECK(*tether::parse_port("4242") == 4242);
  CHECK(*tether::parse_port("65535") == 65535);
  for (const char* bad : {"0", "65536", "-1", "", "abc", "12a", " 80", "999999"})
    CHECK(tether::parse_port(bad).error() == tether::errc::invalid_argument);
}

TEMPLATE_TEST_CASE("server: binding reports the real port, and clear errors for bad input", "[server][bind]",
                   TT_ENGINE_SERVERS) {
  using Server = TestType;
  tether::event_loop loop;
  Server a{loop}, b{loop};
  auto port = a.bind("127.0.0.1", 0);
  REQUIRE(port);
  CHECK(*port != 0);
  CHECK(a.port() == *port);
  CHECK(a.listeners().size() == 1);
  CHECK(b.bind("127.0.0.1", *port).error() == std::errc::address_in_use);
  CHECK(b.bind("not-an-address", 0).error() == tether::errc::invalid_address);
  CHECK(b.bind("300.1.1.1", 0).error() == tether::errc::invalid_address);
  auto v6 = b.bind("::1", 0);
  if (v6) {  // loopback IPv6 may be disabled on the machine
    CHECK(b.bind("[::1]", *v6).error() == std::errc::address_in_use);
  }
  a.stop_listening();
  CHECK(a.listeners().empty());
  CHECK(Server{loop}.bind("127.0.0.1", *port));  // free again
}

TEST_CASE("server: routes by exact path, falls back, rejects duplicates, and unroutes", "[server][routes]") {
  tether::event_loop loop;
  tether::server srv{loop};
  REQUIRE_FALSE(srv.route("/a", [](tether::request& r) { (void)r.reply(200, "route-a"); }));
  CHECK(srv.route("/a", [](tether::request& r) { (void)r.reply(200, "again"); }) == tether::errc::invalid_argument);
  srv.fallback([](tether::request& r) { (void)r.reply(200, std::string("fallback:") + std::string(r.path())); });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET /a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "route-a"));
  c.send("GET /b HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "fallback:/b"));
  REQUIRE_FALSE(srv.unroute("/a"));
  CHECK(srv.unroute("/a") == tether::errc::invalid_argument);
  c.send("GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "fallback:/a"));
}

TEST_CASE("server: a duplicate runtime route's error names the path, and changes nothing", "[server][routes]") {
  tether::event_loop loop;
  tether::server srv{loop};
  auto status = [](tether::request& r) { (void)r.reply(200, "first"); };
  REQUIRE_FALSE(srv.route("/status", status));
  const tether::route_error again = srv.route("/status", [](tether::request& r) { (void)r.reply(200, "second"); });
  REQUIRE(again);
  CHECK(again == tether::errc::invalid_argument);
  CHECK(again == std::errc::invalid_argument);
  CHECK(again.path() == "/status");
  CHECK(again.message() ==
        "tether: route \"/status\": the path is already routed (by a runtime route or a router); unroute it first, "
        "or choose another path");
  const std::error_code as_code = again;  // still an error code for code that wants one
  CHECK(as_code == tether::errc::invalid_argument);
  CHECK(again.value() == as_code.value());  // and spelled like one
  CHECK(&again.category() == &tether::category());
  // With methods, and a router claiming it: the same sentence, the same path.
  CHECK(srv.route("/status", tether::method::get, status).path() == "/status");
  const auto by_router = srv.route(tether::router{
      tether::get<"/free">([](auto& r) { (void)r.reply(200); }),
      tether::get<"/status">([](auto& r) { (void)r.reply(200); }),
  });
  CHECK(by_router.path() == "/status");
  CHECK(by_router.message().find("already routed") != std::string::npos);
  CHECK(srv.route("/m", tether::method_set{}, status).message() ==
        "tether: route \"/m\": a route needs at least one method (tether::method::get, ...)");
  CHECK(srv.unroute("/nowhere").message() == "tether: route \"/nowhere\": the path is not routed");
  // A success carries nothing.
  const auto ok = srv.route("/other", status);
  CHECK_FALSE(ok);
  CHECK(ok.path().empty());
  // The first route still answers: nothing was replaced (the router installed none of its paths).
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET /status HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "first"));
  c.send("GET /free HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "404"));
}

TEST_CASE("server: exposes the request's method, target, host, headers, body and version", "[server][request]") {
  tether::event_loop loop;
  tether::server srv{loop};
  std::string seen;
  srv.fallback([&](tether::request& r) {
    seen = std::string(to_string(r.method())) + " " + std::string(r.uri()) + " path=" + std::string(r.path()) +
           " query=" + std::string(r.query().value_or("-")) + " host=" + std::string(r.host()) +
           " x=" + std::string(r.input_headers().find("X-Test").value_or("-")) + " body=" + r.body().to_string() +
           " v=" + std::to_string(r.version().first) + "." + std::to_string(r.version().second) +
           " peer=" + std::string(r.connection().peer_address());
    (void)r.reply(200, "ok");
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("POST /p/q?k=v HTTP/1.1\r\nHost: Example.org\r\nX-Test: 1\r\nContent-Length: 4\r\n\r\nbody");
  REQUIRE(c.wait_for(loop, "ok"));
  CHECK(seen == "POST /p/q?k=v path=/p/q query=k=v host=Example.org x=1 body=body v=1.1 peer=127.0.0.1");
}

TEST_CASE("server: limits and allowed methods are applied by libevent before handlers run", "[server][limits]") {
  tether::event_loop loop;
  tether::server srv{loop};
  int handled = 0;
  srv.fallback([&](tether::request& r) {
    ++handled;
    (void)r.reply(200);
  });
  srv.allow_methods(tether::method::get | tether::method::head);
  srv.set_max_body_size(8);
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client a(port), b(port);
  a.send("DELETE / HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(a.wait_for(loop, "HTTP/1.1 501"));
  srv.allow_methods(tether::method_set::all());
  b.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'));
  CHECK(b.wait_for(loop, "HTTP/1.1 413"));
  CHECK(handled == 0);
}

TEST_CASE("connection: exposes evhttp's bufferevent as a view while the connection lives", "[server][bufferevent]") {
  tether::event_loop loop;
  tether::server srv{loop};
  bool checked = false;
  srv.fallback([&](tether::request& r) {
    auto bev = r.connection().bufferevent();
    REQUIRE(bev);
    CHECK(bev->fd() >= 0);
    CHECK(bev->input().empty());        // evhttp consumed the request
    CHECK_FALSE(bev->reading());        // evhttp stops reading while the handler runs
    checked = true;
    (void)r.reply(200, "ok");
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "ok"));
  CHECK(checked);
}
