// Handlers, close callbacks and producers are stored by type: after warm-up, a request
// whose handler sets a stateful close callback, holds the request and attaches a
// producer hook costs no C++ heap allocation at all. Counted by replacing the global
// operator new in this binary only (counting_new.cpp), and only while the loop runs, so
// that the test's own client and assertions are not counted.
#include <tether/tether.hpp>

#include "../support/counting_new.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

TEST_CASE("callbacks by type: a stateful close callback, a handle and a hook cost no allocation per request",
          "[alloc][callbacks]") {
  TT_REQUIRE_ALLOCATION_COUNTING();
  struct session_counter {  // a stateful close callback, stored by value per connection
    long* closed;
    long id;
    void operator()(const tether::close_event&) const noexcept { *closed += id; }
  };
  using server = tether::basic_server<tether::eager_close<>, tether::copy_buffer, session_counter>;
  long closed = 0;
  long served = 0;
  tether::event_loop loop;
  server srv{loop};
  server::request_handle held;
  tether::reply_hook hook;
  srv.fallback([&](server::request& req) {
    ++served;
    (void)req.connection().on_close(session_counter{&closed, served});
    held = req.hold();
    (void)held.attach(hook);
    (void)held.reply(200, "ok");
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  tether::timer wake{loop, [] {}};  // bounds each loop iteration below
  wake.start_periodic(10ms);
  long during_loop = 0;
  auto one_request = [&] {
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto want = static_cast<std::size_t>(served + 1);
    for (int spins = 0; spins < 500 && c.occurrences("\r\n\r\nok") < want; ++spins) {
      const long before = allocations_so_far();
      loop.run_once();
      during_loop += allocations_so_far() - before;
      c.pump();
    }
    REQUIRE(c.occurrences("\r\n\r\nok") == want);
  };
  for (int i = 0; i < 5; ++i) one_request();  // warm-up: connection state, map, buffers
  during_loop = 0;
  for (int i = 0; i < 200; ++i) one_request();
  CHECK(during_loop == 0);
  CHECK(served == 205);
}

TEST_CASE("callbacks by type: empty callables cost no storage", "[alloc][callbacks]") {
  auto empty_cb = [](const tether::close_event&) noexcept {};
  using empty_state = tether::detail::connection_state<
      tether::server_config<tether::eager_close<>, tether::copy_buffer, decltype(empty_cb)>>;
  using inline_state = tether::detail::connection_state<
      tether::server_config<tether::eager_close<>, tether::copy_buffer, tether::close_function<>>>;
  using none_state = tether::detail::connection_state<
      tether::server_config<tether::eager_close<>, tether::copy_buffer, tether::no_close_callback>>;
  STATIC_REQUIRE(std::is_empty_v<decltype(empty_cb)>);
  STATIC_REQUIRE(std::is_empty_v<tether::eager_close<>>);
  STATIC_REQUIRE(std::is_empty_v<tether::native_close>);
  STATIC_REQUIRE(std::is_empty_v<tether::copy_buffer>);
  STATIC_REQUIRE(std::is_empty_v<tether::bounded<>>);
  // A stateless callback adds only the "is set" flag (and padding) to the state.
  STATIC_REQUIRE(sizeof(empty_state) <= sizeof(tether::detail::connection_core) + alignof(std::max_align_t));
  STATIC_REQUIRE(sizeof(empty_state) == sizeof(none_state));
  STATIC_REQUIRE(sizeof(empty_state) < sizeof(inline_state));
  STATIC_REQUIRE(sizeof(tether::unique_evhttp) == sizeof(void*));
  // What every long-lived request costs on top of libevent (bench/sse_scale measures it
  // with 10,000 SSE streams in a hub): the per-connection state, and the stream.
  STATIC_REQUIRE(sizeof(inline_state) <= 128);
  STATIC_REQUIRE(sizeof(tether::sse_stream) <= 6 * sizeof(void*));
  STATIC_REQUIRE(sizeof(tether::request_handle) <= 2 * sizeof(void*));
}
