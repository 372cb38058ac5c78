// Server push: SSE framing byte for byte, heartbeats, multipart parts and frame skipping,
// long-poll, and broadcast to hundreds of subscribers of which some vanish.
#include <tether/tether.hpp>

#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("sse: events are framed byte for byte", "[sse]") {
  std::string out;
  REQUIRE_FALSE(tether::sse::encode_to(out, {.id = "42", .event = "tick", .data = "one\ntwo\r\nthree\rfour", .retry = 1500ms}));
  CHECK(out == "id: 42\nevent: tick\nretry: 1500\ndata: one\ndata: two\ndata: three\ndata: four\n\n");
  out.clear();
  REQUIRE_FALSE(tether::sse::encode_to(out, {.data = ""}));
  CHECK(out == "data: \n\n");
  out.clear();
  REQUIRE_FALSE(tether::sse::encode_to(out, {.data = "trailing newline\n"}));
  CHECK(out == "data: trailing newline\n\n");
  CHECK(tether::sse::encode_to(out, {.id = "bad\nid"}) == tether::errc::invalid_argument);
  CHECK(tether::sse::encode_to(out, {.event = "bad\revent"}) == tether::errc::invalid_argument);
  CHECK(tether::sse::comment("a\nb") == ": a\n: b\n\n");
  CHECK(tether::sse::encode({.data = "x"})->view() == "data: x\n\n");
}

