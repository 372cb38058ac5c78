// Held requests and handles: stray and pipelined bytes, floods, timeouts, shutdown,
// abandoned requests, exceptions, and the errors a handle reports.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using tether::close_reason;

namespace {

using tt::recorded_close;

template <class Server = tether::server>
struct fixture {
  // Declared before the server: destroying the server runs close callbacks that use them.
  std::vector<recorded_close> closes;
  int handled = 0;
  tether::event_loop loop;
  std::optional<Server> srv{std::in_place, loop};
  typename Server::request_handle held;

  auto recorder() {
    return [this](const tether::close_event& e) { closes.push_back({e.reason, e.aborted}); };
  }
  std::uint16_t bind() { return *srv->bind("127.0.0.1", 0); }
};

constexpr const char* hold_request = "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n";

}  // namespace

TEMPLATE_TEST_CASE("held request: a stray CRLF neither crashes the server nor loses the late reply", "[held][stray]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  (void)f.srv->route("/hold", [&](auto& req) {
    ++f.handled;
    (void)req.connection().on_close(f.recorder());
    f.held = req.hold();
  });
  const auto port = f.bind();
  tt::client c(port);
  c.send(hold_request);
  REQUIRE(tt::run_until(f.loop, [&] { return f.handled == 1; }));
  c.send("\r\n");  // stock evhttp + the PECL recipe exits here: "illegal connection state 7"
  tt::run_for(f.loop, 30ms);
  REQUIRE(f.closes.empty());
  REQUIRE_FALSE(f.held.reply(200, "late"));
  REQUIRE(c.wait_for(f.loop, "late"));
  CHECK(c.data().rfind("HTTP/1.1 200 OK", 0) == 0);
}

TEMPLATE_TEST_CASE("held request: a request pipelined behind a held one is served after it, in order", "[held][pipeline]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  (void)f.srv->route("/hold", [&](auto& req) {
    ++f.handled;
    f.held = req.hold();
  });
  (void)f.srv->route("/fast", [&](auto& req) {
    ++f.handled;
    (void)req.reply(200, "second");
  });
  const auto port = f.bind();
  tt::client c(port);
  c.send(hold_request);
  REQUIRE(tt::run_until(f.loop, [&] { return f.handled == 1; }));
  c.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");  // arrives while /hold is held
  tt::run_for(f.loop, 30ms);
  CHECK(f.handled == 1);  // evhttp serves one request at a time per connection
  REQUIRE_FALSE(f.held.reply(200, "first"));
  REQUIRE(c.wait_for(f.loop, "second"));
  CHECK(f.handled == 2);
  CHECK(c.data().find("first") < c.data().find("second"));
}

TEMPLATE_TEST_CASE("held request: a client that floods while held is cut off at the policy's limit", "[held][flood]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  using small_limit = tether::basic_server<tether::eager_close<4096>, tether::copy_buffer, tether::close_function<>,
                                           typename TestType::engine_type>;
  fixture<small_limit> f;
  (void)f.srv->route("/hold", [&](auto& req) {
    ++f.handled;
    (void)req.connection().on_close(f.recorder());
    f.held = req.hold();
  });
  const auto port = f.bind();
  tt::client c(port);
  c.send(hold_request);
  REQUIRE(tt::run_until(f.loop, [&] { return f.handled == 1; }));
  c.send(std::string(64 * 1024, 'x'));
  REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
  CHECK(f.closes[0].reason == close_reason::limit_exceeded);
  CHECK(f.closes[0].aborted);
  CHECK(f.held.reply(200) == tether::errc::peer_gone);
  CHECK(c.wait_eof(f.loop));
}

TEMPLATE_TEST_CASE("held request: the server timeout does not cut a long-poll, but cuts the idle connection after it",
          "[held][timeout]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  f.srv->set_timeout(200ms);
  (void)f.srv->route("/hold", [&](auto& req) {
    ++f.handled;
    (void)req.connection().on_close(f.recorder());
    f.held = req.hold();
  });
  const auto port = f.bind();
  tt::client c(port);
  c.send(hold_request);
  REQUIRE(tt::run_until(f.loop, [&] { return f.handled == 1; }));
  tt::run_for(f.loop, 500ms);  // 2.5 timeouts; the client is alive and waiting
  REQUIRE(f.closes.empty());
  REQUIRE_FALSE(f.held.reply(200, "after-the-wait"));
  REQUIRE(c.wait_for(f.loop, "after-the-wait"));
  REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }, 2000ms));
  CHECK(f.closes[0].reason == close_reason::timeout);
  CHECK_FALSE(f.closes[0].aborted);
}

