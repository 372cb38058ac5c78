// The engine policy (issue 9): the same handlers, written once, served by the evhttp engine
// and by the lean engine (tether's own HTTP/1.1 core), over real sockets. Each
// TEMPLATE_TEST_CASE runs against both engines; the few that are lean-only say why.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using tt::recorded_close;

// One server with a few routes every test shares.
template <class Server>
struct engine_server {
  std::vector<recorded_close> closes;  // before the server: its destruction reports closes
  tether::event_loop loop;
  std::optional<Server> srv{std::in_place, loop};
  typename Server::request_handle held;
  std::vector<std::string> bodies;
  int handlers_run = 0;
  std::uint16_t port = 0;

  engine_server() {
    auto record = [this](const tether::close_event& e) { closes.push_back({e.reason, e.aborted}); };
    srv->fallback([this](auto& req) {
      ++handlers_run;
      (void)req.output_headers().add("Content-Type", "text/plain");
      (void)req.reply(200, std::string("path=") + std::string(req.path()));
    });
    (void)srv->route("/cb", [this, record](auto& req) {
      ++handlers_run;
      (void)req.connection().on_close(record);
      (void)req.reply(200, "cb-reply");
    });
    (void)srv->route("/hold", [this, record](auto& req) {
      ++handlers_run;
      (void)req.connection().on_close(record);
      held = req.hold();
    });
    (void)srv->route("/echo", [this](auto& req) {
      ++handlers_run;
      bodies.push_back(req.body().to_string());
      (void)req.reply(200, "got " + std::to_string(req.body().size()));
    });
    (void)srv->route("/header", [this](auto& req) {
      ++handlers_run;
      const auto v = req.input_headers().find("X-Probe");
      (void)req.reply(200, std::string("probe=") + std::string(v.value_or("none")));
    });
    (void)srv->route("/stream", [this](auto& req) {
      ++handlers_run;
      REQUIRE_FALSE(req.start(200));
      REQUIRE_FALSE(req.send_chunk("one,"));
      REQUIRE_FALSE(req.send_chunk("two,", "three"));
      REQUIRE_FALSE(req.end());
    });
    (void)srv->route("/get-only", tether::method::get, [this](auto& req) {
      ++handlers_run;
      (void)req.reply(200, "got");
    });
    port = *srv->bind("127.0.0.1", 0);
  }
};

constexpr const char* get_cb = "GET /cb HTTP/1.1\r\nHost: t\r\n\r\n";

}  // namespace

