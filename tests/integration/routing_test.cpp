// Routing on real sockets: static routers, runtime routes and the fallback, alone and
// together, under every policy configuration. Requests are written by hand so that each
// test controls the exact bytes (methods, percent-encoding, keep-alive, HEAD). Every case
// runs on both engines (TT_ENGINE_SERVERS, or the policy list with lean servers in it) but
// the percent-decoding one: the lean engine routes the path as sent (docs/engine.md).
#include <tether/router.hpp>
#include <tether/tether.hpp>

#include "../support/counting_new.hpp"
#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>


using namespace std::chrono_literals;
using tether::method;

namespace {

struct response {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;

  std::optional<std::string> header(const std::string& name) const {
    const auto at = head.find("\r\n" + name + ": ");
    if (at == std::string::npos) return std::nullopt;
    const auto from = at + name.size() + 4;
    return head.substr(from, head.find("\r\n", from) - from);
  }
};

/// One keep-alive connection, read one response at a time.
class conversation {
 public:
  conversation(tether::event_loop& loop, std::uint16_t port) : loop_(loop), c_(port) {}

  /// Sends `method target` and returns the complete response (nullopt on timeout).
  std::optional<response> ask(const std::string& method_name, const std::string& target, const std::string& body = {}) {
    std::string req = method_name + " " + target + " HTTP/1.1\r\nHost: t\r\n";
    if (!body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    c_.send(req + "\r\n" + body);
    return next(method_name == "HEAD");
  }

  /// The next complete response; a reply to HEAD has no body, whatever its Content-Length.
  std::optional<response> next(bool to_head = false) {
    std::optional<response> r;
    tt::run_until(loop_, [&] {
      c_.pump();
      r = parse(to_head);
      return r.has_value();
    });
    return r;
  }

  /// Bytes received and not yet returned as a response.
  std::string unread() {
    c_.pump();
    return c_.data().substr(used_);
  }
  tt::client& client() { return c_; }

 private:
  std::optional<response> parse(bool to_head) {
    const std::string& d = c_.data();
    const auto eoh = d.find("\r\n\r\n", used_);
    if (eoh == std::string::npos) return std::nullopt;
    response r;
    r.head = d.substr(used_, eoh + 2 - used_);
    r.status = std::atoi(r.head.c_str() + 9);
    std::size_t length = 0;
    if (auto cl = r.header("Content-Length"); cl && !to_head) length = std::stoul(*cl);
    if (d.size() < eoh + 4 + length) return std::nullopt;
    r.body = d.substr(eoh + 4, length);
    used_ = eoh + 4 + length;
    return r;
  }

  tether::event_loop& loop_;
  tt::client c_;
  std::size_t used_ = 0;
};

// Handlers shared by several tests.
template <int Status>
struct replies {
  const char* text;
  void operator()(auto& req) const { (void)req.reply(Status, text); }
};
struct echo_method {
  void operator()(auto& req) const { (void)req.reply(200, std::string(to_string(req.method())) + " " + std::string(req.path())); }
};

struct counter {
  int count = 0;
  std::string label;  // not trivially copyable: the router moves it in
  void operator()(auto& req) {
    ++count;
    (void)req.reply(200, label + std::to_string(count));
  }
};

// Routes written as types.
struct health {
  static constexpr std::string_view path = "/health";
  static constexpr tether::method_set methods = method::get;
  void operator()(auto& req) const { (void)req.reply(200, "ok"); }
};
struct version {
  static constexpr const char* path = "/version";
  static constexpr tether::method methods = method::get;  // one method converts to a set
  void operator()(auto& req) const { (void)req.reply(200, tether::version_string); }
};

struct session {
  long* served;
  void operator()(auto& req) const { (void)req.reply(200, ++*served % 2 ? "odd" : "even"); }
};

}  // namespace

TEMPLATE_TEST_CASE("static routes: a known path and method reach its handler; an unknown path gets 404",
          "[routing][static]", TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  TestType srv{loop, tether::router{
                               tether::get<"/hello">([](auto& req) { (void)req.reply(200, "hello"); }),
                               tether::get<"/bye">([](auto& req) { (void)req.reply(200, "bye"); }),
                           }};
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  auto hello = c.ask("GET", "/hello");
  REQUIRE(hello);
  CHECK(hello->status == 200);
  CHECK(hello->body == "hello");
  auto bye = c.ask("GET", "/bye");
  REQUIRE(bye);
  CHECK(bye->body == "bye");
  auto missing = c.ask("GET", "/nowhere");
  REQUIRE(missing);
  CHECK(missing->status == 404);  // libevent's own page: there is no fallback
}

TEMPLATE_TEST_CASE("static routes: another method on a known path gets 405 with Allow in a fixed order, and the "
          "connection stays open",
          "[routing][static][405]", TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  TestType srv{loop};
  // Declared in an order unlike the header's: the header follows RFC 9110, not the source.
  REQUIRE_FALSE(srv.route(tether::router{
      tether::delete_<"/items">(replies<204>{""}),
      tether::post<"/items">(replies<201>{"added"}),
      tether::get<"/items">(replies<200>{"list"}),
      tether::put<"/other">(replies<200>{"put"}),
  }));
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  auto r = c.ask("PUT", "/items");
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(r->header("Allow") == "GET, HEAD, POST, DELETE");
  CHECK(r->body.empty());
  CHECK_FALSE(r->header("Connection"));  // not closed, unlike libevent's error pages
  auto other = c.ask("GET", "/other");
  REQUIRE(other);
  CHECK(other->status == 405);
  CHECK(other->header("Allow") == "PUT");  // PUT alone: no GET, so no HEAD either
  auto list = c.ask("GET", "/items");      // same connection, still served
  REQUIRE(list);
  CHECK(list->body == "list");
}

TEMPLATE_TEST_CASE("static routes: several methods on one path reach their own handlers, PATCH included",
          "[routing][static][methods]", TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  TestType srv{loop};
  CHECK_FALSE(srv.allowed_methods().contains(method::patch));  // libevent's default set
  REQUIRE_FALSE(srv.route(tether::router{
      tether::get<"/items">(echo_method{}),
      tether::post<"/items">(echo_method{}),
      tether::on<"/items", method::put, method::patch>(echo_method{}),
      tether::delete_<"/items">(echo_method{}),
  }));
  CHECK(srv.allowed_methods().contains(method::patch));  // the router declared it
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  for (const char* m : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    auto r = c.ask(m, "/items", std::string(m) == "POST" ? "x" : "");
    REQUIRE(r);
    CHECK(r->body == std::string(m) + " /items");
  }
  auto options = c.ask("OPTIONS", "/items");  // not allowed by libevent at all: 501
  REQUIRE(options);
  CHECK(options->status == 501);
}

TEMPLATE_TEST_CASE("static routes: HEAD gets the GET route's headers and Content-Length, no body, and keep-alive "
          "continues",
          "[routing][static][head]", TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  int gets = 0;
  TestType srv{loop, tether::router{
                               tether::get<"/page">([&](auto& req) {
                                 ++gets;
                                 (void)req.output_headers().add("X-Page", "1");
                                 (void)req.reply(200, "0123456789");
                               }),
                               tether::get<"/own-head">(replies<200>{"from GET"}),
                               tether::head<"/own-head">([](auto& req) {
                                 (void)req.output_headers().add("X-From", "head-route");
                                 (void)req.reply(200);
                               }),
                           }};
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  auto head = c.ask("HEAD", "/page");
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->header("Content-Length") == "10");
  CHECK(head->header("X-Page") == "1");
  auto get = c.ask("GET", "/page");  // parses cleanly: no stray body from the HEAD reply
  REQUIRE(get);
  CHECK(get->status == 200);
  CHECK(get->body == "0123456789");
  CHECK(c.unread().empty());
  CHECK(gets == 2);

