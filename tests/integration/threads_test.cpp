// Several loops on several threads: server groups (SO_REUSEPORT), and the broker
// delivering across loops. Built on its own so that a ThreadSanitizer build runs exactly
// these (meson setup build-tsan -Db_sanitize=thread with clang++; see docs/scaling.md).
//
// Catch2 is not thread-safe: only the test's own thread asserts. Loop threads record
// what they saw under a mutex (or in atomics); the test thread checks it afterwards.
//
// Every case with a server runs on both engines (issue 9). Most bodies are compiled once
// (TT_ENGINES_TEST_CASE): a group is an any_group, and only what runs on its loops (the
// setup and the handlers, generic lambdas) is instantiated per engine, through
// start_on(); the balanced-accept cases, whose bodies are small, are template test cases
// over TT_ENGINE_SERVERS. The wakeup case runs no server: it tests a loop and threads
// only, so there is no engine to vary.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// Reads from `c` (no loop: the servers run on their own threads) until `pred(data)`
/// holds or `limit` passes.
template <class Pred>
bool read_until(tt::client& c, Pred pred, std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    c.pump();
    if (pred(c.data())) return true;
    if (c.eof() || std::chrono::steady_clock::now() >= deadline) return pred(c.data());
    pollfd p{c.fd(), POLLIN, 0};
    ::poll(&p, 1, 5);
  }
}
bool read_for(tt::client& c, std::string_view needle, std::chrono::milliseconds limit = 3000ms) {
  return read_until(c, [&](const std::string& d) { return d.find(needle) != std::string::npos; }, limit);
}
std::size_t count_of(const std::string& d, std::string_view needle) {
  std::size_t n = 0;
  for (auto p = d.find(needle); p != std::string::npos; p = d.find(needle, p + needle.size())) ++n;
  return n;
}
bool read_count(tt::client& c, std::string_view needle, std::size_t n, std::chrono::milliseconds limit = 3000ms) {
  return read_until(c, [&](const std::string& d) { return count_of(d, needle) >= n; }, limit);
}
/// Waits (bounded) for a condition another thread makes true.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// join() with a bound: a group that does not stop is a hang, so it aborts the run.
template <class Group>
void join_within(Group& g, std::chrono::milliseconds limit = 5000ms) {
  std::promise<void> done;
  auto f = done.get_future();
  std::thread watchdog([&, limit] {
    if (f.wait_for(limit) != std::future_status::ready) {
      std::fputs("threads_test: a server_group did not stop in time\n", stderr);
      std::abort();
    }
  });
  g.join();
  done.set_value();
  watchdog.join();
}

const std::string get = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// A server group of either engine's servers, as the engine-neutral bodies use it.
struct any_group {
  any_group() = default;
  any_group(const any_group&) = delete;
  any_group& operator=(const any_group&) = delete;
  virtual ~any_group() = default;
  virtual unsigned size() const = 0;
  virtual std::uint16_t port() const = 0;
  virtual bool stopping() const = 0;
  virtual void stop() = 0;
  virtual void join() = 0;
};
template <class Server>
struct group_of final : any_group {
  tether::basic_server_group<Server> group;
  explicit group_of(tether::group_options o) : group(o) {}
  unsigned size() const override { return group.size(); }
  std::uint16_t port() const override { return group.port(); }
  bool stopping() const override { return group.stopping(); }
  void stop() override { group.stop(); }
  void join() override { group.join(); }
};

/// A group of `engine`'s servers (default policies), not started.
std::unique_ptr<any_group> make_group(tt::engine_kind engine, tether::group_options o = {}) {
  return tt::with_engine(engine, [&]<class Engine>(std::type_identity<Engine>) -> std::unique_ptr<any_group> {
    return std::make_unique<group_of<tt::server_on<Engine>>>(o);
  });
}
/// A basic_server_group<Server>'s start(), with the setups that return nothing passed on
/// as a std::function of their arity: the group's start() and the thread code under it
/// are then compiled once per engine and arity, not once per setup lambda (several times
/// the code of the lambdas themselves).
template <class Server>
struct group_starter {
  tether::basic_server_group<Server>& group;

  template <class Setup>
  tether::result<std::uint16_t> start(tether::cstring_view address, std::uint16_t port, Setup setup) {
    if constexpr (std::is_invocable_v<Setup&, Server&, tether::event_loop&, unsigned>)
      return group.start(address, port, std::function<void(Server&, tether::event_loop&, unsigned)>(std::move(setup)));
    else
      return group.start(address, port, std::function<void(Server&)>(std::move(setup)));
  }
  /// Setups that listen themselves, or return what their loop keeps: as they are.
  template <class Setup>
  std::error_code start(Setup setup) {
    return group.start(std::move(setup));
  }
};

/// Calls `start(s)` with a group_starter of the basic_server_group<Server> that `g` (made
/// by make_group() on `engine`) is: what it passes to start() is instantiated per engine.
template <class Start>
auto start_on(tt::engine_kind engine, any_group& g, Start&& start) {
  return tt::with_engine(engine, [&]<class Engine>(std::type_identity<Engine>) {
    using server_type = tt::server_on<Engine>;
    group_starter<server_type> starter{static_cast<group_of<server_type>&>(g).group};
    return start(starter);
  });
}

}  // namespace