TEMPLATE_TEST_CASE("engine: replies on a keep-alive connection, one after another", "[engine][keepalive]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  tt::client c(s.port);
  c.send("GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(s.loop, "path=/a"));
  c.send("GET /b?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(s.loop, "path=/b"));
  CHECK(c.occurrences("HTTP/1.1 200 OK\r\n") == 2);
  CHECK(c.occurrences("Content-Length: 7\r\n") == 2);
  CHECK(c.occurrences("Content-Type: text/plain\r\n") == 2);
  CHECK(c.occurrences("Date: ") == 2);
  CHECK_FALSE(c.eof());
  CHECK(s.srv->open_connections() == 1);
}

TEMPLATE_TEST_CASE("engine: pipelined requests are answered in order, a held one first", "[engine][pipelining]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  tt::client c(s.port);
  c.send(
      "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /second HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(s.loop, [&] { return s.handlers_run == 1; }));
  tt::run_for(s.loop, 20ms);
  c.pump();
  CHECK(c.data().empty());      // nothing overtakes the held request
  CHECK(s.handlers_run == 1);   // and nothing behind it runs yet
  REQUIRE_FALSE(s.held.reply(200, "held-reply"));
  REQUIRE(c.wait_for(s.loop, "path=/second"));
  const auto a = c.data().find("held-reply"), b = c.data().find("path=/first"), d = c.data().find("path=/second");
  CHECK(a < b);
  CHECK(b < d);
}

TEMPLATE_TEST_CASE("engine: a request split into one-byte writes is served", "[engine][split]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  tt::client c(s.port);
  const std::string_view req = "GET /header HTTP/1.1\r\nHost: t\r\nX-Probe: bytes\r\n\r\n";
  for (char ch : req) {
    c.send(std::string_view(&ch, 1));
    tt::run_for(s.loop, 1ms);
  }
  REQUIRE(c.wait_for(s.loop, "probe=bytes"));
}

TEMPLATE_TEST_CASE("engine: bodies by Content-Length and chunked reach the handler whole", "[engine][body]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  tt::client c(s.port);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
  REQUIRE(c.wait_for(s.loop, "got 11"));
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  REQUIRE(c.wait_count(s.loop, "got 11", 2));
  REQUIRE(s.bodies.size() == 2);
  CHECK(s.bodies[0] == "hello world");
  CHECK(s.bodies[1] == "hello world");
}

TEMPLATE_TEST_CASE("engine: Expect: 100-continue gets 100 before the body", "[engine][expect]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  tt::client c(s.port);
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  REQUIRE(c.wait_for(s.loop, "HTTP/1.1 100 Continue\r\n\r\n"));
  c.send("abcd");
  REQUIRE(c.wait_for(s.loop, "got 4"));
}

TEMPLATE_TEST_CASE("engine: HEAD gets the length a GET would, and no body", "[engine][head]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  tt::client c(s.port);
  c.send("HEAD /x HTTP/1.1\r\nHost: t\r\n\r\nGET /y HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(s.loop, "path=/y"));
  CHECK(c.data().find("path=/x") == std::string::npos);
  CHECK(c.occurrences("Content-Length: 7\r\n") == 2);
}

TEMPLATE_TEST_CASE("engine: a streamed reply is chunked", "[engine][stream]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  tt::client c(s.port);
  c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(s.loop, "0\r\n\r\n"));
  CHECK(c.data().find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(c.data().find("4\r\none,\r\n") != std::string::npos);
  CHECK(c.data().find("9\r\ntwo,three\r\n") != std::string::npos);
  c.send("GET /after HTTP/1.1\r\nHost: t\r\n\r\n");  // the connection is reusable
  REQUIRE(c.wait_for(s.loop, "path=/after"));
}

TEMPLATE_TEST_CASE("engine: a method outside a route's methods gets 405 with Allow", "[engine][routes]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  tt::client c(s.port);
  c.send("POST /get-only HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(c.wait_for(s.loop, "HTTP/1.1 405 "));
  CHECK(c.data().find("Allow: GET") != std::string::npos);
  CHECK(s.handlers_run == 0);
}

TEMPLATE_TEST_CASE("engine: Connection: close and HTTP/1.0 close after the reply, reason completed",
                   "[engine][close]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  for (const char* req : {"GET /cb HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "GET /cb HTTP/1.0\r\n\r\n"}) {
    INFO(req);
    engine_server<TestType> s;
    tt::client c(s.port);
    c.send(req);
    REQUIRE(c.wait_for(s.loop, "cb-reply"));
    REQUIRE(c.wait_eof(s.loop));
    REQUIRE(tt::run_until(s.loop, [&] { return !s.closes.empty(); }));
    tt::run_for(s.loop, 20ms);
    REQUIRE(s.closes.size() == 1);
    CHECK(s.closes[0].reason == tether::close_reason::completed);
    CHECK_FALSE(s.closes[0].aborted);
  }
}

TEMPLATE_TEST_CASE("engine: a held request hears RST and FIN at once, once", "[engine][close][held]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  for (bool rst : {true, false}) {
    INFO((rst ? "RST" : "FIN"));
    engine_server<TestType> s;
    tt::client c(s.port);
    c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(s.loop, [&] { return s.handlers_run == 1; }));
    CHECK(s.held.alive());
    if (rst) c.reset();
    else c.close();
    REQUIRE(tt::run_until(s.loop, [&] { return !s.closes.empty(); }));
    tt::run_for(s.loop, 20ms);
    REQUIRE(s.closes.size() == 1);
    CHECK(s.closes[0].reason == (rst ? tether::close_reason::peer_reset : tether::close_reason::peer_closed));
    CHECK(s.closes[0].aborted);
    CHECK(s.held.peer_gone());
    CHECK(s.held.reply(200, "late") == tether::errc::peer_gone);
    s.srv.reset();
    CHECK(s.closes.size() == 1);
  }
}

TEMPLATE_TEST_CASE("engine: closing from a handle and destroying the server report their reasons",
                   "[engine][close]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  {
    engine_server<TestType> s;
    tt::client c(s.port);
    c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(s.loop, [&] { return s.handlers_run == 1; }));
    s.held.close();
    REQUIRE(s.closes.size() == 1);
    CHECK(s.closes[0].reason == tether::close_reason::closed_by_server);
    CHECK(s.closes[0].aborted);
    CHECK(c.wait_eof(s.loop));
  }
  {
    engine_server<TestType> s;
    tt::client c(s.port);
    c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(s.loop, [&] { return s.handlers_run == 1; }));
    s.srv.reset();
    REQUIRE(s.closes.size() == 1);
    CHECK(s.closes[0].reason == tether::close_reason::server_shutdown);
    CHECK(s.held.reply(200, "late") == tether::errc::peer_gone);
  }
}

