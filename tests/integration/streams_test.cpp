// Streams: framing for HTTP/1.1, HTTP/1.0 and known lengths; writes after a hang-up;
// producers that stop the moment the client leaves.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {
template <class Server = tether::server>
struct stream_fixture {
  std::vector<tether::close_reason> closes;
  tether::event_loop loop;
  std::optional<Server> srv{std::in_place, loop};
  std::optional<typename Server::stream> stream;
  std::uint16_t port = 0;

  template <class Start>
  explicit stream_fixture(Start start) {
    srv->fallback([this, start](auto& req) {
      (void)req.connection().on_close([this](const tether::close_event& e) { closes.push_back(e.reason); });
      auto s = start(req);
      REQUIRE(s);
      stream.emplace(std::move(*s));
    });
    port = *srv->bind("127.0.0.1", 0);
  }
};
auto plain_start = [](auto& req) { return tether::stream::start(req); };
}  // namespace

TEMPLATE_TEST_CASE("stream: HTTP/1.1 is chunked", "[stream][framing]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  stream_fixture<TestType> f(plain_start);
  tt::client c(f.port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.stream.has_value(); }));
  CHECK(f.stream->framing() == tether::framing::chunked);
  REQUIRE_FALSE(f.stream->write("hello ", tether::static_bytes("world, in one chunk")));
  REQUIRE_FALSE(f.stream->end());
  REQUIRE(c.wait_for(f.loop, "0\r\n\r\n"));
  CHECK(c.data().find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(c.data().find("\r\n\r\n19\r\nhello world, in one chunk\r\n0\r\n\r\n") != std::string::npos);
  CHECK(f.stream->write("late") == tether::errc::reply_finished);
}

TEMPLATE_TEST_CASE("stream: HTTP/1.0 is close-delimited, even when the client asks for keep-alive", "[stream][framing]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  for (const char* request : {"GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"}) {
    INFO(request);
    stream_fixture<TestType> f(plain_start);
    tt::client c(f.port);
    c.send(request);
    REQUIRE(tt::run_until(f.loop, [&] { return f.stream.has_value(); }));
    CHECK(f.stream->framing() == tether::framing::close_delimited);
    REQUIRE_FALSE(f.stream->write("part one;"));
    REQUIRE_FALSE(f.stream->write("part two"));
    REQUIRE_FALSE(f.stream->end());
    REQUIRE(c.wait_eof(f.loop));
    // evhttp answers in the request's version; the lean engine in HTTP/1.1 (RFC 9110 2.5).
    CHECK(c.data().rfind(tt::is_lean<TestType>() ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.0 200 OK\r\n", 0) == 0);
    CHECK(c.data().find("Content-Length") == std::string::npos);
    CHECK(c.data().find("Transfer-Encoding") == std::string::npos);
    CHECK(c.data().find("Connection: close\r\n") != std::string::npos);
    CHECK(c.data().substr(c.data().size() - 17) == "part one;part two");
    REQUIRE(f.closes.size() == 1);
    CHECK(f.closes[0] == tether::close_reason::completed);
  }
}

TEMPLATE_TEST_CASE("stream: a known-length body refuses to overrun and is cut off when ended short", "[stream][framing]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  SECTION("exact length") {
    stream_fixture<TestType> f([](auto& req) { return tether::stream::start_sized(req, 10); });
    tt::client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return f.stream.has_value(); }));
    CHECK(f.stream->framing() == tether::framing::known_length);
    REQUIRE_FALSE(f.stream->write("01234"));
    CHECK(f.stream->write("too long!") == tether::errc::length_mismatch);  // nothing sent
    REQUIRE_FALSE(f.stream->write("56789"));
    CHECK(f.stream->remaining() == 0);
    REQUIRE_FALSE(f.stream->end());
    REQUIRE(c.wait_for(f.loop, "0123456789"));
    CHECK(c.data().find("Content-Length: 10\r\n") != std::string::npos);
    CHECK(c.data().find("Transfer-Encoding") == std::string::npos);
    CHECK(tt::first_body(c.data()) == "0123456789");
    // The connection stays open for the next request.
    c.clear();
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return f.stream->remaining() == 10; }));
    REQUIRE_FALSE(f.stream->write("abcdefghij"));
    REQUIRE_FALSE(f.stream->end());
    REQUIRE(c.wait_for(f.loop, "abcdefghij"));
    CHECK(f.closes.empty());
  }
  SECTION("HEAD: the declared length, no body") {
    stream_fixture<TestType> f([](auto& req) { return tether::stream::start_sized(req, 10); });
    tt::client c(f.port);
    c.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_for(f.loop, "\r\n\r\n"));
    CHECK(c.data().find("Content-Length: 10\r\n") != std::string::npos);
    if (f.stream && f.stream->alive()) {
      (void)f.stream->write("0123456789");
      (void)f.stream->end();
    }
    tt::run_for(f.loop, 20ms);
    CHECK(c.data().find("0123456789") == std::string::npos);
  }
  SECTION("ended short") {
    stream_fixture<TestType> f([](auto& req) { return tether::stream::start_sized(req, 100); });
    tt::client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return f.stream.has_value(); }));
    REQUIRE_FALSE(f.stream->write("only this"));
    CHECK(f.stream->end() == tether::errc::length_mismatch);
    CHECK(c.wait_eof(f.loop));
    REQUIRE(f.closes.size() == 1);
    CHECK(f.closes[0] == tether::close_reason::closed_by_server);
  }
}