// ----- server groups ----------------------------------------------------------------

TT_ENGINES_TEST_CASE("server_group: every loop serves connections, each on its own thread", "[group]") {
  const auto mode = GENERATE(tether::accept_mode::balanced, tether::accept_mode::reuseport);
  INFO((mode == tether::accept_mode::balanced ? "balanced" : "reuseport"));
  constexpr unsigned loops = 4;
  constexpr int connections = 50;
  const auto group_ptr = make_group(engine, {.threads = loops, .accept = mode});
  any_group& group = *group_ptr;
  std::mutex mutex;
  std::map<unsigned, std::thread::id> setup_thread;
  std::atomic<int> wrong_thread{0};
  std::atomic<int> served[loops] = {};
  auto port = start_on(engine, group, [&](auto& g) {
    return g.start("127.0.0.1", 0, [&](auto& srv, tether::event_loop&, unsigned index) {
      {
        const std::lock_guard lock(mutex);
        setup_thread[index] = std::this_thread::get_id();
      }
      const std::thread::id mine = std::this_thread::get_id();
      srv.fallback([&, index, mine](auto& req) {
        if (std::this_thread::get_id() != mine) ++wrong_thread;
        ++served[index];
        (void)req.reply(200, "loop " + std::to_string(index) + "\n");
      });
    });
  });
  REQUIRE(port);
  CHECK(group.size() == loops);
  CHECK(group.port() == *port);
  {
    const std::lock_guard lock(mutex);
    REQUIRE(setup_thread.size() == loops);  // start() returns once every loop is set up
    for (auto& [i, id] : setup_thread) CHECK(id != std::this_thread::get_id());
  }

  std::vector<std::unique_ptr<tt::client>> cs;
  for (int i = 0; i < connections; ++i) cs.push_back(std::make_unique<tt::client>(*port));
  std::map<unsigned, int> connections_per_loop;
  for (auto& c : cs) {
    c->send(get);
    c->send(get);  // keep-alive: the second request comes back from the same loop
    REQUIRE(read_count(*c, "\r\n\r\nloop ", 2));
    const auto at = c->data().find("loop ");
    const unsigned index = static_cast<unsigned>(c->data()[at + 5] - '0');
    CHECK(count_of(c->data(), "loop " + std::to_string(index) + "\n") == 2);
    ++connections_per_loop[index];
  }
  CHECK(connections_per_loop.size() == loops);  // the kernel gave every loop some
  int total = 0;
  for (auto& n : served) total += n.load();
  CHECK(total == 2 * connections);
  CHECK(wrong_thread == 0);
  cs.clear();
  group.stop();
  join_within(group);
}

TT_ENGINES_TEST_CASE("server_group: stop() from another thread, from a handler, and before start", "[group]") {
  // Serves "ok" to every request.
  auto ok_setup = [](auto& srv) { srv.fallback([](auto& req) { (void)req.reply(200, "ok"); }); };
  SECTION("another thread, while clients are connected") {
    const auto group_ptr = make_group(engine, {.threads = 3});
    any_group& group = *group_ptr;
    auto port = start_on(engine, group, [&](auto& g) { return g.start("127.0.0.1", 0, ok_setup); });
    REQUIRE(port);
    tt::client idle(*port);
    idle.send(get);
    REQUIRE(read_for(idle, "ok"));
    std::thread stopper([&] { group.stop(); });
    join_within(group);
    stopper.join();
    CHECK(group.stopping());
    CHECK(read_until(idle, [&](const std::string&) { return idle.eof(); }));  // closed by the server
  }
  SECTION("a request handler on one loop stops them all") {
    const auto group_ptr = make_group(engine, {.threads = 2});
    any_group& group = *group_ptr;
    auto port = start_on(engine, group, [&](auto& g) {
      return g.start("127.0.0.1", 0, [&group](auto& srv) {
        (void)srv.route("/stop", [&group](auto& req) {
          (void)req.reply(200, "stopping");
          group.stop();
        });
      });
    });
    REQUIRE(port);
    tt::client c(*port);
    c.send("GET /stop HTTP/1.1\r\nHost: t\r\n\r\n");
    join_within(group);
    CHECK(read_for(c, "stopping"));
  }
  SECTION("stop before start, twice; destruction without start") {
    const auto group_ptr = make_group(engine, {.threads = 2});
    any_group& group = *group_ptr;
    group.stop();
    group.stop();
    auto port = start_on(engine, group, [&](auto& g) { return g.start("127.0.0.1", 0, ok_setup); });
    REQUIRE(port);  // sets up, then every loop returns at once
    join_within(group);
    const auto never_started = make_group(engine, {.threads = 2});
  }
}

