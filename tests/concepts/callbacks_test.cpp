// The close_callback and request_handler concepts: fakes, and the exemplars from
// docs/concepts/close_callback.md and docs/concepts/request_handler.md in a real server.
#include <tether/tether.hpp>

#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

//[exemplar_close_callback
// Remembers why each client left; one instance per connection, stored by value.
struct departure_log {
  std::vector<tether::close_reason>* log = nullptr;
  void operator()(const tether::close_event& e) const noexcept { log->push_back(e.reason); }
};
//]

//[exemplar_request_handler
// A handler with state: counts the requests it answered.
struct counting_handler {
  int* answered;
  template <class Request>
  void operator()(Request& req) const {
    ++*answered;
    (void)req.reply(200, "answer " + std::to_string(*answered));
  }
};
//]

namespace {
struct takes_int {
  void operator()(int) const {}
};
struct throwing_move {
  throwing_move() = default;
  throwing_move(throwing_move&&) noexcept(false) {}
  void operator()(const tether::close_event&) const {}
};
}  // namespace

TEST_CASE("close_callback: callables of close_event that move without throwing", "[concepts][close_callback]") {
  STATIC_REQUIRE(tether::close_callback<departure_log>);
  STATIC_REQUIRE(tether::close_callback<tether::close_function<>>);
  STATIC_REQUIRE_FALSE(tether::close_callback<takes_int>);
  STATIC_REQUIRE_FALSE(tether::close_callback<throwing_move>);
}

TEST_CASE("request_handler: callables of the server's request", "[concepts][request_handler]") {
  STATIC_REQUIRE(tether::request_handler<counting_handler, tether::request>);
  STATIC_REQUIRE_FALSE(tether::request_handler<takes_int, tether::request>);
}

TEST_CASE("exemplars: a typed close callback and a stateful handler drive a real server", "[concepts]") {
  using server = tether::basic_server<tether::eager_close<>, tether::copy_buffer, departure_log>;
  std::vector<tether::close_reason> log;
  int answered = 0;
  tether::event_loop loop;
  server srv{loop};
  srv.fallback([&](server::request& req) {
    (void)req.connection().on_close(departure_log{&log});
    counting_handler{&answered}(req);
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "answer 1"));
  c.reset();
  REQUIRE(tt::run_until(loop, [&] { return !log.empty(); }));
  CHECK(log == std::vector<tether::close_reason>{tether::close_reason::peer_reset});
}

TEST_CASE("close_callback: a second on_close on a keep-alive connection replaces the first", "[concepts][close_callback]") {
  // Documented in docs/concepts/close_callback.md: one callback per connection; the last
  // one set runs, once; the earlier one is destroyed without being called.
  tether::event_loop loop;
  tether::server srv{loop};
  std::vector<std::string> ran;
  int requests = 0;
  srv.fallback([&](tether::request& req) {
    const int n = ++requests;
    REQUIRE_FALSE(req.connection().on_close([&ran, n](const tether::close_event&) noexcept {
      ran.push_back("callback of request " + std::to_string(n));
    }));
    (void)req.reply(200, "request " + std::to_string(n) + "\n");
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "request 1\n"));
  c.send("GET /2 HTTP/1.1\r\nHost: t\r\n\r\n");  // the same connection (keep-alive)
  REQUIRE(c.wait_for(loop, "request 2\n"));
  CHECK(ran.empty());  // replacing does not call the first
  c.close();
  REQUIRE(tt::run_until(loop, [&] { return !ran.empty(); }));
  tt::run_for(loop, std::chrono::milliseconds(20));  // nothing else follows
  CHECK(ran == std::vector<std::string>{"callback of request 2"});
}