TEMPLATE_TEST_CASE("stream: writing after the client left is a checked no-op, and producers stop at once",
                   "[stream][producer]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  using stream_t = typename TestType::stream;
  for (bool reset : {true, false}) {
    INFO((reset ? "RST" : "FIN"));
    std::vector<bool> producer_running_at_close;
    tether::event_loop loop;
    std::optional<stream_t> stream;
    std::optional<tether::producer<stream_t, std::function<std::error_code(stream_t&)>>> producer;
    int writes = 0;
    std::optional<TestType> srv{std::in_place, loop};
    srv->fallback([&](auto& req) {
      (void)req.connection().on_close([&](const tether::close_event&) { producer_running_at_close.push_back(producer->running()); });
      stream.emplace(std::move(*tether::stream::start(req)));
      producer.emplace(loop, *stream, 5ms, [&](stream_t& s) {
        ++writes;
        return s.write("tick\n");
      });
    });
    const auto port = *srv->bind("127.0.0.1", 0);
    tt::client c(port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_count(loop, "tick", 3));
    if (reset) c.reset();
    else c.close();
    REQUIRE(tt::run_until(loop, [&] { return !producer_running_at_close.empty(); }));
    CHECK(producer_running_at_close == std::vector<bool>{false});  // stopped before the close callback
    const int writes_at_close = writes;
    tt::run_for(loop, 30ms);
    CHECK(writes == writes_at_close);  // no tick after the hang-up
    CHECK(stream->write("late") == tether::errc::peer_gone);
    CHECK(stream->peer_gone());
    srv.reset();  // no second close callback at teardown, no tick either
    CHECK(producer_running_at_close.size() == 1);
    CHECK(writes == writes_at_close);
    producer.reset();
    stream.reset();
  }
}