TT_ENGINES_TEST_CASE("server_group: the close path runs per loop, on the loop's own thread", "[group][close]") {
  struct closed {
    unsigned loop;
    std::thread::id thread;
    tether::close_reason reason;
  };
  std::mutex mutex;
  std::vector<closed> closes;
  std::map<unsigned, std::thread::id> loop_thread;
  std::atomic<int> held{0};
  const std::size_t fds_before = tt::open_fds();
  std::uint16_t port = 0;
  {
    const auto group_ptr = make_group(engine, {.threads = 3});
    any_group& group = *group_ptr;
    auto bound = start_on(engine, group, [&](auto& g) {
      return g.start("127.0.0.1", 0, [&]<class Server>(Server& srv, tether::event_loop&, unsigned index) {
        {
          const std::lock_guard lock(mutex);
          loop_thread[index] = std::this_thread::get_id();
        }
        // A held request (the long-poll phase libevent alone never watches); its handle
        // lives in the route's state, on this loop's thread.
        auto handles = std::make_shared<std::vector<typename Server::request_handle>>();
        srv.fallback([&, index, handles](typename Server::request& req) {
          (void)req.connection().on_close([&, index](const tether::close_event& e) {
            const std::lock_guard lock(mutex);
            closes.push_back({index, std::this_thread::get_id(), e.reason});
          });
          handles->push_back(req.hold());
          ++held;
        });
      });
    });
    REQUIRE(bound);
    port = *bound;
    std::vector<std::unique_ptr<tt::client>> cs;
    for (int i = 0; i < 24; ++i) {
      cs.push_back(std::make_unique<tt::client>(port));
      cs.back()->send(get);
    }
    REQUIRE(eventually([&] { return held.load() == 24; }));
    for (int i = 0; i < 24; i += 4) cs[i]->reset();  // 6 vanish with RST
    REQUIRE(eventually([&] {
      const std::lock_guard lock(mutex);
      return closes.size() == 6;
    }));
    {
      const std::lock_guard lock(mutex);
      for (auto& c : closes) CHECK(c.reason == tether::close_reason::peer_reset);
    }
    group.stop();
    join_within(group);
    for (int i = 0; i < 24; ++i)
      if (i % 4 != 0) CHECK(read_until(*cs[i], [&](const std::string&) { return cs[i]->eof(); }));
  }
  const std::lock_guard lock(mutex);
  REQUIRE(closes.size() == 24);
  std::set<unsigned> loops_seen;
  for (auto& c : closes) {
    CHECK(c.thread == loop_thread[c.loop]);
    loops_seen.insert(c.loop);
  }
  CHECK(loops_seen.size() == 3);
  int shutdowns = 0;
  for (auto& c : closes) shutdowns += c.reason == tether::close_reason::server_shutdown;
  CHECK(shutdowns == 18);
  CHECK(tt::open_fds() == fds_before);
  CHECK(tt::close_wait_sockets(port) == 0);
}

TT_ENGINES_TEST_CASE("server_group: each loop's server applies its own idle timeout", "[group][close]") {
  std::mutex mutex;
  std::vector<std::pair<unsigned, tether::close_reason>> closes;
  std::atomic<int> answered{0};
  const auto group_ptr = make_group(engine, {.threads = 2});
  any_group& group = *group_ptr;
  auto port = start_on(engine, group, [&](auto& g) {
    return g.start("127.0.0.1", 0, [&](auto& srv, tether::event_loop&, unsigned index) {
      srv.set_timeout(100ms);  // set up once per loop, like every policy
      srv.fallback([&, index](auto& req) {
        (void)req.connection().on_close([&, index](const tether::close_event& e) {
          const std::lock_guard lock(mutex);
          closes.emplace_back(index, e.reason);
        });
        (void)req.reply(200, "ok");
        ++answered;
      });
    });
  });
  REQUIRE(port);
  std::vector<std::unique_ptr<tt::client>> cs;
  for (int i = 0; i < 20; ++i) {
    cs.push_back(std::make_unique<tt::client>(*port));
    cs.back()->send(get);
  }
  REQUIRE(eventually([&] { return answered.load() == 20; }));
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(eventually([&] {
    const std::lock_guard lock(mutex);
    return closes.size() == 20;
  }));
  CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
  const std::lock_guard lock(mutex);
  std::set<unsigned> loops_seen;
  for (auto& [loop, reason] : closes) {
    CHECK(reason == tether::close_reason::timeout);
    loops_seen.insert(loop);
  }
  CHECK(loops_seen.size() == 2);
}