TEMPLATE_TEST_CASE("engine: a handler that neither replies nor holds gets a 500 sent for it", "[engine][abandon]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  (void)s.srv->route("/nothing", [](auto&) {});
  tt::client c(s.port);
  c.send("GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(s.loop, "HTTP/1.1 500 "));
}

// ----- limits: 400, 408, 413, 431, each with its close reason ------------------------

namespace {
struct limit_case {
  const char* what;
  std::string request;
  const char* status;
  tether::close_reason reason;
};
}  // namespace

TEMPLATE_TEST_CASE("engine: limits answer 400, 413, 431 and close with their reasons", "[engine][limits]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  const std::vector<limit_case> cases = {
      {"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
       "HTTP/1.1 400 ", tether::close_reason::protocol_error},
      {"a body over max_body_bytes", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", "HTTP/1.1 413 ",
       tether::close_reason::limit_exceeded},
      {"a head over max_header_bytes", "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(3000, 'a') + "\r\n\r\n",
       "HTTP/1.1 431 ", tether::close_reason::limit_exceeded},
      {"Content-Length 2^63 - 1", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9223372036854775807\r\n\r\n",
       "HTTP/1.1 413 ", tether::close_reason::limit_exceeded},
      {"an endless header line", "GET / HTTP/1.1\r\nHost: t\r\nX-Endless: " + std::string(64 * 1024, 'a'),
       "HTTP/1.1 431 ", tether::close_reason::limit_exceeded},
  };
  for (const auto& k : cases) {
    INFO(k.what);
    engine_server<TestType> s;
    s.srv->set_max_body_bytes(1000);
    s.srv->set_max_header_bytes(1024);
    tt::client c(s.port);
    c.send(get_cb);  // a close callback on the connection first
    REQUIRE(c.wait_for(s.loop, "cb-reply"));
    c.clear();
    c.send(k.request);
    REQUIRE(c.wait_for(s.loop, k.status));
    REQUIRE(c.wait_eof(s.loop));
    REQUIRE(tt::run_until(s.loop, [&] { return !s.closes.empty(); }));
    CHECK(s.closes.size() == 1);
    CHECK(s.closes[0].reason == k.reason);
    CHECK(s.handlers_run == 1);  // the refused request reached no handler
  }
}

TEMPLATE_TEST_CASE("engine: a head that trickles gets 408 at the head deadline; an idle connection closes",
                   "[engine][limits][timeout]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  {
    engine_server<TestType> s;
    s.srv->set_head_timeout(150ms);
    tt::client c(s.port);
    c.send(get_cb);
    REQUIRE(c.wait_for(s.loop, "cb-reply"));
    c.send("GET / HTTP/1.1\r\nHo");
    REQUIRE(c.wait_for(s.loop, "HTTP/1.1 408 ", 3000ms));
    REQUIRE(c.wait_eof(s.loop));
    REQUIRE(tt::run_until(s.loop, [&] { return !s.closes.empty(); }));
    CHECK(s.closes[0].reason == tether::close_reason::timeout);
  }
  {
    engine_server<TestType> s;
    s.srv->set_idle_timeout(150ms);
    tt::client c(s.port);
    c.send(get_cb);
    REQUIRE(c.wait_for(s.loop, "cb-reply"));
    REQUIRE(c.wait_eof(s.loop, 3000ms));
    REQUIRE(tt::run_until(s.loop, [&] { return !s.closes.empty(); }));
    CHECK(s.closes[0].reason == tether::close_reason::timeout);
    CHECK_FALSE(s.closes[0].aborted);
  }
}

