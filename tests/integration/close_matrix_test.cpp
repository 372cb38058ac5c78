// Every phase a connection can be in x every way a client can leave: the close callback
// runs exactly once with the right reason (and no second time, up to and through the
// server's destruction), nothing is left in CLOSE_WAIT, the server's descriptors return
// to baseline, and producers stop.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

enum class phase { held, streaming, idle };
// killed: the process dies having read everything (the kernel sends a FIN);
// killed_unread: it dies with the server's bytes unread (the kernel sends a RST).
enum class ending { rst, fin, half_close, killed, killed_unread };

const char* name(phase p) {
  switch (p) {
    case phase::held: return "held";
    case phase::streaming: return "streaming";
    case phase::idle: return "idle";
  }
  return "?";
}
const char* name(ending e) {
  switch (e) {
    case ending::rst: return "RST";
    case ending::fin: return "FIN";
    case ending::half_close: return "half-close";
    case ending::killed: return "killed process";
    case ending::killed_unread: return "killed process with unread data";
  }
  return "?";
}

using tt::recorded_close;

// One server with the three phases as routes, on either engine (issue 9).
template <class Server>
struct matrix_server {
  // Declared before the server: destroying the server runs close callbacks that use them.
  std::vector<recorded_close> closes;
  tether::event_loop loop;
  std::optional<Server> srv{std::in_place, loop};
  typename Server::request_handle held;
  typename Server::request_handle stream;
  int handlers_run = 0;
  int sends_after_close = 0;
  int producer_ticks = 0;
  tether::timer<std::function<void()>> producer{loop, [this] { tick(); }};
  std::uint16_t port = 0;

  matrix_server() {
    auto record = [this](const tether::close_event& e) { closes.push_back({e.reason, e.aborted}); };
    (void)srv->route("/hold", [this, record](auto& req) {
      ++handlers_run;
      (void)req.connection().on_close(record);
      held = req.hold();
    });
    (void)srv->route("/stream", [this, record](auto& req) {
      ++handlers_run;
      (void)req.connection().on_close(record);
      REQUIRE_FALSE(req.start(200));
      REQUIRE_FALSE(req.send_chunk("tick\n"));
      stream = req.hold();
      producer.start_periodic(100ms);
    });
    (void)srv->route("/fast", [this, record](auto& req) {
      ++handlers_run;
      (void)req.connection().on_close(record);
      REQUIRE_FALSE(req.reply(200, "fast-reply"));
    });
    port = *srv->bind("127.0.0.1", 0);
  }

  // The producer a streaming app would run: it learns from the handle that the client
  // is gone and stops itself.
  void tick() {
    ++producer_ticks;
    if (!stream.alive()) {
      producer.stop();
      return;
    }
    const auto ec = stream.send_chunk("tick\n");
    if (!closes.empty() && !ec) ++sends_after_close;
  }
};

constexpr const char* fast_request = "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n";

std::string request_for(phase p, ending e) {
  switch (p) {
    case phase::held:
      // A held request sends nothing: to die with unread bytes, the client has a reply
      // waiting, from a request pipelined before the held one.
      if (e == ending::killed_unread) return std::string(fast_request) + "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n";
      return "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n";
    case phase::streaming: return "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";
    case phase::idle: return fast_request;
  }
  return {};
}
std::string marker_for(phase p, ending e) {
  switch (p) {
    case phase::held: return e == ending::killed_unread ? "fast-reply" : "";
    case phase::streaming: return "tick";
    case phase::idle: return "fast-reply";
  }
  return {};
}

tether::close_reason expected_reason(ending e) {
  return e == ending::rst || e == ending::killed_unread ? tether::close_reason::peer_reset
                                                        : tether::close_reason::peer_closed;
}