TEMPLATE_TEST_CASE("stream: on_end runs once when the client leaves, also after the stream moved", "[stream][hook]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  for (bool reset : {true, false}) {
    INFO((reset ? "RST" : "FIN"));
    stream_fixture<TestType> f(plain_start);
    tt::client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return f.stream.has_value(); }));
    std::vector<std::pair<tether::close_reason, bool>> ends;
    std::size_t closes_at_end = 99;
    REQUIRE_FALSE(f.stream->on_end([&](tether::close_reason r, bool aborted) {
      ends.emplace_back(r, aborted);
      closes_at_end = f.closes.size();
    }));
    typename TestType::stream moved = std::move(*f.stream);  // the callbacks go with the stream
    f.stream.reset();
    REQUIRE_FALSE(moved.write("before\n"));
    REQUIRE(c.wait_for(f.loop, "before"));
    if (reset) c.reset();
    else c.close();
    REQUIRE(tt::run_until(f.loop, [&] { return f.closes.size() == 1; }));
    REQUIRE(ends.size() == 1);
    CHECK(ends[0].first == (reset ? tether::close_reason::peer_reset : tether::close_reason::peer_closed));
    CHECK(ends[0].second);       // aborted
    CHECK(closes_at_end == 0);   // before the connection's close callback
    // Set on a stream that has ended, a callback never runs.
    bool late = false;
    CHECK_FALSE(moved.on_end([&](tether::close_reason, bool) { late = true; }));
    tt::run_for(f.loop, 20ms);
    CHECK_FALSE(late);
    CHECK(ends.size() == 1);
    f.srv.reset();  // the server's teardown reports nothing a second time
    CHECK_FALSE(late);
    CHECK(ends.size() == 1);
    CHECK(f.closes.size() == 1);
  }
}

TEMPLATE_TEST_CASE("stream: on_end reports a completed reply", "[stream][hook]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  stream_fixture<TestType> f(plain_start);
  tt::client c(f.port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.stream.has_value(); }));
  std::vector<std::pair<tether::close_reason, bool>> ends;
  REQUIRE_FALSE(f.stream->on_end([&](tether::close_reason r, bool aborted) { ends.emplace_back(r, aborted); }));
  REQUIRE_FALSE(f.stream->write("body"));
  REQUIRE_FALSE(f.stream->end());
  REQUIRE(c.wait_for(f.loop, "0\r\n\r\n"));
  REQUIRE(tt::run_until(f.loop, [&] { return ends.size() == 1; }));
  CHECK(ends[0] == std::pair{tether::close_reason::completed, false});
}