TT_ENGINES_TEST_CASE("server_group: errors are reported and nothing is left running", "[group][errors]") {
  auto fallback = [](auto& srv) { srv.fallback([](auto& req) { (void)req.reply(200, "ok"); }); };
  const std::size_t fds_before = tt::open_fds();
  SECTION("a port another server holds") {
    tether::event_loop loop;
    tether::server other{loop};  // the holder's engine does not matter: the port is taken
    const auto taken = *other.bind("127.0.0.1", 0);
    const auto group = make_group(engine, {.threads = 2});
    auto port = start_on(engine, *group, [&](auto& g) { return g.start("127.0.0.1", taken, fallback); });
    REQUIRE_FALSE(port);
    CHECK(port.error() == std::errc::address_in_use);
  }
  SECTION("a port another server group holds (SO_REUSEPORT would let it join)") {
    const auto first = make_group(engine, {.threads = 2});
    auto port = start_on(engine, *first, [&](auto& g) { return g.start("127.0.0.1", 0, fallback); });
    REQUIRE(port);
    const auto second = make_group(engine, {.threads = 2});
    auto again = start_on(engine, *second, [&](auto& g) { return g.start("127.0.0.1", *port, fallback); });
    REQUIRE_FALSE(again);
    CHECK(again.error() == std::errc::address_in_use);
  }
  SECTION("an address that is not an address") {
    const auto group = make_group(engine, {.threads = 2});
    auto port = start_on(engine, *group, [&](auto& g) { return g.start("localhost", 0, fallback); });
    REQUIRE_FALSE(port);
    CHECK(port.error() == tether::errc::invalid_address);
  }
  SECTION("a setup that throws on one loop: rethrown, every thread gone") {
    const auto group = make_group(engine, {.threads = 3});
    CHECK_THROWS_WITH(start_on(engine, *group,
                               [](auto& g) {
                                 return g.start("127.0.0.1", 0, [](auto&, tether::event_loop&, unsigned index) {
                                   if (index == 1) throw std::runtime_error("loop 1 cannot start");
                                 });
                               }),
                      "loop 1 cannot start");
    join_within(*group);
  }
  SECTION("a setup that returns an error") {
    const auto group = make_group(engine, {.threads = 2});
    auto ec = start_on(engine, *group, [](auto& g) {
      return g.start([](auto& srv) -> std::error_code {
        return srv.route("/x", [](auto& req) { (void)req.reply(200); }) ? std::error_code{}
                                                                         : make_error_code(tether::errc::invalid_argument);
      });
    });
    CHECK(ec == tether::errc::invalid_argument);
    join_within(*group);
  }
  SECTION("a setup that returns a route's route_error: it fails start() as an error_code does") {
    const auto group = make_group(engine, {.threads = 2});
    auto ec = start_on(engine, *group, [](auto& g) {
      return g.start([](auto& srv) {
        (void)srv.route("/x", [](auto& req) { (void)req.reply(200); });
        return srv.route("/x", [](auto& req) { (void)req.reply(200); });  // already routed
      });
    });
    CHECK(ec == tether::errc::invalid_argument);
    join_within(*group);
  }
  SECTION("a setup that returns a result<T>: an error fails start(), a value is the loop's state") {
    const auto failing = make_group(engine, {.threads = 2});
    auto ec = start_on(engine, *failing, [](auto& g) {
      return g.start([](auto&, tether::event_loop&, unsigned index) -> tether::result<std::unique_ptr<int>> {
        if (index == 1) return tether::errc::invalid_argument;
        return std::make_unique<int>(7);
      });
    });
    CHECK(ec == tether::errc::invalid_argument);
    join_within(*failing);

    auto kept = std::make_shared<int>(1);  // each loop's state holds a copy while it runs
    const auto group = make_group(engine, {.threads = 2});
    auto started = start_on(engine, *group, [&](auto& g) {
      return g.start([&kept](auto&) -> tether::result<std::shared_ptr<int>> { return kept; });
    });
    REQUIRE_FALSE(started);
    CHECK(kept.use_count() == 3);
    group->stop();
    join_within(*group);
    CHECK(kept.use_count() == 1);
  }
  SECTION("a group starts once") {
    const auto group = make_group(engine, {.threads = 1});
    REQUIRE(start_on(engine, *group, [&](auto& g) { return g.start("127.0.0.1", 0, fallback); }));
    auto again = start_on(engine, *group, [&](auto& g) { return g.start("127.0.0.1", 0, fallback); });
    CHECK(again.error() == tether::errc::invalid_argument);
  }
  SECTION("threads = 0: one loop per core") {
    const auto group = make_group(engine);
    CHECK(group->size() == std::max(1u, std::thread::hardware_concurrency()));
  }
  CHECK(tt::open_fds() == fds_before);
}

// One engine: what is checked is the groups' own code, under ThreadSanitizer.
TEST_CASE("server_group: also_drain passes a drain on to another group, from a loop's thread", "[group][drain]") {
  tether::server_group first{{.threads = 2}};
  tether::server_group second{{.threads = 2}};
  REQUIRE_FALSE(first.also_drain(second));
  REQUIRE_FALSE(second.also_drain(first));  // a cycle: each passes the deadline on once
  auto port = first.start("127.0.0.1", 0, std::function<void(tether::server&)>([&first](tether::server& srv) {
    srv.fallback([&first](tether::request& req) {
      (void)req.reply(200, "bye\n");
      first.drain(std::chrono::seconds(2));  // on this loop's thread
    });
  }));
  REQUIRE(port);
  REQUIRE(second.start("127.0.0.1", 0, std::function<void(tether::server&)>([](tether::server& srv) {
    srv.fallback([](tether::request& req) { (void)req.reply(200, "hi\n"); });
  })));
  tt::client c(*port);
  c.send(get);
  REQUIRE(read_count(c, "bye\n", 1));
  c.close();  // a client that is done: the drain closes the idle connection without waiting
  join_within(first);
  join_within(second);  // drained by first's drain, not stopped
  CHECK(first.draining());
  CHECK(second.draining());
  CHECK_FALSE(second.stopping());
}