  auto own = c.ask("HEAD", "/own-head");  // an explicit HEAD route wins over GET
  REQUIRE(own);
  CHECK(own->header("X-From") == "head-route");
  auto own_get = c.ask("GET", "/own-head");
  REQUIRE(own_get);
  CHECK(own_get->body == "from GET");
  CHECK(own_get->header("Allow") == std::nullopt);
}

TEST_CASE("static routes: matching ignores the query and compares the percent-decoded path exactly",
          "[routing][static][path]") {
  tether::event_loop loop;
  tether::server srv{loop, tether::router{tether::get<"/items">(echo_method{}),
                                          tether::get<"/a b">(replies<200>{"space"})}};
  srv.fallback([](tether::request& req) { (void)req.reply(404, "fallback " + std::string(req.path())); });
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  auto query = c.ask("GET", "/items?page=2&sort=name");
  REQUIRE(query);
  CHECK(query->body == "GET /items");
  auto encoded = c.ask("GET", "/it%65ms");  // libevent decodes before comparing
  REQUIRE(encoded);
  CHECK(encoded->status == 200);
  auto space = c.ask("GET", "/a%20b");
  REQUIRE(space);
  CHECK(space->body == "space");
  auto slash = c.ask("GET", "/items/");  // exact: no prefix or trailing-slash matching
  REQUIRE(slash);
  CHECK(slash->body == "fallback /items/");
  auto upper = c.ask("GET", "/ITEMS");
  REQUIRE(upper);
  CHECK(upper->status == 404);
}