template <class Server>
void run_case(phase p, ending e) {
  INFO("engine " << tt::engine_name<Server>() << ", phase " << name(p) << ", client ends with " << name(e));
  matrix_server<Server> s;
  const std::size_t fds_before = tt::open_fds();

  std::optional<tt::client> c;
  std::optional<tt::child_client> child;
  const int handlers = p == phase::held && e == ending::killed_unread ? 2 : 1;
  if (e == ending::killed || e == ending::killed_unread) {
    child.emplace(s.port, request_for(p, e), marker_for(p, e),
                  e == ending::killed ? tt::child_client::reading::drain : tt::child_client::reading::unread);
    REQUIRE(tt::run_until(s.loop, [&] { return s.handlers_run == handlers; }));
    REQUIRE(child->wait_ready(s.loop));
  } else {
    c.emplace(s.port);
    c->send(request_for(p, e));
    REQUIRE(tt::run_until(s.loop, [&] { return s.handlers_run == handlers; }));
    if (p != phase::held) REQUIRE(c->wait_for(s.loop, marker_for(p, e)));
  }
  REQUIRE(s.closes.empty());

  switch (e) {
    case ending::rst: c->reset(); break;
    case ending::fin: c->close(); break;
    case ending::half_close: c->half_close(); break;
    case ending::killed:
      if (p == phase::streaming) {
        // A tick the child has not read yet would turn the kill's FIN into a RST: pause
        // the producer until the child sleeps in recv with nothing unread, then let it
        // run again (it must find the stream gone and stop by itself).
        s.producer.stop();
        REQUIRE(child->wait_asleep(s.loop));
        child->kill();
        s.producer.start_periodic(100ms);
      } else {
        child->kill();
      }
      break;
    case ending::killed_unread: child->kill(); break;
  }

  REQUIRE(tt::run_until(s.loop, [&] { return !s.closes.empty(); }));
  tt::run_for(s.loop, 30ms);  // a second callback would show up here (stretched under valgrind)

  REQUIRE(s.closes.size() == 1);
  CHECK(s.closes[0].reason == expected_reason(e));
  CHECK(s.closes[0].aborted == (p != phase::idle));
  CHECK(s.srv->tracked_connections() == 0);

  if (p == phase::held) {
    CHECK_FALSE(s.held.alive());
    CHECK(s.held.peer_gone());
    CHECK(s.held.reply(200, "late") == tether::errc::peer_gone);
  }
  if (p == phase::streaming) {
    CHECK(s.stream.peer_gone());
    CHECK(s.stream.send_chunk("late") == tether::errc::peer_gone);
    // The producer notices on its next tick and stops; it never sent into the void.
    REQUIRE(tt::run_until(s.loop, [&] { return !s.producer.active(); }, 1000ms));
    CHECK(s.sends_after_close == 0);
  }

  if (e == ending::half_close) {
    CHECK(c->wait_eof(s.loop));  // the server closed its side too
  }
  c.reset();
  child.reset();
  CHECK(tt::close_wait_sockets(s.port) == 0);
  CHECK(tt::open_fds() == fds_before);

  // The server's teardown frees every connection it still knows: this one must not be
  // among them, nor be reported a second time.
  s.srv.reset();
  CHECK(s.closes.size() == 1);
}

}  // namespace

TEMPLATE_TEST_CASE("close matrix: a held request (long-poll) notices every kind of hang-up once", "[close][held]",
                   TT_ENGINE_SERVERS) {
  for (auto e : {ending::rst, ending::fin, ending::half_close, ending::killed, ending::killed_unread})
    run_case<TestType>(phase::held, e);
}

TEMPLATE_TEST_CASE("close matrix: a streaming reply notices every kind of hang-up once and its producer stops",
                   "[close][streaming]", TT_ENGINE_SERVERS) {
  for (auto e : {ending::rst, ending::fin, ending::half_close, ending::killed, ending::killed_unread})
    run_case<TestType>(phase::streaming, e);
}

TEMPLATE_TEST_CASE("close matrix: an idle keep-alive connection notices every kind of hang-up once", "[close][idle]",
                   TT_ENGINE_SERVERS) {
  for (auto e : {ending::rst, ending::fin, ending::half_close, ending::killed, ending::killed_unread})
    run_case<TestType>(phase::idle, e);
}

TEMPLATE_TEST_CASE("close matrix: repeated RST and FIN on held requests never double-fire or leak", "[close][held]",
                   TT_ENGINE_SERVERS) {
  for (int trial = 0; trial < 20; ++trial) run_case<TestType>(phase::held, trial % 2 ? ending::rst : ending::fin);
}