TEST_CASE("sse: a stream has the right headers, sends events, heartbeats, and sees Last-Event-ID", "[sse]") {
  tether::event_loop loop;
  tether::server srv{loop};
  std::optional<tether::sse_stream> s;
  std::string last_id;
  srv.fallback([&](tether::request& req) {
    last_id = std::string(tether::sse::last_event_id(req).value_or("none"));
    s.emplace(std::move(*tether::sse_stream::start(req)));
    REQUIRE_FALSE(s->heartbeat(loop, 10ms));
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET /events HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 41\r\n\r\n");
  REQUIRE(tt::run_until(loop, [&] { return s.has_value(); }));
  CHECK(last_id == "41");
  REQUIRE_FALSE(s->send({.id = "42", .data = "hello"}));
  REQUIRE(c.wait_for(loop, "id: 42\ndata: hello\n\n"));
  REQUIRE(c.wait_count(loop, ":\n\n", 3));  // heartbeats
  const auto& d = c.data();
  CHECK(d.find("Content-Type: text/event-stream\r\n") != std::string::npos);
  CHECK(d.find("Cache-Control: no-cache\r\n") != std::string::npos);
  CHECK(d.find("X-Accel-Buffering: no\r\n") != std::string::npos);
  CHECK(d.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(s->heartbeat_active());
  c.reset();
  REQUIRE(tt::run_until(loop, [&] { return s->peer_gone(); }));
  CHECK_FALSE(s->heartbeat_active());  // stopped with the stream, before another tick
  CHECK(s->send({.data = "late"}) == tether::errc::peer_gone);
}

TEST_CASE("sse: a heartbeat keeps beating after the stream moves, and stops when it ends", "[sse]") {
  tether::event_loop loop;
  tether::server srv{loop};
  std::optional<tether::sse_stream> first;
  srv.fallback([&](tether::request& req) {
    first.emplace(std::move(*tether::sse_stream::start(req)));
    CHECK_FALSE(first->heartbeat_active());  // no heartbeat until asked for
    REQUIRE_FALSE(first->heartbeat(loop, 5ms));
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_count(loop, ":\n\n", 2));
  std::vector<tether::sse_stream> moved;
  moved.push_back(std::move(*first));  // the heartbeat follows the stream
  first.reset();
  moved.reserve(16);  // and moves again
  CHECK(moved[0].heartbeat_active());
  const auto beats = c.occurrences(":\n\n");
  REQUIRE(c.wait_count(loop, ":\n\n", beats + 3));
  REQUIRE_FALSE(moved[0].heartbeat(loop, 5ms));  // replaces the first one
  REQUIRE(c.wait_count(loop, ":\n\n", beats + 5));
  REQUIRE_FALSE(moved[0].end());
  CHECK_FALSE(moved[0].heartbeat_active());
  REQUIRE(c.wait_for(loop, "0\r\n\r\n"));
  const auto at_end = c.occurrences(":\n\n");
  tt::run_for(loop, 30ms);
  CHECK(c.occurrences(":\n\n") == at_end);
}

TEST_CASE("sse: an HTTP/1.0 client gets a close-delimited event stream", "[sse][framing]") {
  tether::event_loop loop;
  tether::server srv{loop};
  std::optional<tether::sse_stream> s;
  srv.fallback([&](tether::request& req) { s.emplace(std::move(*tether::sse_stream::start(req))); });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET / HTTP/1.0\r\n\r\n");
  REQUIRE(tt::run_until(loop, [&] { return s.has_value(); }));
  REQUIRE_FALSE(s->send({.data = "ten-bytes!"}));
  REQUIRE_FALSE(s->end());
  REQUIRE(c.wait_eof(loop));
  CHECK(c.data().find("Transfer-Encoding") == std::string::npos);
  CHECK(c.data().substr(c.data().size() - 18) == "data: ten-bytes!\n\n");
}

TEST_CASE("multipart: parts are framed with their headers and Content-Length", "[multipart]") {
  tether::event_loop loop;
  tether::server srv{loop};
  std::optional<tether::multipart_stream> m;
  srv.fallback([&](tether::request& req) { m.emplace(std::move(*tether::multipart_stream::start(req, "frame"))); });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(loop, [&] { return m.has_value(); }));
  REQUIRE_FALSE(m->send_part({{"Content-Type", "image/jpeg"}}, std::string_view("JPEGDATA")));
  REQUIRE_FALSE(m->send_part({{"Content-Type", "text/plain"}, {"X-Seq", "2"}}, tether::shared_bytes("second")));
  CHECK(m->send_part({{"Bad Name", "x"}}, std::string_view("x")) == tether::errc::invalid_argument);
  REQUIRE_FALSE(m->end());
  REQUIRE(c.wait_for(loop, "0\r\n\r\n"));
  std::string body;  // de-chunk
  for (auto p = c.data().find("\r\n\r\n") + 4; p < c.data().size();) {
    const auto eol = c.data().find("\r\n", p);
    const auto n = std::stoul(c.data().substr(p, eol - p), nullptr, 16);
    body += c.data().substr(eol + 2, n);
    p = eol + 2 + n + 2;
    if (n == 0) break;
  }
  CHECK(c.data().find("Content-Type: multipart/x-mixed-replace;boundary=frame\r\n") != std::string::npos);
  CHECK(body ==
        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\n\r\nJPEGDATA\r\n"
        "--frame\r\nContent-Type: text/plain\r\nX-Seq: 2\r\nContent-Length: 6\r\n\r\nsecond\r\n"
        "\r\n--frame--\r\n");
}

TEST_CASE("multipart: a slow viewer skips frames and always gets the newest", "[multipart][flow]") {
  using bounded_server = tether::basic_server<tether::eager_close<>, tether::bounded<tether::reference_buffer, 32 * 1024, 4 * 1024>>;
  using multipart_t = tether::basic_multipart_stream<bounded_server::config>;
  tether::event_loop loop;
  bounded_server srv{loop};
  std::optional<multipart_t> m;
  srv.fallback([&](bounded_server::request& req) {
    const int small = 4096;
    ::setsockopt(req.connection().bufferevent()->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    m.emplace(std::move(*multipart_t::start(req)));
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  const int small = 4096;
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(loop, [&] { return m.has_value(); }));
  const std::string pixels(8 * 1024, 'x');
  for (int frame = 1; frame <= 200; ++frame) {
    REQUIRE_FALSE(m->replace(tether::shared_bytes("frame-" + std::to_string(frame) + ";" + pixels), "image/raw"));
  }
  CHECK(m->skipped_frames() > 0);
  CHECK(m->stream().queued_bytes() <= 32 * 1024 + pixels.size() + 100);
  REQUIRE(tt::run_until(loop, [&] {
    c.pump();
    return c.data().find("frame-200;") != std::string::npos;
  }, 5000ms));
  CHECK(c.occurrences("frame-") < 200);
}

TEST_CASE("long-poll: data, deadline, and clients that leave while held", "[long_poll]") {
  tether::event_loop loop;
  tether::server srv{loop};
  tether::long_poll room{loop, 150ms};
  int closes = 0;
  srv.fallback([&](tether::request& req) {
    req.connection().on_close([&](const tether::close_event&) { ++closes; });
    REQUIRE_FALSE(room.wait(req));
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  const std::string poll = "GET /poll HTTP/1.1\r\nHost: t\r\n\r\n";

  SECTION("data wakes every waiter with 200") {
    tt::client a(port), b(port);
    a.send(poll);
    b.send(poll);
    REQUIRE(tt::run_until(loop, [&] { return room.waiting() == 2; }));
    CHECK(room.notify_all(std::string_view("new message")) == 2);
    CHECK(a.wait_for(loop, "new message"));
    CHECK(b.wait_for(loop, "new message"));
    CHECK(a.data().rfind("HTTP/1.1 200", 0) == 0);
    CHECK(room.waiting() == 0);
  }
  SECTION("notify_one answers the oldest waiter") {
    tt::client a(port);
    a.send(poll);
    REQUIRE(tt::run_until(loop, [&] { return room.waiting() == 1; }));
    tt::client b(port);
    b.send(poll);
    REQUIRE(tt::run_until(loop, [&] { return room.waiting() == 2; }));
    CHECK(room.notify_one(std::string_view("first")));
    CHECK(a.wait_for(loop, "first"));
    b.pump();
    CHECK(b.data().empty());
    CHECK(room.waiting() == 1);
  }
  SECTION("the deadline answers 204") {
    tt::client a(port);
    a.send(poll);
    REQUIRE(tt::run_until(loop, [&] { return room.waiting() == 1; }));
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(a.wait_for(loop, "HTTP/1.1 204 No Content"));
    CHECK(std::chrono::steady_clock::now() - t0 >= 100ms);
    CHECK(room.waiting() == 0);
  }
  SECTION("a client that leaves is noticed at once and its slot freed") {
    tt::client a(port), b(port);
    a.send(poll);
    b.send(poll);
    REQUIRE(tt::run_until(loop, [&] { return room.waiting() == 2; }));
    a.reset();
    REQUIRE(tt::run_until(loop, [&] { return room.waiting() == 1; }, 100ms));  // long before the deadline
    CHECK(closes == 1);
    CHECK(room.notify_all(std::string_view("only b")) == 1);
    CHECK(b.wait_for(loop, "only b"));
  }
}

TEST_CASE("hub: broadcast to hundreds of subscribers of which some vanish", "[hub]") {
  constexpr int clients = 300;
  tether::event_loop loop;
  tether::server srv{loop};
  tether::hub<tether::sse_stream> hub;
  srv.fallback([&](tether::request& req) {
    auto s = tether::sse_stream::start(req);
    REQUIRE(s);
    REQUIRE_FALSE(hub.subscribe(std::move(*s)));
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  const std::size_t fds_before = tt::open_fds();
  std::vector<std::unique_ptr<tt::client>> cs;
  for (int i = 0; i < clients; ++i) {
    cs.push_back(std::make_unique<tt::client>(port));
    cs.back()->send("GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
  }
  REQUIRE(tt::run_until(loop, [&] { return hub.size() == clients; }, 5000ms));

  auto e1 = tether::sse::encode({.id = "1", .data = "first"});
  auto r1 = hub.publish(*e1);
  CHECK(r1.delivered == clients);
  // A third vanish: RST and FIN alternately.
  for (int i = 0; i < clients; i += 3) {
    if (i % 2) cs[i]->reset();
    else cs[i]->close();
  }
  REQUIRE(tt::run_until(loop, [&] { return hub.size() == clients - 100; }, 5000ms));
  auto r2 = hub.publish(*tether::sse::encode({.id = "2", .data = "second"}));
  CHECK(r2.delivered == clients - 100);
  CHECK(r2.failed == 0);
  for (int i = 0; i < clients; ++i) {
    if (i % 3 == 0) continue;
    REQUIRE(cs[i]->wait_for(loop, "id: 2\ndata: second\n\n"));
    CHECK(cs[i]->occurrences("data: first") == 1);
  }
  CHECK(e1->use_count() == 1);  // every subscriber's copy released
  hub.clear();                  // ends the remaining streams
  for (int i = 0; i < clients; ++i)
    if (i % 3 != 0) REQUIRE(cs[i]->wait_for(loop, "0\r\n\r\n"));
  cs.clear();
  REQUIRE(tt::run_until(loop, [&] { return tt::open_fds() == fds_before; }, 5000ms));
  CHECK(tt::close_wait_sockets(port) == 0);
}