TEMPLATE_TEST_CASE("static and runtime routes and a fallback share one server; each path belongs to one of them",
          "[routing][static][runtime]", TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  TestType srv{loop};
  REQUIRE_FALSE(srv.route(tether::router{tether::get<"/static">(echo_method{}), tether::post<"/static">(echo_method{})}));
  REQUIRE_FALSE(srv.route("/runtime", [](auto& req) { (void)req.reply(200, "runtime"); }));
  REQUIRE_FALSE(srv.route("/runtime-get", method::get, [](auto& req) { (void)req.reply(200, "runtime-get"); }));
  srv.fallback([](auto& req) { (void)req.reply(404, "fallback"); });

  // A path has one owner: the second claim is refused, whichever style makes it.
  CHECK(srv.route("/static", [](auto& req) { (void)req.reply(200); }) == tether::errc::invalid_argument);
  CHECK(srv.route(tether::router{tether::get<"/fresh">(echo_method{}), tether::put<"/runtime">(echo_method{})}) ==
        tether::errc::invalid_argument);

  conversation c(loop, *srv.bind("127.0.0.1", 0));
  CHECK(c.ask("GET", "/static")->body == "GET /static");
  CHECK(c.ask("POST", "/static", "x")->body == "POST /static");
  CHECK(c.ask("DELETE", "/static")->status == 405);
  CHECK(c.ask("GET", "/runtime")->body == "runtime");
  CHECK(c.ask("DELETE", "/runtime")->body == "runtime");  // no methods given: all of them
  CHECK(c.ask("GET", "/runtime-get")->body == "runtime-get");
  auto refused = c.ask("POST", "/runtime-get", "x");
  REQUIRE(refused);
  CHECK(refused->status == 405);
  CHECK(refused->header("Allow") == "GET, HEAD");
  auto head = c.ask("HEAD", "/runtime-get");  // GET implies HEAD here too; no body follows
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->header("Content-Length") == "11");
  CHECK(c.ask("GET", "/runtime")->body == "runtime");
  CHECK(c.ask("GET", "/fresh")->body == "fallback");  // the refused router installed nothing
  CHECK(c.ask("GET", "/elsewhere")->body == "fallback");

  REQUIRE_FALSE(srv.unroute("/static"));  // a router's path can be taken back like any other
  CHECK(c.ask("GET", "/static")->body == "fallback");
  REQUIRE_FALSE(srv.route("/static", [](auto& req) { (void)req.reply(200, "runtime now"); }));
  CHECK(c.ask("GET", "/static")->body == "runtime now");
}

