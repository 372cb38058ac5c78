// Handlers, close callbacks and producers are stored by type: after warm-up, a request
// whose handler sets a stateful close callback, holds the request and attaches a
// producer hook costs no C++ heap allocation at all. Counted by replacing the global
// operator new in this binary only (counting_new.cpp), and only while the loop runs, so
// that the test's own client and assertions are not counted.
//
// Both engines (issue 9), each case's body compiled once (TT_ENGINES_TEST_CASE; only the
// server is built per engine, in tt::with_engine). The lean engine goes further: a
// keep-alive hello in steady state allocates nothing on the heap, neither through
// operator new nor through libevent, whose malloc/realloc this program counts with a
// memory policy (process-wide, hence this program of its own). evhttp allocates on
// libevent's heap for every request (its request, header lists, strings): asserted as
// such, so that the libevent counter is seen to move.
#include <tether/tether.hpp>

#include "../support/counting_new.hpp"
#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <event2/event.h>

#include <atomic>
#include <cstdlib>
#include <string_view>

using namespace std::chrono_literals;

namespace {
/// libevent's malloc and realloc, counted (free is not an allocation).
struct counted_libevent_memory {
  static inline std::atomic<long> calls{0};
  static void* allocate(std::size_t n) noexcept {
    ++calls;
    return std::malloc(n);
  }
  static void* reallocate(void* p, std::size_t n) noexcept {
    ++calls;
    return std::realloc(p, n);
  }
  static void deallocate(void* p) noexcept { std::free(p); }
};
// Before main: nothing has used libevent yet.
const std::error_code libevent_counting = tether::install_memory_policy<counted_libevent_memory>();

long libevent_allocations() noexcept { return counted_libevent_memory::calls.load(); }

/// Allocations while the server's loop ran, through operator new and through libevent.
struct counted_allocations {
  long cxx = 0;
  long libevent = 0;
};

/// Sends `requests` keep-alive requests on `c`, one at a time, each answered once `served`
/// grew and the client holds that many `reply_marker`s; counts what the loop allocated
/// meanwhile. Engine-neutral: the server is whatever listens on `c`'s port.
counted_allocations serve_counted(tether::event_loop& loop, tt::client& c, const long& served, std::string_view request,
                                  std::string_view reply_marker, int requests) {
  counted_allocations n;
  for (int i = 0; i < requests; ++i) {
    c.send(request);
    const auto want = static_cast<std::size_t>(served + 1);
    for (int spins = 0; spins < 500 && c.occurrences(reply_marker) < want; ++spins) {
      const long before = allocations_so_far(), before_ev = libevent_allocations();
      loop.run_once();  // bounded by a periodic timer of the caller's
      n.cxx += allocations_so_far() - before;
      n.libevent += libevent_allocations() - before_ev;
      c.pump();
    }
    REQUIRE(c.occurrences(reply_marker) == want);
  }
  return n;
}
}  // namespace

TT_ENGINES_TEST_CASE("callbacks by type: a stateful close callback, a handle and a hook cost no allocation per request",
                     "[alloc][callbacks]") {
  TT_REQUIRE_ALLOCATION_COUNTING();
  struct session_counter {  // a stateful close callback, stored by value per connection
    long* closed;
    long id;
    void operator()(const tether::close_event&) const noexcept { *closed += id; }
  };
  long closed = 0;
  long served = 0;
  tether::event_loop loop;
  tether::timer wake{loop, [] {}};  // bounds each loop iteration in serve_counted()
  wake.start_periodic(10ms);
  counted_allocations warm, steady;
  tt::with_engine(engine, [&]<class Engine>(std::type_identity<Engine>) {
    using server = tether::basic_server<tether::eager_close<>, tether::copy_buffer, session_counter, Engine>;
    server srv{loop};
    typename server::request_handle held;
    tether::reply_hook hook;
    srv.fallback([&](typename server::request& req) {
      ++served;
      (void)req.connection().on_close(session_counter{&closed, served});
      held = req.hold();
      (void)held.attach(hook);
      (void)held.reply(200, "ok");
    });
    tt::client c(*srv.bind("127.0.0.1", 0));
    const std::string_view get = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    warm = serve_counted(loop, c, served, get, "\r\n\r\nok", 5);  // connection state, map, buffers
    steady = serve_counted(loop, c, served, get, "\r\n\r\nok", 200);
  });
  CHECK(warm.cxx > 0);  // the first request did allocate: the window sees the server
  CHECK(steady.cxx == 0);
  CHECK(served == 205);
}

TT_ENGINES_TEST_CASE("keep-alive hello: once warm, the lean engine allocates nothing on the heap, evhttp only on libevent's",
                     "[alloc]") {
  TT_REQUIRE_ALLOCATION_COUNTING();
  REQUIRE_FALSE(libevent_counting);
  {  // the libevent counter moves too (as allocation_counting_works() proves operator new's)
    const long before = libevent_allocations();
    event_base* probe = event_base_new();
    REQUIRE(probe);
    event_base_free(probe);
    REQUIRE(libevent_allocations() > before);
  }
  long served = 0;
  tether::event_loop loop;
  tether::timer wake{loop, [] {}};  // bounds each loop iteration in serve_counted()
  wake.start_periodic(10ms);
  counted_allocations warm, steady;
  std::string wire;
  tt::with_engine(engine, [&]<class Engine>(std::type_identity<Engine>) {
    tether::basic_server<tether::eager_close<>, tether::copy_buffer, tether::close_function<>, Engine> srv{loop};
    srv.fallback([&](auto& req) {  // examples/hello's handler
      ++served;
      (void)req.output_headers().add("Content-Type", "text/plain");
      (void)req.reply(200, "hello");
    });
    tt::client c(*srv.bind("127.0.0.1", 0));
    const std::string_view get = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    warm = serve_counted(loop, c, served, get, "\r\n\r\nhello", 5);  // the connection, its buffers, the parser
    steady = serve_counted(loop, c, served, get, "\r\n\r\nhello", 500);
    wire = c.data();
  });
  CHECK(served == 505);
  CHECK(warm.cxx > 0);  // the connection's first request did allocate: the window sees the server
  CHECK(steady.cxx == 0);
  if (engine == tt::engine_kind::lean) {
    CHECK(steady.libevent == 0);
  } else {
    // evhttp builds a request, its header lists and strings on libevent's heap for every
    // request: not tether's to remove, and proof that this window counts libevent's heap.
    CHECK(steady.libevent >= 500);
  }
  CHECK(wire.find("Connection: close") == std::string::npos);  // one connection throughout
}

// Sizes checked at compile time: no server runs, so nothing differs by engine here.
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