TEMPLATE_TEST_CASE("engine: a flood while a request is held is bounded by max_unread_input", "[engine][limits][flood]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  s.srv->set_max_unread_input(16 * 1024);
  tt::client c(s.port);
  c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(s.loop, [&] { return s.handlers_run == 1; }));
  const std::string junk(4096, 'x');
  bool closed = false;
  for (int i = 0; i < 64 && !closed; ++i) {
    if (::send(c.fd(), junk.data(), junk.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) break;
    tt::run_for(s.loop, 1ms);
    closed = !s.closes.empty();
  }
  REQUIRE(tt::run_until(s.loop, [&] { return !s.closes.empty(); }));
  CHECK(s.closes[0].reason == tether::close_reason::limit_exceeded);
  CHECK(s.closes[0].aborted);
}

// ----- lean only ------------------------------------------------------------------------

TEST_CASE("lean engine: RFC 9112 refusals evhttp does not make: bad versions, bare LF, obs-fold",
          "[engine][lean][parser]") {
  // evhttp answers HTTP/1.99999 as HTTP/1.-1 and accepts bare LF; the lean engine uses
  // tether::http1's parser (docs/http1-parser.md).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"GET / HTTP/2.0\r\nHost: t\r\n\r\n", "HTTP/1.1 505 "},
      {"GET / HTTP/1.99999999999999999999\r\nHost: t\r\n\r\n", "HTTP/1.1 400 "},
      {"GET / HTTP/1.1\nHost: t\n\n", "HTTP/1.1 400 "},
      {"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", "HTTP/1.1 400 "},
      {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},  // no Host
      {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "HTTP/1.1 501 "},
      {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 400 "},
  };
  for (const auto& [req, status] : cases) {
    INFO(req);
    engine_server<tether::lean_server> s;
    tt::client c(s.port);
    c.send(req);
    REQUIRE(c.wait_for(s.loop, status));
    REQUIRE(c.wait_eof(s.loop));
    CHECK(s.handlers_run == 0);
  }
}

TEST_CASE("lean engine: many pipelined requests from one read are answered in one write, in order",
          "[engine][lean][pipelining]") {
  engine_server<tether::lean_server> s;
  tt::client c(s.port);
  std::string batch;
  for (int i = 0; i < 50; ++i) batch += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
  c.send(batch);
  REQUIRE(c.wait_for(s.loop, "path=/49"));
  std::size_t at = 0;
  for (int i = 0; i < 50; ++i) {
    const auto p = c.data().find("path=/" + std::to_string(i), at);
    REQUIRE(p != std::string::npos);
    at = p;
  }
  CHECK(s.srv->requests_served() == 50);
}

// ----- streams and SSE through the helpers, on both engines ----------------------------

TEMPLATE_TEST_CASE("engine: an SSE stream (sse_stream::start) sends events, then notices the hang-up at once",
                   "[engine][sse]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  std::vector<recorded_close> closes;
  tether::event_loop loop;
  std::optional<TestType> srv{std::in_place, loop};
  typename TestType::sse_stream stream;
  srv->fallback([&](auto& req) {
    (void)req.connection().on_close([&](const tether::close_event& e) { closes.push_back({e.reason, e.aborted}); });
    auto s = TestType::sse_stream::start(req);
    REQUIRE(s);
    stream = std::move(*s);
  });
  const auto port = *srv->bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "Content-Type: text/event-stream\r\n"));
  CHECK(c.data().find("Cache-Control: no-cache\r\n") != std::string::npos);
  REQUIRE_FALSE(stream.send(tether::sse::event{.id = "1", .data = "first"}));
  REQUIRE(c.wait_for(loop, "id: 1\ndata: first\n\n"));
  const auto shared = tether::sse::encode(tether::sse::event{.data = "shared"});
  REQUIRE(shared);
  REQUIRE_FALSE(stream.send(*shared));
  REQUIRE(c.wait_for(loop, "data: shared\n\n"));
  CHECK(stream.alive());
  c.reset();
  REQUIRE(tt::run_until(loop, [&] { return stream.peer_gone(); }));
  CHECK(stream.send(tether::sse::event{.data = "late"}) == tether::errc::peer_gone);
  REQUIRE(closes.size() == 1);
  CHECK(closes[0].reason == tether::close_reason::peer_reset);
  CHECK(closes[0].aborted);
  srv.reset();
  CHECK(closes.size() == 1);
}