TEMPLATE_TEST_CASE("native_close: evhttp's held request is blind to a hang-up until the application writes; the lean "
                   "engine sees it at once",
                   "[held][native]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  using native = tt::server_on<TestType, tether::copy_buffer, tether::native_close>;
  fixture<native> f;
  (void)f.srv->route("/hold", [&](typename native::request& req) {
    ++f.handled;
    (void)req.connection().on_close(f.recorder());
    f.held = req.hold();
  });
  const auto port = f.bind();
  tt::client c(port);
  c.send(hold_request);
  REQUIRE(tt::run_until(f.loop, [&] { return f.handled == 1; }));
  c.close();
  if constexpr (tether::is_lean_engine<TestType>) {
    // The lean engine reads in every phase whatever the close policy (docs/engine.md).
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }, 100ms));
    CHECK(f.closes[0].reason == close_reason::peer_closed);
    CHECK(f.closes[0].aborted);
    CHECK(f.held.reply(200, "too-late") == tether::errc::peer_gone);
  } else {
    tt::run_for(f.loop, 100ms);
    CHECK(f.closes.empty());                     // libevent's blind spot ...
    CHECK(tt::close_wait_sockets(port) == 1);    // ... and its CLOSE_WAIT socket
    (void)f.held.reply(200, "too-late");
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
  }
  CHECK(tt::close_wait_sockets(port) == 0);
}

TEMPLATE_TEST_CASE("server shutdown: open connections get server_shutdown and handles outlive the server",
          "[held][shutdown]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  (void)f.srv->route("/hold", [&](auto& req) {
    ++f.handled;
    (void)req.connection().on_close(f.recorder());
    f.held = req.hold();
  });
  const auto port = f.bind();
  tt::client c(port);
  c.send(hold_request);
  REQUIRE(tt::run_until(f.loop, [&] { return f.handled == 1; }));
  f.srv.reset();
  REQUIRE(f.closes.size() == 1);
  CHECK(f.closes[0].reason == close_reason::server_shutdown);
  CHECK(f.closes[0].aborted);
  CHECK(f.held.peer_gone());
  CHECK(f.held.reply(200) == tether::errc::peer_gone);
  CHECK(c.wait_eof(f.loop));
  f.held.reset();  // frees the orphaned state (ASan/valgrind check this)
}