TEMPLATE_TEST_CASE("runtime routes with methods: 405 and Allow as for static routes; an empty set is refused",
          "[routing][runtime]", TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  TestType srv{loop};
  CHECK(srv.route("/none", tether::method_set{}, echo_method{}) == tether::errc::invalid_argument);
  REQUIRE_FALSE(srv.route("/patchable", method::patch | method::post, echo_method{}));
  CHECK(srv.allowed_methods().contains(method::patch));
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  CHECK(c.ask("PATCH", "/patchable")->body == "PATCH /patchable");
  auto get = c.ask("GET", "/patchable");
  REQUIRE(get);
  CHECK(get->status == 405);
  CHECK(get->header("Allow") == "POST, PATCH");
  CHECK(c.ask("GET", "/none")->status == 404);
}

TEMPLATE_TEST_CASE("static routes: handlers keep their state across requests, stored in the server", "[routing][static][state]", TT_ENGINE_SERVERS) {
  int posts = 0;
  tether::event_loop loop;
  TestType srv{loop};
  REQUIRE_FALSE(srv.route(tether::router{
      tether::get<"/count">(counter{0, "n="}),
      tether::get<"/empty">([](auto& req) { (void)req.reply(200, "empty"); }),
      tether::post<"/count">([&posts](auto& req) { (void)req.reply(200, "posts=" + std::to_string(++posts)); }),
      tether::get<"/other">(counter{100, "m="}),
  }));
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  CHECK(c.ask("GET", "/count")->body == "n=1");
  CHECK(c.ask("GET", "/count")->body == "n=2");
  CHECK(c.ask("GET", "/other")->body == "m=101");
  CHECK(c.ask("GET", "/empty")->body == "empty");
  CHECK(c.ask("POST", "/count", "x")->body == "posts=1");
  CHECK(c.ask("GET", "/count")->body == "n=3");
  CHECK(posts == 1);
}

TEMPLATE_TEST_CASE("static routes: a router of types is declared, constructed and installed without values",
                   "[routing][static][types]", tether::evhttp_engine, tether::lean_engine) {
  using api = tether::router<health, version, tether::route<"/echo", echo_method, method::post>>;
  STATIC_REQUIRE(std::is_empty_v<api>);
  using minimal_server =
      tether::basic_server<tether::native_close, tether::copy_buffer, tether::no_close_callback, TestType>;
  tether::event_loop loop;
  minimal_server srv{loop, api{}};
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  CHECK(c.ask("GET", "/health")->body == "ok");
  CHECK(c.ask("GET", "/version")->body == tether::version_string);
  CHECK(c.ask("POST", "/echo", "x")->body == "POST /echo");
}

TEMPLATE_TEST_CASE("static routes: an exception escaping a handler becomes a 500, and the next request is served",
          "[routing][static][exceptions]", TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  TestType srv{loop, tether::router{
                               tether::get<"/throws">([](auto&) { throw std::runtime_error("static handler failed"); }),
                               tether::get<"/fine">(replies<200>{"fine"}),
                           }};
  const auto port = *srv.bind("127.0.0.1", 0);
  conversation a(loop, port);
  auto r = a.ask("GET", "/throws");
  REQUIRE(r);
  CHECK(r->status == 500);
  conversation b(loop, port);
  CHECK(b.ask("GET", "/fine")->body == "fine");
}

TEMPLATE_TEST_CASE("static routes: a request held by a static route notices the client hanging up", "[routing][static][close]", TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  std::vector<tether::close_reason> reasons;
  typename TestType::request_handle held;
  TestType srv{loop, tether::router{tether::get<"/wait">([&](auto& req) {
                       (void)req.connection().on_close([&](const tether::close_event& e) { reasons.push_back(e.reason); });
                       held = req.hold();
                     })}};
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  c.client().send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(loop, [&] { return bool(held); }));
  c.client().reset();
  REQUIRE(tt::run_until(loop, [&] { return !reasons.empty(); }));
  CHECK(reasons == std::vector<tether::close_reason>{tether::close_reason::peer_reset});
  CHECK(held.reply(200) == tether::errc::peer_gone);
}