TEMPLATE_TEST_CASE("stream: a producer pauses on would_block and resumes when writable", "[stream][producer][flow]",
                   TT_ENGINES) {
  INFO("engine " << TestType::name);
  using bounded_server = tt::server_on<TestType, tether::bounded<tether::copy_buffer, 32 * 1024, 8 * 1024>>;
  using stream_t = tether::basic_stream<typename bounded_server::config>;
  tether::event_loop loop;
  bounded_server srv{loop};
  std::optional<stream_t> stream;
  const std::string block(4096, 'p');
  std::optional<tether::producer<stream_t, std::function<std::error_code(stream_t&)>>> producer;
  srv.fallback([&](typename bounded_server::request& req) {
    const int small = 4096;
    ::setsockopt(tt::socket_of(req), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    stream.emplace(std::move(*stream_t::start(req)));
    producer.emplace(loop, *stream, 1ms, [&](stream_t& s) { return s.write(block); });
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  const int small = 4096;
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(loop, [&] { return producer && producer->paused(); }));
  const auto ticks_when_paused = producer->ticks();
  tt::run_for(loop, 50ms);
  CHECK(producer->ticks() == ticks_when_paused);  // paused: no spinning on refused writes
  CHECK(stream->queued_bytes() <= 32 * 1024 + block.size());
  // With 4 KiB buffers at both ends, loopback TCP moves about 7 KiB per 200 ms (the
  // client's window updates wait for its delayed-ACK timer; strace of this test): 20 more
  // ticks take 2.5 to 3.5 s whatever tether does, so the limit leaves room for that.
  REQUIRE(tt::run_until(loop, [&] {
    c.pump();
    return producer->ticks() > ticks_when_paused + 20;
  }, 15000ms));  // resumed once the client read
  producer->stop();
  REQUIRE_FALSE(stream->end());
}

namespace {
// The names in a libevent header list, in order (white-box: the tests below look at the
// request's lists after its handler returned, which applications must not do).
std::vector<std::string> header_names(evkeyvalq* h) {
  std::vector<std::string> out;
  for (const evkeyval* kv = h->tqh_first; kv; kv = kv->next.tqe_next) out.emplace_back(kv->key);
  return out;
}
}  // namespace

TEST_CASE("stream: once the head is written and the handler returned, only Connection and Content-Length stay, and reads are small",
          "[stream][memory]") {
  // An idle SSE stream lives for hours: the headers it received and sent (Cookie,
  // User-Agent... 112 B and more each) are freed; Connection stays for evhttp's keep-alive
  // decision, Content-Length for a known-length stream's end.
  evhttp_request* raw = nullptr;
  bool sized = false;
  ev_ssize_t read_max_in_handler = 0;
  auto read_max = [&] { return bufferevent_get_max_single_read(evhttp_connection_get_bufferevent(evhttp_request_get_connection(raw))); };
  stream_fixture f([&](tether::request& req) {
    raw = req.native();
    read_max_in_handler = read_max();
    (void)req.output_headers().add("X-Extra", std::string(200, 'x').c_str());
    CHECK(req.input_headers().contains("User-Agent"));  // still readable in the handler
    return sized ? tether::stream::start_sized(req, 4) : tether::stream::start(req);
  });
  tt::client c(f.port);
  const std::string heads = "Host: t\r\nUser-Agent: tether-test/1.0\r\nCookie: session=" + std::string(300, 'c') + "\r\n";
  c.send("GET /a HTTP/1.1\r\n" + heads + "Connection: keep-alive\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.stream.has_value(); }));
  CHECK(header_names(evhttp_request_get_input_headers(raw)) == std::vector<std::string>{"Connection"});
  CHECK(header_names(evhttp_request_get_output_headers(raw)).empty());
  const ev_ssize_t default_read = read_max_in_handler;
  CHECK(default_read > 960);
  // A hang-up is read into libevent's smallest chain (1 KiB), not an 8 KiB one.
  CHECK(read_max() == 960);
  REQUIRE(c.wait_for(f.loop, "\r\n\r\n"));
  CHECK(c.data().find("X-Extra: xxxx") != std::string::npos);  // written before it was freed
  CHECK(c.data().find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  REQUIRE_FALSE(f.stream->write("one"));
  REQUIRE_FALSE(f.stream->end());
  REQUIRE(c.wait_for(f.loop, "3\r\none\r\n0\r\n\r\n"));

  // The connection stays open (keep-alive kept its header): the next stream is known-length.
  sized = true;
  f.stream.reset();
  c.clear();
  c.send("GET /b HTTP/1.1\r\n" + heads + "\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.stream.has_value(); }));
  CHECK(read_max_in_handler == default_read);  // the completed stream gave the default back
  CHECK(header_names(evhttp_request_get_input_headers(raw)).empty());
  CHECK(header_names(evhttp_request_get_output_headers(raw)) == std::vector<std::string>{"Content-Length"});
  REQUIRE_FALSE(f.stream->write("four"));
  REQUIRE_FALSE(f.stream->end());
  REQUIRE(c.wait_for(f.loop, "Content-Length: 4\r\n"));
  REQUIRE(c.wait_for(f.loop, "\r\n\r\nfour"));

  // "Connection: close" is still honoured when the stream ends.
  sized = false;
  f.stream.reset();
  c.clear();
  c.send("GET /c HTTP/1.1\r\n" + heads + "Connection: close\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.stream.has_value(); }));
  CHECK(header_names(evhttp_request_get_input_headers(raw)) == std::vector<std::string>{"Connection"});
  REQUIRE_FALSE(f.stream->end());
  REQUIRE(c.wait_eof(f.loop));
  CHECK(c.data().find("Connection: close\r\n") != std::string::npos);
}