// Both engines' servers have the hooks balanced accepts need (a server type without them
// would get SO_REUSEPORT sockets).
static_assert(tether::detail::group_access::can_balance<tether::server>);
static_assert(tether::detail::group_access::can_balance<tether::lean_server>);

TEMPLATE_TEST_CASE("server_group: balanced accepts keep the loops within two connections of each other",
                   "[group][balance]", TT_ENGINE_SERVERS) {
  using Server = TestType;
  for (unsigned loops : {2u, 4u}) {
    INFO(loops << " loops");
    tether::basic_server_group<Server> group{{.threads = loops}};  // accept_mode::balanced, the default
    auto port = group.start("127.0.0.1", 0, [](Server& srv, tether::event_loop&, unsigned index) {
      srv.fallback([index](auto& req) { (void)req.reply(200, std::to_string(index)); });
    });
    REQUIRE(port);
    for (int trial = 0; trial < 10; ++trial) {
      INFO("trial " << trial);
      // 50 connections as fast as connect() returns: they wait in the one listen queue
      // while the loops accept them in bursts.
      std::vector<int> per(loops, 0);
      std::vector<std::unique_ptr<tt::client>> cs;
      for (int i = 0; i < 50; ++i) cs.push_back(std::make_unique<tt::client>(*port));
      for (auto& c : cs) {
        c->send(get);
        REQUIRE(read_until(*c, [](const std::string& d) {
          const auto eoh = d.find("\r\n\r\n");
          return eoh != std::string::npos && d.size() > eoh + 4;
        }));
        ++per[static_cast<unsigned>(c->data().back() - '0')];
      }
      CHECK(*std::max_element(per.begin(), per.end()) - *std::min_element(per.begin(), per.end()) <= 2);
      cs.clear();
      // The next trial starts once every loop has closed its side (counts back to zero).
      REQUIRE(eventually([&] { return tt::tcp_sockets(*port, "01") == 0 && tt::close_wait_sockets(*port) == 0; }));
    }
    group.stop();
    join_within(group);
  }
}

TEMPLATE_TEST_CASE("server_group: balanced accepts resume a held loop once the others caught up", "[group][balance]",
                   TT_ENGINE_SERVERS) {
  using Server = TestType;
  tether::basic_server_group<Server> group{{.threads = 2}};
  auto port = group.start("127.0.0.1", 0, [](Server& srv, tether::event_loop&, unsigned index) {
    srv.fallback([index](auto& req) { (void)req.reply(200, std::to_string(index)); });
  });
  REQUIRE(port);
  // One at a time, each answered before the next connects: whichever loop got ahead by
  // two holds, so the other gets the next one, and the first accepts again after it.
  std::vector<std::unique_ptr<tt::client>> cs;
  std::vector<int> per(2, 0);
  for (int i = 0; i < 20; ++i) {
    cs.push_back(std::make_unique<tt::client>(*port));
    cs.back()->send(get);
    REQUIRE(read_until(*cs.back(), [](const std::string& d) {
      const auto eoh = d.find("\r\n\r\n");
      return eoh != std::string::npos && d.size() > eoh + 4;
    }));
    ++per[static_cast<unsigned>(cs.back()->data().back() - '0')];
    CHECK(std::abs(per[0] - per[1]) <= 2);
  }
  // Closing every connection of the loop that has more leaves the other ahead: the
  // emptied loop must take the next ones.
  const unsigned emptied = per[0] >= per[1] ? 0u : 1u;
  std::vector<std::unique_ptr<tt::client>> kept;
  for (auto& c : cs)
    if (static_cast<unsigned>(c->data().back() - '0') != emptied) kept.push_back(std::move(c));
  cs.clear();
  REQUIRE(eventually([&] { return tt::tcp_sockets(*port, "01") == kept.size() && tt::close_wait_sockets(*port) == 0; }));
  // The other loop learns that it must hold from an eventfd the emptied loop signalled
  // when it counted its closes: a connection racing that wake-up may still reach it, and
  // its own count then holds it at once. So at most one of three goes there.
  int to_emptied = 0;
  for (int i = 0; i < 3; ++i) {
    tt::client c(*port);
    c.send(get);
    REQUIRE(read_until(c, [](const std::string& d) {
      const auto eoh = d.find("\r\n\r\n");
      return eoh != std::string::npos && d.size() > eoh + 4;
    }));
    if (static_cast<unsigned>(c.data().back() - '0') == emptied) ++to_emptied;
  }
  CHECK(to_emptied >= 2);
  kept.clear();
  group.stop();
  join_within(group);
}