namespace {
using eager_server = tether::basic_server<>;
using native_server = tether::basic_server<tether::native_close>;
using bounded_server = tether::basic_server<tether::eager_close<1024>, tether::bounded<tether::copy_buffer, 4096>>;
using quiet_server = tether::basic_server<tether::native_close, tether::reference_buffer, tether::no_close_callback>;
struct typed_close {
  int* closed;
  void operator()(const tether::close_event&) const noexcept { ++*closed; }
};
using typed_close_server = tether::basic_server<tether::eager_close<>, tether::file_buffer, typed_close>;
// The lean engine's configurations (it copies bodies: copy_buffer).
using lean_native_server = tether::basic_server<tether::native_close, tether::copy_buffer, tether::close_function<>,
                                                tether::lean_engine>;
using lean_typed_close_server =
    tether::basic_server<tether::eager_close<1024>, tether::copy_buffer, typed_close, tether::lean_engine>;
}  // namespace

TEMPLATE_TEST_CASE("static routes: the same router serves every policy configuration", "[routing][static][policies]",
                   eager_server, native_server, bounded_server, quiet_server, typed_close_server, tether::lean_server,
                   lean_native_server, lean_typed_close_server) {
  auto api = tether::router{
      tether::get<"/a">(echo_method{}),
      tether::post<"/a">([](auto& req) { (void)req.reply(201, req.body().to_string()); }),
      tether::get<"/stream">([](auto& req) {
        (void)req.start(200);
        (void)req.send_chunk("one,");
        (void)req.send_chunk("two");
        (void)req.end();
      }),
  };
  tether::event_loop loop;
  TestType srv{loop, api};
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  CHECK(c.ask("GET", "/a")->body == "GET /a");
  auto posted = c.ask("POST", "/a", "payload");
  REQUIRE(posted);
  CHECK(posted->status == 201);
  CHECK(posted->body == "payload");
  CHECK(c.ask("PUT", "/a")->header("Allow") == "GET, HEAD, POST");
  c.client().send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(c.client().wait_for(loop, "0\r\n\r\n"));  // chunked, complete
  CHECK(c.client().data().find("one,") != std::string::npos);
}

TEMPLATE_TEST_CASE("static routes: serving a request, or refusing its method, allocates nothing on the C++ heap",
          "[routing][static][alloc]", TT_ENGINE_SERVERS) {
  TT_REQUIRE_ALLOCATION_COUNTING();
  long served = 0;
  tether::event_loop loop;
  TestType srv{loop, tether::router{tether::get<"/a">(session{&served}), tether::post<"/a">(echo_method{})}};
  conversation c(loop, *srv.bind("127.0.0.1", 0));
  auto round = [&] {
    REQUIRE(c.ask("GET", "/a")->status == 200);
    REQUIRE(c.ask("DELETE", "/a")->status == 405);
  };
  for (int i = 0; i < 3; ++i) round();  // warm-up
  tether::timer wake{loop, [] {}};       // bounds each wait below
  wake.start_periodic(10ms);
  const std::string two_requests = "GET /a HTTP/1.1\r\nHost: t\r\n\r\nDELETE /a HTTP/1.1\r\nHost: t\r\n\r\n";
  long during_loop = 0;  // counted only while the loop runs: the test's client allocates
  for (int i = 0; i < 20; ++i) {
    c.client().send(two_requests);
    const auto want = static_cast<std::size_t>(2 * (i + 4));
    for (int spins = 0; spins < 500 && c.client().occurrences("HTTP/1.1 ") < want; ++spins) {
      const long before = allocations_so_far();
      loop.run_once();
      during_loop += allocations_so_far() - before;
      c.client().pump();
    }
    REQUIRE(c.client().occurrences("HTTP/1.1 ") == want);
  }
  CHECK(served == 23);
  CHECK(during_loop == 0);
}