TEMPLATE_TEST_CASE("handles: a handle to an earlier request on a keep-alive connection reports reply_finished",
          "[handle]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  std::vector<typename TestType::request_handle> handles;
  (void)f.srv->route("/once", [&](auto& req) {
    ++f.handled;
    handles.push_back(req.hold());
    (void)handles.back().reply(200, "reply-" + std::to_string(f.handled));
  });
  const auto port = f.bind();
  tt::client c(port);
  c.send("GET /once HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(f.loop, "reply-1"));
  c.send("GET /once HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(f.loop, "reply-2"));
  CHECK(handles[0].reply(200) == tether::errc::reply_finished);
  CHECK(handles[1].reply(200) == tether::errc::reply_finished);
  CHECK_FALSE(handles[0].alive());
  CHECK(typename TestType::request_handle{}.reply(200) == tether::errc::empty_handle);
}

TEMPLATE_TEST_CASE("handles: the reply calls report misuse without touching libevent", "[handle]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  std::vector<std::error_code> results;
  (void)f.srv->route("/misuse", [&](auto& req) {
    results.push_back(req.send_chunk("x"));          // not started
    results.push_back(req.end());                    // not started
    results.push_back(req.reply(42));                // bad status
    results.push_back(req.output_headers().add("X-Bad", "a\r\nInjected: 1"));
    results.push_back(req.output_headers().add("Bad Name", "v"));
    results.push_back(req.start(200));
    results.push_back(req.reply(200));               // already streaming
    results.push_back(req.end());
    results.push_back(req.send_chunk("x"));          // finished
  });
  const auto port = f.bind();
  tt::client c(port);
  c.send("GET /misuse HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(f.loop, "0\r\n\r\n"));
  REQUIRE(results.size() == 9);
  CHECK(results[0] == tether::errc::reply_not_started);
  CHECK(results[1] == tether::errc::reply_not_started);
  CHECK(results[2] == tether::errc::invalid_argument);
  CHECK(results[3] == tether::errc::invalid_argument);
  CHECK(results[4] == tether::errc::invalid_argument);
  CHECK_FALSE(results[5]);
  CHECK(results[6] == tether::errc::reply_started);
  CHECK_FALSE(results[7]);
  CHECK(results[8] == tether::errc::reply_finished);
  CHECK(c.data().find("Injected") == std::string::npos);
}

TEMPLATE_TEST_CASE("abandoned requests: a handler that neither replies nor holds gets a 500 sent for it", "[abandon]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  (void)f.srv->route("/forgot", [&](auto&) { ++f.handled; });
  const auto port = f.bind();
  tt::client c(port);
  c.send("GET /forgot HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(f.loop, "</HTML>"));
  CHECK(c.data().rfind("HTTP/1.1 500", 0) == 0);
}

TEMPLATE_TEST_CASE("abandoned requests: dropping the last handle answers a held request and ends a stream",
          "[abandon][handle]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  typename TestType::request_handle stream;
  (void)f.srv->route("/hold", [&](auto& req) { f.held = req.hold(); });
  (void)f.srv->route("/stream", [&](auto& req) {
    (void)req.start(200);
    (void)req.send_chunk("part");
    stream = req.hold();
  });
  const auto port = f.bind();
  tt::client a(port), b(port);
  a.send(hold_request);
  b.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(b.wait_for(f.loop, "part"));
  REQUIRE(tt::run_until(f.loop, [&] { return bool(f.held); }));
  f.held.reset();
  stream.reset();
  CHECK(a.wait_for(f.loop, "HTTP/1.1 500"));
  CHECK(b.wait_for(f.loop, "0\r\n\r\n"));
}

TEMPLATE_TEST_CASE("exceptions: a throwing handler yields a 500, mid-stream it closes the connection", "[exceptions]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  (void)f.srv->route("/throw", [&](auto&) { throw std::runtime_error("handler failure"); });
  (void)f.srv->route("/throw-mid-stream", [&](auto& req) {
    (void)req.connection().on_close(f.recorder());
    (void)req.start(200);
    (void)req.send_chunk("partial");
    throw std::runtime_error("stream failure");
  });
  const auto port = f.bind();
  tt::client a(port), b(port);
  a.send("GET /throw HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(a.wait_for(f.loop, "HTTP/1.1 500"));
  b.send("GET /throw-mid-stream HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(b.wait_eof(f.loop));
  REQUIRE(f.closes.size() == 1);
  CHECK(f.closes[0].reason == close_reason::error);
  CHECK(f.closes[0].aborted);
}

TEMPLATE_TEST_CASE("close reasons: Connection: close, HTTP/1.0 streams and server-side close", "[close][reasons]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  typename TestType::request_handle h;
  (void)f.srv->route("/done", [&](auto& req) {
    (void)req.connection().on_close(f.recorder());
    (void)req.reply(200, "done");
  });
  (void)f.srv->route("/stream10", [&](auto& req) {
    (void)req.connection().on_close(f.recorder());
    (void)req.start(200);
    h = req.hold();
  });
  (void)f.srv->route("/kick", [&](auto& req) {
    (void)req.connection().on_close(f.recorder());
    h = req.hold();
  });
  const auto port = f.bind();

  SECTION("a reply to Connection: close ends with completed") {
    tt::client c(port);
    c.send("GET /done HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
    CHECK(f.closes[0].reason == close_reason::completed);
    CHECK_FALSE(f.closes[0].aborted);
    CHECK(c.wait_for(f.loop, "done"));
  }
  SECTION("ending an HTTP/1.0 stream closes inside end() and reports completed") {
    tt::client c(port);
    c.send("GET /stream10 HTTP/1.0\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return bool(h); }));
    REQUIRE_FALSE(h.send_chunk("body"));
    REQUIRE(c.wait_for(f.loop, "body"));
    REQUIRE_FALSE(h.end());
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
    CHECK(f.closes[0].reason == close_reason::completed);
    CHECK_FALSE(f.closes[0].aborted);
    CHECK(c.wait_eof(f.loop));
  }
  SECTION("close() through a handle ends with closed_by_server, synchronously") {
    tt::client c(port);
    c.send("GET /kick HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return bool(h); }));
    h.close();
    REQUIRE(f.closes.size() == 1);
    CHECK(f.closes[0].reason == close_reason::closed_by_server);
    CHECK(f.closes[0].aborted);
    CHECK(c.wait_eof(f.loop));
  }
}

TEMPLATE_TEST_CASE("close callbacks: a later on_close replaces the earlier one; state lives in the callback",
          "[close][callback]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  int first = 0;
  std::vector<int> ids;
  (void)f.srv->route("/a", [&](auto& req) {
    (void)req.connection().on_close([&first](const tether::close_event&) { ++first; });
    (void)req.reply(200, "a");
  });
  (void)f.srv->route("/b", [&](auto& req) {
    (void)req.connection().on_close([&ids, id = 42](const tether::close_event&) { ids.push_back(id); });
    (void)req.reply(200, "b");
  });
  const auto port = f.bind();
  tt::client c(port);
  c.send("GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(f.loop, "a"));
  c.send("GET /b HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(f.loop, "\r\n\r\nb"));
  c.reset();
  REQUIRE(tt::run_until(f.loop, [&] { return !ids.empty(); }));
  CHECK(first == 0);
  CHECK(ids == std::vector<int>{42});
}

TEMPLATE_TEST_CASE("exceptions: close callbacks, reply hooks and timers that throw are contained the same way",
                   "[exceptions]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  fixture<TestType> f;
  tether::reply_hook hook;
  int after = 0;
  int hook_ran = 0;
  int close_callback_ran = 0;
  hook.on_end([&](tether::close_reason, bool) {
    ++hook_ran;
    throw std::runtime_error("hook failure");
  });
  (void)f.srv->route("/hold", [&](auto& req) {
    (void)req.connection().on_close([&](const tether::close_event&) {
      ++close_callback_ran;
      throw std::runtime_error("close callback failure");
    });
    f.held = req.hold();
    REQUIRE_FALSE(f.held.attach(hook));
  });
  int ticks = 0;
  tether::timer t{f.loop, [&] {
    if (++ticks == 1) throw std::logic_error("timer failure");
  }};
  t.start_periodic(5ms);
  const auto port = f.bind();
  tt::client c(port);
  c.send(hold_request);
  REQUIRE(tt::run_until(f.loop, [&] { return bool(f.held) && ticks >= 3; }));  // the timer kept its schedule
  c.reset();
  REQUIRE(tt::run_until(f.loop, [&] { return f.held.peer_gone(); }));
  // Both throwing callbacks ran (once), and the exceptions went no further.
  CHECK(hook_ran == 1);
  CHECK(close_callback_ran == 1);
  CHECK(ticks >= 3);
  ++after;
  // The loop survived all three and still serves.
  (void)f.srv->route("/ok", [](auto& req) { (void)req.reply(200, "still-serving"); });
  tt::client d(port);
  d.send("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(d.wait_for(f.loop, "still-serving"));
  CHECK(after == 1);
}

TEST_CASE("held request: once its handler returned, only its Connection header is kept, the reply's headers stay, reads are small",
          "[held][memory]") {
  // A long-poll waits for minutes: the headers it came with (Cookie, User-Agent...) are
  // freed when its handler returns; Connection stays for the keep-alive decision, and the
  // headers the handler set for the reply stay until the reply is written.
  fixture f;
  evhttp_request* raw = nullptr;
  ev_ssize_t read_max_in_handler = 0;
  auto read_max = [&] { return bufferevent_get_max_single_read(evhttp_connection_get_bufferevent(evhttp_request_get_connection(raw))); };
  f.srv->fallback([&](tether::request& req) {
    raw = req.native();
    read_max_in_handler = read_max();
    (void)req.output_headers().add("X-Held", "yes");
    f.held = req.hold();
  });
  tt::client c(f.bind());
  const std::string heads = "Host: t\r\nUser-Agent: tether-test/1.0\r\nCookie: session=" + std::string(300, 'c') + "\r\n";
  auto names = [](evkeyvalq* h) {
    std::vector<std::string> out;
    for (const evkeyval* kv = h->tqh_first; kv; kv = kv->next.tqe_next) out.emplace_back(kv->key);
    return out;
  };
  for (const char* connection : {"", "Connection: close\r\n"}) {
    INFO(connection);
    c.clear();
    f.held = {};
    c.send("GET /hold HTTP/1.1\r\n" + heads + connection + "\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return bool(f.held); }));
    CHECK(names(evhttp_request_get_input_headers(raw)) ==
          (*connection ? std::vector<std::string>{"Connection"} : std::vector<std::string>{}));
    CHECK(names(evhttp_request_get_output_headers(raw)) == std::vector<std::string>{"X-Held"});
    CHECK(read_max_in_handler > 960);  // the default, also after the first (held) request
    CHECK(read_max() == 960);          // a hang-up is read into a 1 KiB chain, not 8 KiB
    REQUIRE_FALSE(f.held.reply(200, "late"));
    REQUIRE(c.wait_for(f.loop, "\r\n\r\nlate"));
    CHECK(c.data().find("X-Held: yes\r\n") != std::string::npos);
    if (*connection) {
      CHECK(c.wait_eof(f.loop));  // Connection: close still honoured
    } else {
      tt::run_for(f.loop, 50ms);
      CHECK_FALSE(c.eof());  // keep-alive: the loop goes round for the next request
    }
  }
}