// A measurement, hidden ([.]) and asserting nothing: how the kernel's SO_REUSEPORT hash
// spreads connections, which no engine takes part in; so it runs on evhttp only.
TEST_CASE("server_group: how SO_REUSEPORT spreads 50 keep-alive connections (measurement)", "[.][measure]") {
  for (unsigned loops : {2u, 4u}) {
    tether::server_group group{{.threads = loops, .accept = tether::accept_mode::reuseport}};
    auto port = group.start("127.0.0.1", 0, [](tether::server& srv, tether::event_loop&, unsigned index) {
      srv.fallback([index](tether::request& req) { (void)req.reply(200, std::to_string(index)); });
    });
    REQUIRE(port);
    constexpr int trials = 200;
    constexpr int connections = 50;
    int min_share = connections, max_share = 0, below_40 = 0;
    for (int t = 0; t < trials; ++t) {
      std::vector<int> per(loops, 0);
      std::vector<std::unique_ptr<tt::client>> cs;
      for (int i = 0; i < connections; ++i) {
        cs.push_back(std::make_unique<tt::client>(*port));
        cs.back()->send(get);
      }
      for (auto& c : cs) {
        REQUIRE(read_for(*c, "\r\n\r\n"));
        REQUIRE(read_until(*c, [](const std::string& d) { return d.size() > d.find("\r\n\r\n") + 4; }));
        ++per[static_cast<unsigned>(c->data().back() - '0')];
      }
      for (int n : per) {
        min_share = std::min(min_share, n);
        max_share = std::max(max_share, n);
        if (loops == 2 && n * 10 < connections * 4) ++below_40;
      }
    }
    std::printf("%u loops, %d trials of %d connections: per-loop connections min %d, max %d (fair: %d)", loops, trials,
                connections, min_share, max_share, connections / static_cast<int>(loops));
    if (loops == 2) std::printf("; trials with a loop below 40 %%: %d", below_40);
    std::printf("\n");
  }
}

// ----- the broker across loops --------------------------------------------------------

namespace {

/// The body of a chunked reply, chunk framing removed (as far as it has arrived).
std::string dechunk(const std::string& reply) {
  std::string body;
  auto p = reply.find("\r\n\r\n");
  if (p == std::string::npos) return body;
  for (p += 4; p < reply.size();) {
    const auto eol = reply.find("\r\n", p);
    if (eol == std::string::npos) break;
    const auto n = std::stoul(reply.substr(p, eol - p), nullptr, 16);
    if (n == 0 || eol + 2 + n > reply.size()) break;
    body += reply.substr(eol + 2, n);
    p = eol + 2 + n + 2;
  }
  return body;
}

struct frame {
  std::uint64_t id = 0;
  std::string data;
};
/// The complete SSE events in a chunked reply.
std::vector<frame> frames(const std::string& reply) {
  std::vector<frame> out;
  const std::string body = dechunk(reply);
  for (std::size_t p = 0;;) {
    const auto end = body.find("\n\n", p);
    if (end == std::string::npos) break;
    frame f;
    for (std::size_t q = p; q < end;) {
      const auto eol = body.find('\n', q);
      const std::string line = body.substr(q, std::min(eol, end) - q);
      if (line.rfind("id: ", 0) == 0) f.id = std::stoull(line.substr(4));
      else if (line.rfind("data: ", 0) == 0) f.data = line.substr(6);
      q = std::min(eol, end) + 1;
    }
    out.push_back(std::move(f));
    p = end + 2;
  }
  return out;
}

/// One loop of a group in these tests: its own port (so a test picks the loop a client
/// lands on), a broker endpoint, and what its threads saw.
struct loop_record {
  std::uint16_t port = 0;
  std::thread::id thread;
};
struct left_record {
  unsigned loop;
  std::thread::id thread;
  std::string channel;
  std::size_t total;
};

struct broker_fixture {
  tether::broker broker;
  std::mutex mutex;
  std::vector<loop_record> loops;
  std::vector<left_record> left;
  std::unique_ptr<any_group> group;

  broker_fixture(tt::engine_kind engine, unsigned n, tether::broker_options options,
                 tether::endpoint_options endpoint_options = {})
      : broker(options), loops(n), group(make_group(engine, {.threads = n})) {
    auto ec = start_on(engine, *group, [&](auto& g) {
      return g.start([this, endpoint_options]<class Server>(Server& srv, tether::event_loop& loop, unsigned index) {
        auto endpoint = std::make_unique<typename Server::broker_endpoint>(broker, loop, endpoint_options);
        endpoint->on_leave([this, index](std::string_view ch, std::size_t total) {
          const std::lock_guard lock(mutex);
          left.push_back({index, std::this_thread::get_id(), std::string(ch), total});
        });
        auto* e = endpoint.get();
        using request = typename Server::request;
        (void)srv.route("/a", [e](request& req) { (void)e->subscribe(req, "a"); });
        (void)srv.route("/b", [e](request& req) { (void)e->subscribe(req, "b"); });
        (void)srv.route("/ab", [e](request& req) { (void)e->subscribe(req, {"a", "b"}); });
        (void)srv.route("/poll", [e](request& req) {
          (void)e->poll(req, "c", tether::parse_message_id(tether::sse::last_event_id(req).value_or("")));
        });
        const auto port = srv.bind("127.0.0.1", 0);
        const std::lock_guard lock(mutex);
        loops[index] = {port ? *port : std::uint16_t{0}, std::this_thread::get_id()};
        return endpoint;  // lives as long as the loop, destroyed on its thread before the server
      });
    });
    if (ec) throw std::system_error(ec);
  }
  ~broker_fixture() {
    group->stop();
    join_within(*group);
  }
  std::uint16_t port(unsigned loop) {
    const std::lock_guard lock(mutex);
    return loops[loop].port;
  }
};

std::string get_path(std::string_view path, std::string_view last = {}) {
  std::string r = "GET " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n";
  if (!last.empty()) r += "Last-Event-ID: " + std::string(last) + "\r\n";
  return r + "\r\n";
}

}  // namespace