TEMPLATE_TEST_CASE("engine: a stream larger than the socket's buffers arrives whole and in order",
                   "[engine][stream][backpressure]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  engine_server<TestType> s;
  typename TestType::request_handle h;
  (void)s.srv->route("/big", [&](auto& req) {
    if constexpr (tt::is_lean<TestType>()) {  // loopback buffers would take it all at once
      const int small = 16 * 1024;
      ::setsockopt(req.connection().native(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    }
    REQUIRE_FALSE(req.start(200));
    h = req.hold();
  });
  tt::client c(s.port);
  c.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(s.loop, [&] { return bool(h); }));
  constexpr int chunks = 48;
  constexpr std::size_t size = 64 * 1024;
  for (int i = 0; i < chunks; ++i) REQUIRE_FALSE(h.send_chunk(std::string(size, static_cast<char>('a' + i % 26))));
  CHECK(h.queued_bytes() > 0);  // the client has not read: the rest waits in the server
  REQUIRE_FALSE(h.end());
  REQUIRE(c.wait_for(s.loop, "\r\n0\r\n\r\n", 10000ms));
  // Decode the chunked body and check every chunk's letter, in order.
  const std::string& d = c.data();
  std::size_t at = d.find("\r\n\r\n") + 4;
  std::string body;
  for (;;) {
    const std::size_t eol = d.find("\r\n", at);
    const std::size_t n = std::stoul(d.substr(at, eol - at), nullptr, 16);
    if (n == 0) break;
    body.append(d, eol + 2, n);
    at = eol + 2 + n + 2;
  }
  REQUIRE(body.size() == chunks * size);
  for (int i = 0; i < chunks; ++i) CHECK(body[static_cast<std::size_t>(i) * size] == static_cast<char>('a' + i % 26));
  c.send("GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(s.loop, "path=/after"));
}

TEMPLATE_TEST_CASE("engine: RST and FIN while a head is half read, and while a reply waits for the socket",
                   "[engine][close][phases]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  for (bool rst : {true, false}) {
    INFO((rst ? "RST" : "FIN") << " in the middle of a head");
    engine_server<TestType> s;
    tt::client c(s.port);
    c.send(get_cb);  // sets the close callback
    REQUIRE(c.wait_for(s.loop, "cb-reply"));
    c.send("GET /next HTTP/1.1\r\nHo");
    tt::run_for(s.loop, 10ms);
    if (rst) c.reset();
    else c.close();
    REQUIRE(tt::run_until(s.loop, [&] { return !s.closes.empty(); }));
    tt::run_for(s.loop, 20ms);
    REQUIRE(s.closes.size() == 1);
    CHECK(s.closes[0].reason == (rst ? tether::close_reason::peer_reset : tether::close_reason::peer_closed));
    CHECK_FALSE(s.closes[0].aborted);
  }
  {
    INFO("RST while megabytes of a stream wait for the socket");
    engine_server<TestType> s;
    typename TestType::request_handle h;
    (void)s.srv->route("/big", [&](auto& req) {
      (void)req.connection().on_close([&](const tether::close_event& e) { s.closes.push_back({e.reason, e.aborted}); });
      if constexpr (tt::is_lean<TestType>()) {
        const int small = 16 * 1024;
        ::setsockopt(req.connection().native(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
      }
      REQUIRE_FALSE(req.start(200));
      h = req.hold();
    });
    tt::client c(s.port);
    c.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(s.loop, [&] { return bool(h); }));
    for (int i = 0; i < 48; ++i) REQUIRE_FALSE(h.send_chunk(std::string(64 * 1024, 'x')));
    REQUIRE(h.queued_bytes() > 0);
    c.reset();
    REQUIRE(tt::run_until(s.loop, [&] { return !s.closes.empty(); }));
    tt::run_for(s.loop, 20ms);
    REQUIRE(s.closes.size() == 1);
    CHECK(s.closes[0].reason == tether::close_reason::peer_reset);
    CHECK(s.closes[0].aborted);
    CHECK(h.peer_gone());
    CHECK(h.send_chunk("late") == tether::errc::peer_gone);
  }
}