TT_ENGINES_TEST_CASE("broker across loops: publisher threads, subscribers on every loop, each gets every message once and in order",
                     "[broker][threads]") {
  constexpr unsigned loops = 3;
  constexpr int publishers = 4;
  constexpr int per_publisher = 150;  // alternately on a and b
  broker_fixture fx{engine, loops, {.history = 16}};
  struct sub {
    std::unique_ptr<tt::client> c;
    bool a, b;
    unsigned loop;
  };
  std::vector<sub> subs;
  for (unsigned l = 0; l < loops; ++l) {
    for (auto [path, a, b] : {std::tuple{"/a", true, false}, {"/b", false, true}, {"/ab", true, true}}) {
      subs.push_back({std::make_unique<tt::client>(fx.port(l)), a, b, l});
      subs.back().c->send(get_path(path));
    }
  }
  REQUIRE(eventually([&] { return fx.broker.subscribers("a") == 2 * loops && fx.broker.subscribers("b") == 2 * loops; }));

  std::vector<std::thread> threads;
  std::atomic<int> publish_errors{0};
  for (int p = 0; p < publishers; ++p) {
    threads.emplace_back([&, p] {  // no loop on these threads
      for (int i = 0; i < per_publisher; ++i) {
        const char* ch = i % 2 ? "b" : "a";
        if (!fx.broker.publish(ch, "p" + std::to_string(p) + ":" + std::to_string(i) + ":" + ch)) ++publish_errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(publish_errors == 0);
  CHECK(fx.broker.last_id() == publishers * per_publisher);

  std::map<std::string, std::uint64_t> id_of;  // one id per message, whichever loop delivered it
  for (auto& s : subs) {
    const std::size_t expected = (s.a ? publishers * per_publisher / 2 : 0) + (s.b ? publishers * per_publisher / 2 : 0);
    REQUIRE(read_until(*s.c, [&](const std::string& d) { return frames(d).size() >= expected; }, 5000ms));
    const auto got = frames(s.c->data());
    CHECK(got.size() == expected);
    std::uint64_t last_id = 0;
    std::map<int, int> next_seq;  // per publisher: the next sequence number this subscriber must see
    for (auto& f : got) {
      CHECK(f.id > last_id);  // in id order
      last_id = f.id;
      const int p = std::stoi(f.data.substr(1));
      const int seq = std::stoi(f.data.substr(f.data.find(':') + 1));
      const bool on_a = f.data.back() == 'a';
      CHECK((on_a ? s.a : s.b));
      int& want = next_seq[p];
      while (want < per_publisher && !((want % 2 ? s.b : s.a))) ++want;  // skip the other channel's
      CHECK(seq == want);  // per publisher: in order, nothing missing
      want = seq + 1;
      auto [it, fresh] = id_of.emplace(f.data, f.id);
      if (!fresh) CHECK(it->second == f.id);
    }
  }
  CHECK(id_of.size() == publishers * per_publisher);

  // Leave notifications and counts across loops: the {a, b} subscriber of loop 2 vanishes.
  subs[3 * 2 + 2].c->reset();
  REQUIRE(eventually([&] { return fx.broker.subscribers("a") == 5 && fx.broker.subscribers("b") == 5; }));
  REQUIRE(eventually([&] {
    const std::lock_guard lock(fx.mutex);
    return fx.left.size() == 2;
  }));
  const std::lock_guard lock(fx.mutex);
  std::set<std::string> channels;
  for (auto& l : fx.left) {
    CHECK(l.loop == 2);
    CHECK(l.thread == fx.loops[2].thread);
    channels.insert(l.channel);
  }
  CHECK(channels == std::set<std::string>{"a", "b"});
  CHECK(fx.left.back().total == 5);
}

TT_ENGINES_TEST_CASE("broker across loops: long-polls on every loop are answered once per message and resume from their id",
                     "[broker][threads][long_poll]") {
  constexpr unsigned loops = 3;
  broker_fixture fx{engine, loops, {.history = 8}, {.poll_timeout = 5000ms}};
  std::vector<std::unique_ptr<tt::client>> cs;
  for (unsigned l = 0; l < loops; ++l)
    for (int i = 0; i < 2; ++i) {
      cs.push_back(std::make_unique<tt::client>(fx.port(l)));
      cs.back()->send(get_path("/poll"));
    }
  REQUIRE(eventually([&] { return fx.broker.subscribers("c") == 2 * loops; }));
  std::thread([&] { (void)fx.broker.publish("c", "first"); }).join();
  for (auto& c : cs) {
    REQUIRE(read_for(*c, "\r\n\r\nfirst"));
    CHECK(c->data().find("Event-Id: 1\r\n") != std::string::npos);
  }
  REQUIRE(eventually([&] { return fx.broker.subscribers("c") == 0; }));
  std::thread([&] {  // while nobody polls
    for (int i = 2; i <= 4; ++i) (void)fx.broker.publish("c", "m" + std::to_string(i));
  }).join();
  for (auto& c : cs) {
    for (int i = 2; i <= 4; ++i) {
      c->clear();
      c->send(get_path("/poll", std::to_string(i - 1)));
      REQUIRE(read_for(*c, "\r\n\r\nm" + std::to_string(i)));
      CHECK(c->data().find("Event-Id: " + std::to_string(i) + "\r\n") != std::string::npos);
    }
    c->clear();
    c->send(get_path("/poll", "4"));
  }
  REQUIRE(eventually([&] { return fx.broker.subscribers("c") == 2 * loops; }));
  std::thread([&] { (void)fx.broker.publish("c", "last"); }).join();
  for (auto& c : cs) {
    REQUIRE(read_for(*c, "\r\n\r\nlast"));
    CHECK(c->data().find("Event-Id: 5\r\n") != std::string::npos);
  }
}

TT_ENGINES_TEST_CASE("broker across loops: an SSE client resumes on another loop from its Last-Event-ID", "[broker][threads][sse]") {
  broker_fixture fx{engine, 3, {.history = 8}};
  auto first = std::make_unique<tt::client>(fx.port(0));
  first->send(get_path("/a"));
  REQUIRE(eventually([&] { return fx.broker.subscribers("a") == 1; }));
  for (const char* m : {"one", "two", "three"}) (void)fx.broker.publish("a", m);
  REQUIRE(read_until(*first, [](const std::string& d) { return frames(d).size() == 3; }));
  first->reset();
  REQUIRE(eventually([&] { return fx.broker.subscribers("a") == 0; }));
  std::thread([&] {
    (void)fx.broker.publish("a", "four");
    (void)fx.broker.publish("a", "five");
  }).join();
  tt::client again(fx.port(2));
  again.send(get_path("/a", "3"));
  REQUIRE(eventually([&] { return fx.broker.subscribers("a") == 1; }));
  (void)fx.broker.publish("a", "six");
  REQUIRE(read_until(again, [](const std::string& d) { return frames(d).size() >= 3; }));
  const auto got = frames(again.data());
  REQUIRE(got.size() == 3);
  CHECK(got[0].id == 4);
  CHECK(got[0].data == "four");
  CHECK(got[1].data == "five");
  CHECK(got[2].id == 6);
  CHECK(got[2].data == "six");
}

TT_ENGINES_TEST_CASE("broker across loops: a channel's cap counts subscribers on every loop", "[broker][threads][cap]") {
  broker_fixture fx{engine, 3, {.max_subscribers = 4}};
  std::vector<std::unique_ptr<tt::client>> cs;
  for (unsigned l : {0u, 0u, 1u, 1u}) {
    cs.push_back(std::make_unique<tt::client>(fx.port(l)));
    cs.back()->send(get_path("/a"));
  }
  REQUIRE(eventually([&] { return fx.broker.subscribers("a") == 4; }));
  tt::client refused(fx.port(2));
  refused.send(get_path("/a"));
  REQUIRE(read_for(refused, "\r\n\r\n"));
  CHECK(refused.data().rfind("HTTP/1.1 503 Channel full", 0) == 0);
  cs[0]->reset();
  REQUIRE(eventually([&] { return fx.broker.subscribers("a") == 3; }));
  tt::client admitted(fx.port(2));
  admitted.send(get_path("/a"));
  REQUIRE(eventually([&] { return fx.broker.subscribers("a") == 4; }));
  (void)fx.broker.publish("a", "hello");
  CHECK(read_for(admitted, "data: hello\n\n"));
}

// No server: a loop and threads only, the same whatever engine would serve.
TEST_CASE("wakeup: triggers from other threads run the callback on the loop's thread, coalesced", "[wakeup]") {
  tether::event_loop loop;
  std::mutex mutex;
  std::vector<int> queue;  // what the other threads hand over
  std::vector<int> taken;
  int calls = 0;
  const auto loop_thread = std::this_thread::get_id();
  bool wrong_thread = false;
  tether::wakeup drain{loop, [&] {
    ++calls;
    wrong_thread |= std::this_thread::get_id() != loop_thread;
    const std::lock_guard lock(mutex);
    taken.insert(taken.end(), queue.begin(), queue.end());
    queue.clear();
  }};
  constexpr int threads = 4, each = 500;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        {
          const std::lock_guard lock(mutex);
          queue.push_back(t * each + i);
        }
        drain.trigger();
      }
    });
  for (auto& t : ts) t.join();
  REQUIRE(tt::run_until(loop, [&] {
    const std::lock_guard lock(mutex);
    return taken.size() == threads * each;
  }));
  CHECK_FALSE(wrong_thread);
  CHECK(calls >= 1);
  CHECK(calls < threads * each);  // coalesced: far fewer wake-ups than triggers
  std::set<int> distinct(taken.begin(), taken.end());
  CHECK(distinct.size() == threads * each);
  const int before = calls;
  tt::run_for(loop, 20ms);
  CHECK(calls == before);  // no trigger, no call
}
