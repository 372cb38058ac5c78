// Server push: SSE framing byte for byte, heartbeats, multipart parts and frame skipping,
// long-poll, and broadcast to hundreds of subscribers of which some vanish.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
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

TEMPLATE_TEST_CASE("sse: a stream has the right headers, sends events, heartbeats, and sees Last-Event-ID", "[sse]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  std::optional<typename TestType::sse_stream> s;
  std::string last_id;
  srv.fallback([&](auto& req) {
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

TEMPLATE_TEST_CASE("sse: a heartbeat keeps beating after the stream moves, and stops when it ends", "[sse]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  std::optional<typename TestType::sse_stream> first;
  srv.fallback([&](auto& req) {
    first.emplace(std::move(*tether::sse_stream::start(req)));
    CHECK_FALSE(first->heartbeat_active());  // no heartbeat until asked for
    REQUIRE_FALSE(first->heartbeat(loop, 5ms));
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_count(loop, ":\n\n", 2));
  std::vector<typename TestType::sse_stream> moved;
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

TEMPLATE_TEST_CASE("sse: an HTTP/1.0 client gets a close-delimited event stream", "[sse][framing]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  std::optional<typename TestType::sse_stream> s;
  srv.fallback([&](auto& req) { s.emplace(std::move(*tether::sse_stream::start(req))); });
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

TEMPLATE_TEST_CASE("multipart: parts are framed with their headers and Content-Length", "[multipart]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  std::optional<typename TestType::multipart_stream> m;
  srv.fallback([&](auto& req) { m.emplace(std::move(*tether::multipart_stream::start(req, "frame"))); });
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

TEMPLATE_TEST_CASE("multipart: a slow viewer skips frames and always gets the newest", "[multipart][flow]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  using bounded_server = tt::server_on<TestType, tether::bounded<tether::reference_buffer, 32 * 1024, 4 * 1024>>;
  using multipart_t = tether::basic_multipart_stream<typename bounded_server::config>;
  tether::event_loop loop;
  bounded_server srv{loop};
  std::optional<multipart_t> m;
  srv.fallback([&](typename bounded_server::request& req) {
    const int small = 4096;
    ::setsockopt(tt::socket_of(req), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
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

TEMPLATE_TEST_CASE("long-poll: data, deadline, and clients that leave while held", "[long_poll]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  int closes = 0;  // before srv: the server's destructor reports the connections it closes
  TestType srv{loop};
  typename TestType::long_poll room{loop, 150ms};
  srv.fallback([&](auto& req) {
    (void)req.connection().on_close([&](const tether::close_event&) { ++closes; });
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

TEMPLATE_TEST_CASE("hub: broadcast to hundreds of subscribers of which some vanish", "[hub]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  constexpr int clients = 300;
  tether::event_loop loop;
  TestType srv{loop};
  typename TestType::template hub<> hub;
  srv.fallback([&](auto& req) {
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

// ----- broker: channels with history, on one loop (threads_test.cpp: across loops) ----

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
const std::string sse_get = "GET /events HTTP/1.1\r\nHost: t\r\n\r\n";
std::string sse_resume(std::string_view last) { return "GET /events HTTP/1.1\r\nHost: t\r\nLast-Event-ID: " + std::string(last) + "\r\n\r\n"; }
std::string poll_get(std::string_view last = {}) {
  std::string r = "GET /poll HTTP/1.1\r\nHost: t\r\n";
  if (!last.empty()) r += "Last-Event-ID: " + std::string(last) + "\r\n";
  return r + "\r\n";
}
}  // namespace

TEMPLATE_TEST_CASE("broker: SSE frames carry ids, and a client that reconnects with Last-Event-ID gets what it missed",
          "[broker][sse]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  tether::broker broker;
  typename TestType::broker_endpoint endpoint{broker, loop};
  (void)srv.route("/events", [&](auto& req) { REQUIRE_FALSE(endpoint.subscribe(req, "news")); });
  const auto port = *srv.bind("127.0.0.1", 0);

  auto first = std::make_unique<tt::client>(port);
  first->send(sse_get);
  REQUIRE(tt::run_until(loop, [&] { return endpoint.streams() == 1; }));
  CHECK(broker.subscribers("news") == 1);
  CHECK(*broker.publish("news", "one") == 1);
  CHECK(*broker.publish("news", "two\nlines", "update") == 2);
  CHECK(*broker.publish("news", "three") == 3);
  REQUIRE(first->wait_for(loop, "id: 3\ndata: three\n\n"));
  CHECK(dechunk(first->data()).find("id: 1\ndata: one\n\nid: 2\nevent: update\ndata: two\ndata: lines\n\nid: 3\n") != std::string::npos);
  first->close();
  REQUIRE(tt::run_until(loop, [&] { return endpoint.streams() == 0; }));
  CHECK(broker.subscribers("news") == 0);

  REQUIRE(broker.publish("news", "four"));  // nobody listens: only the history has them
  REQUIRE(broker.publish("news", "five"));
  CHECK(broker.history_size("news") == 5);
  tt::client again(port);
  again.send(sse_resume("3"));
  REQUIRE(again.wait_for(loop, "id: 5\ndata: five\n\n"));
  REQUIRE(broker.publish("news", "six"));
  REQUIRE(again.wait_for(loop, "id: 6\ndata: six\n\n"));
  CHECK(again.occurrences("id: ") == 3);  // 4, 5, 6: nothing twice, nothing before 4
  CHECK(dechunk(again.data()) == "id: 4\ndata: four\n\nid: 5\ndata: five\n\nid: 6\ndata: six\n\n");
  CHECK(endpoint.stats().replayed == 2);
  CHECK(endpoint.stats().gaps == 0);

  SECTION("a Last-Event-ID that is not one of ours (another run, garbage) resumes nothing") {
    for (const char* bogus : {"99", "x", "-1", "18446744073709551616"}) {
      tt::client c(port);
      c.send(sse_resume(bogus));
      REQUIRE(tt::run_until(loop, [&] { return endpoint.streams() == 2; }));
      REQUIRE(broker.publish("news", "next"));
      REQUIRE(c.wait_for(loop, "data: next\n\n"));
      CHECK(c.occurrences("id: ") == 1);
      c.reset();
      REQUIRE(tt::run_until(loop, [&] { return endpoint.streams() == 1; }));
    }
  }
}

TEMPLATE_TEST_CASE("broker: a long-poll that comes back with the last id it saw gets what was published in between",
          "[broker][long_poll]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  tether::broker broker;
  typename TestType::broker_endpoint endpoint{broker, loop, {.poll_timeout = 150ms}};
  (void)srv.route("/poll", [&](auto& req) {
    REQUIRE_FALSE(endpoint.poll(req, "chat", tether::parse_message_id(tether::sse::last_event_id(req).value_or(""))));
  });
  const auto port = *srv.bind("127.0.0.1", 0);

  tt::client c(port);
  c.send(poll_get());
  REQUIRE(tt::run_until(loop, [&] { return endpoint.waiting() == 1; }));
  CHECK(broker.subscribers("chat") == 1);
  REQUIRE(broker.publish("chat", "hello"));
  REQUIRE(c.wait_for(loop, "\r\n\r\nhello"));
  CHECK(c.data().rfind("HTTP/1.1 200", 0) == 0);
  CHECK(c.data().find("Event-Id: 1\r\n") != std::string::npos);
  CHECK(c.data().find("Content-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
  REQUIRE(tt::run_until(loop, [&] { return endpoint.waiting() == 0 && broker.subscribers("chat") == 0; }));

  // Away between polls: two messages go by.
  REQUIRE(broker.publish("chat", "while away 1"));
  REQUIRE(broker.publish("chat", "while away 2"));
  c.clear();
  c.send(poll_get("1"));
  REQUIRE(c.wait_for(loop, "while away 1"));  // at once, from history
  CHECK(c.data().find("Event-Id: 2\r\n") != std::string::npos);
  CHECK(endpoint.waiting() == 0);
  c.clear();
  c.send(poll_get("2"));
  REQUIRE(c.wait_for(loop, "while away 2"));
  CHECK(c.data().find("Event-Id: 3\r\n") != std::string::npos);
  c.clear();
  c.send(poll_get("3"));  // up to date: held, then the deadline
  REQUIRE(tt::run_until(loop, [&] { return endpoint.waiting() == 1; }));
  REQUIRE(c.wait_for(loop, "HTTP/1.1 204 No Content"));
  CHECK(endpoint.waiting() == 0);
  CHECK(broker.subscribers("chat") == 0);
  CHECK(endpoint.stats().replayed == 2);
}

TEMPLATE_TEST_CASE("broker: a subscriber of several channels gets each of their messages once, in id order", "[broker]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  tether::broker broker;
  typename TestType::broker_endpoint endpoint{broker, loop};
  (void)srv.route("/events", [&](auto& req) { REQUIRE_FALSE(endpoint.subscribe(req, {"a", "b"})); });
  (void)srv.route("/poll", [&](auto& req) {
    REQUIRE_FALSE(endpoint.poll(req, {"b", "c"}, tether::parse_message_id(tether::sse::last_event_id(req).value_or(""))));
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client s(port);
  s.send(sse_get);
  REQUIRE(tt::run_until(loop, [&] { return endpoint.streams() == 1; }));
  for (auto [ch, data] : {std::pair{"a", "a1"}, {"c", "c1"}, {"b", "b1"}, {"a", "a2"}, {"b", "b2"}})
    REQUIRE(broker.publish(ch, data));
  REQUIRE(s.wait_for(loop, "data: b2\n\n"));
  CHECK(dechunk(s.data()) == "id: 1\ndata: a1\n\nid: 3\ndata: b1\n\nid: 4\ndata: a2\n\nid: 5\ndata: b2\n\n");
  CHECK(s.occurrences("c1") == 0);
  CHECK(broker.subscribers("a") == 1);
  CHECK(broker.subscribers("b") == 1);
  CHECK(broker.subscribers("c") == 0);

  tt::client p(port);  // polls {b, c} from id 1: c1 (2), then b1 (3), then b2 (5)
  for (auto [last, want] : {std::pair{"1", "c1"}, {"2", "b1"}, {"3", "b2"}}) {
    p.clear();
    p.send(poll_get(last));
    REQUIRE(p.wait_for(loop, std::string("\r\n\r\n") + want));
  }
  s.reset();
  REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("a") == 0 && broker.subscribers("b") == 0; }));
}

TEMPLATE_TEST_CASE("broker: a channel's cap answers 503 with Retry-After, and admits again once someone leaves",
          "[broker][cap]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  std::vector<std::pair<std::string, std::size_t>> left;  // outlive the endpoint: its destructor leaves
  std::vector<std::pair<std::string, std::size_t>> joined;
  tether::broker broker{{.max_subscribers = 2}};
  typename TestType::broker_endpoint endpoint{broker, loop, {.retry_after = 7s}};
  endpoint.on_leave([&](std::string_view ch, std::size_t n) { left.emplace_back(std::string(ch), n); });
  endpoint.on_join([&](std::string_view ch, std::size_t n) { joined.emplace_back(std::string(ch), n); });
  std::vector<std::error_code> results;
  (void)srv.route("/events", [&](auto& req) { results.push_back(endpoint.subscribe(req, "room")); });
  (void)srv.route("/poll", [&](auto& req) { results.push_back(endpoint.poll(req, "room", std::nullopt)); });
  const auto port = *srv.bind("127.0.0.1", 0);

  tt::client a(port), b(port), c(port), d(port);
  a.send(sse_get);
  b.send(poll_get());  // a held long-poll is a subscriber too
  REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("room") == 2; }));
  c.send(sse_get);
  REQUIRE(c.wait_for(loop, "\r\n\r\n"));
  CHECK(c.data().rfind("HTTP/1.1 503 Channel full\r\n", 0) == 0);
  CHECK(c.data().find("Retry-After: 7\r\n") != std::string::npos);
  REQUIRE(results.size() == 3);
  CHECK(results[2] == tether::errc::channel_full);
  CHECK(broker.subscribers("room") == 2);
  CHECK(endpoint.stats().rejected == 1);
  CHECK(joined == std::vector<std::pair<std::string, std::size_t>>{{"room", 1}, {"room", 2}});

  a.reset();  // leaves at once
  REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("room") == 1; }));
  CHECK(left == std::vector<std::pair<std::string, std::size_t>>{{"room", 1}});
  d.send(sse_get);
  REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("room") == 2; }));
  CHECK_FALSE(results.back());

  SECTION("a per-channel cap overrides the broker's") {
    REQUIRE_FALSE(broker.set_max_subscribers("room", 3));
    tt::client e(port);
    e.send(sse_get);
    REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("room") == 3; }));
  }
}

TEMPLATE_TEST_CASE("broker: channel names, history bounds, gaps and the channel registry", "[broker]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  tether::broker broker{{.history = 3, .max_channels = 3, .max_name = 8}};
  typename TestType::broker_endpoint endpoint{broker, loop};
  std::string channel;
  std::vector<std::error_code> results;
  (void)srv.route("/events", [&](auto& req) { results.push_back(endpoint.subscribe(req, channel)); });
  const auto port = *srv.bind("127.0.0.1", 0);

  SECTION("bad names: 400 from a subscription, invalid_argument from publish") {
    for (std::string bad : {std::string(), std::string("123456789"), std::string("a\nb"), std::string("a\0b", 3)}) {
      channel = bad;
      tt::client c(port);
      c.send(sse_get);
      REQUIRE(c.wait_for(loop, "\r\n\r\n"));
      CHECK(c.data().rfind("HTTP/1.1 400", 0) == 0);
      CHECK(results.back() == tether::errc::invalid_argument);
      CHECK(broker.publish(bad, "x").error() == tether::errc::invalid_argument);
    }
    CHECK(broker.publish("ok", "x", "two\nlines").error() == tether::errc::invalid_argument);
    CHECK(broker.channels() == 0);
  }
  SECTION("history keeps the newest messages; a resume past them counts a gap") {
    for (int i = 1; i <= 5; ++i) REQUIRE(broker.publish("h", "m" + std::to_string(i)));
    CHECK(broker.history_size("h") == 3);
    channel = "h";
    tt::client c(port);
    c.send(sse_resume("1"));  // 2 is gone; 3, 4, 5 are there
    REQUIRE(c.wait_for(loop, "id: 5\ndata: m5\n\n"));
    CHECK(dechunk(c.data()) == "id: 3\ndata: m3\n\nid: 4\ndata: m4\n\nid: 5\ndata: m5\n\n");
    CHECK(c.occurrences("id: ") == 3);
    CHECK(endpoint.stats().gaps == 1);
  }
  SECTION("channels come and go by name; at max_channels an idle one makes room, a busy one does not") {
    REQUIRE(broker.publish("c1", "x"));
    REQUIRE(broker.publish("c2", "x"));
    channel = "c3";
    tt::client held3(port);
    held3.send(sse_get);
    REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("c3") == 1; }));
    CHECK(broker.channels() == 3);
    REQUIRE(broker.publish("c4", "x"));  // replaces c1, the idle channel with the oldest message
    CHECK(broker.channels() == 3);
    CHECK(broker.history_size("c1") == 0);
    CHECK(broker.history_size("c2") == 1);
    channel = "c2";
    tt::client held2(port);
    held2.send(sse_get);
    REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("c2") == 1; }));
    REQUIRE(broker.publish("c5", "x"));  // replaces c4
    channel = "c5";
    tt::client held5(port);
    held5.send(sse_get);
    REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("c5") == 1; }));
    CHECK(broker.publish("c6", "x").error() == tether::errc::too_many_channels);  // all three busy
    channel = "c7";
    tt::client refused(port);
    refused.send(sse_get);
    REQUIRE(refused.wait_for(loop, "\r\n\r\n"));
    CHECK(refused.data().rfind("HTTP/1.1 503 Too many channels", 0) == 0);
    CHECK(results.back() == tether::errc::too_many_channels);
  }
}

TEST_CASE("broker: history expires by age", "[broker]") {
  tether::broker broker{{.history = 10, .history_ttl = 30ms}};
  REQUIRE(broker.publish("t", "old"));
  CHECK(broker.history_size("t") == 1);
  std::this_thread::sleep_for(40ms);  // the age is the thing under test
  REQUIRE(broker.publish("t", "new"));
  CHECK(broker.history_size("t") == 1);
}

TEMPLATE_TEST_CASE("broker: subscribers who vanish leave at once; a destroyed endpoint ends streams and answers polls",
          "[broker][close]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  tether::broker broker;
  std::uint16_t port = 0;
  const std::size_t fds_before = tt::open_fds();
  {
    TestType srv{loop};
    auto endpoint = std::make_unique<typename TestType::broker_endpoint>(broker, loop);
    (void)srv.route("/events", [&](auto& req) { REQUIRE_FALSE(endpoint->subscribe(req, "x")); });
    (void)srv.route("/poll", [&](auto& req) { REQUIRE_FALSE(endpoint->poll(req, "x", std::nullopt)); });
    port = *srv.bind("127.0.0.1", 0);
    std::vector<std::unique_ptr<tt::client>> streams, polls;
    for (int i = 0; i < 30; ++i) {
      streams.push_back(std::make_unique<tt::client>(port));
      streams.back()->send(sse_get);
      polls.push_back(std::make_unique<tt::client>(port));
      polls.back()->send(poll_get());
    }
    REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("x") == 60; }));
    for (int i = 0; i < 30; i += 3) {  // a third of each vanish: RST and FIN alternately
      if (i % 2) {
        streams[i]->reset();
        polls[i]->reset();
      } else {
        streams[i]->close();
        polls[i]->close();
      }
    }
    REQUIRE(tt::run_until(loop, [&] { return broker.subscribers("x") == 40; }));
    CHECK(endpoint->streams() == 20);
    CHECK(endpoint->waiting() == 20);
    REQUIRE(broker.publish("x", "to the rest"));
    for (int i = 0; i < 30; ++i) {
      if (i % 3 == 0) continue;
      REQUIRE(streams[i]->wait_for(loop, "data: to the rest\n\n"));
      REQUIRE(polls[i]->wait_for(loop, "\r\n\r\nto the rest"));
    }
    CHECK(endpoint->stats().failed == 0);
    CHECK(endpoint->stats().delivered == 40);
    for (int i = 0; i < 30; ++i)  // hold them again
      if (i % 3) polls[i]->send(poll_get("1"));
    REQUIRE(tt::run_until(loop, [&] { return endpoint->waiting() == 20; }));
    endpoint.reset();  // streams end cleanly, polls get 204
    CHECK(broker.subscribers("x") == 0);
    for (int i = 0; i < 30; ++i) {
      if (i % 3 == 0) continue;
      REQUIRE(streams[i]->wait_for(loop, "0\r\n\r\n"));
      REQUIRE(polls[i]->wait_for(loop, "HTTP/1.1 204"));
    }
  }
  REQUIRE(tt::run_until(loop, [&] { return tt::open_fds() == fds_before; }));
  CHECK(tt::close_wait_sockets(port) == 0);
}

TEMPLATE_TEST_CASE("broker: a subscriber that joins while messages are on their way to its loop gets each exactly once",
          "[broker][sse]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  tether::broker broker;
  typename TestType::broker_endpoint endpoint{broker, loop};
  (void)srv.route("/events", [&](auto& req) { REQUIRE_FALSE(endpoint.subscribe(req, "x")); });
  // Publishes first: the message is queued for this loop (which already has a subscriber
  // on x) and is in history, so the resume replays it and the queue brings it again.
  (void)srv.route("/late", [&](auto& req) {
    REQUIRE(broker.publish("x", "in flight"));
    REQUIRE_FALSE(endpoint.subscribe(req, "x"));
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client early(port);
  early.send(sse_get);
  REQUIRE(tt::run_until(loop, [&] { return endpoint.streams() == 1; }));
  REQUIRE(broker.publish("x", "before"));
  REQUIRE(early.wait_for(loop, "data: before\n\n"));
  tt::client late(port);
  late.send("GET /late HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 1\r\n\r\n");
  REQUIRE(late.wait_for(loop, "data: in flight\n\n"));
  REQUIRE(early.wait_for(loop, "data: in flight\n\n"));
  REQUIRE(broker.publish("x", "after"));
  REQUIRE(late.wait_for(loop, "data: after\n\n"));
  CHECK(dechunk(late.data()) == "id: 2\ndata: in flight\n\nid: 3\ndata: after\n\n");
  REQUIRE(early.wait_for(loop, "data: after\n\n"));
  CHECK(dechunk(early.data()) == "id: 1\ndata: before\n\nid: 2\ndata: in flight\n\nid: 3\ndata: after\n\n");
}

TEMPLATE_TEST_CASE("broker: relayed ids (external_ids) skip duplicates, and a Last-Event-ID ahead of this broker is trusted",
          "[broker][relay]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  tether::broker broker{{.history = 8, .external_ids = true}};
  typename TestType::broker_endpoint endpoint{broker, loop};
  (void)srv.route("/events", [&](auto& req) { REQUIRE_FALSE(endpoint.subscribe(req, "news")); });
  const auto port = *srv.bind("127.0.0.1", 0);

  CHECK(broker.publish("news", "local").error() == tether::errc::invalid_argument);  // ids come from elsewhere
  CHECK(broker.relay(0, "news", "zero").error() == tether::errc::invalid_argument);
  CHECK(*broker.relay(100, "news", "a") == 100);
  CHECK(*broker.relay(250, "news", "b", "update") == 250);
  CHECK(*broker.relay(250, "news", "b again") == 0);  // a duplicate: skipped
  CHECK(*broker.relay(120, "news", "late") == 0);     // older than the newest: skipped
  CHECK(broker.relay(260, "bad\nname", "x").error() == tether::errc::invalid_argument);
  CHECK(broker.last_id() == 260);  // a relayed id counts as seen even when refused
  CHECK(broker.history_size("news") == 2);

  tt::client resumed(port);  // saw 100: gets 250 from history
  resumed.send(sse_resume("100"));
  REQUIRE(resumed.wait_for(loop, "id: 250\nevent: update\ndata: b\n\n"));
  // Saw 400, given by another process this broker has not heard from yet: gets nothing
  // up to 400 when those messages arrive, then what follows.
  tt::client ahead(port);
  ahead.send(sse_resume("400"));
  REQUIRE(tt::run_until(loop, [&] { return endpoint.streams() == 2; }));
  CHECK(*broker.relay(300, "news", "c") == 300);
  CHECK(*broker.relay(400, "news", "d") == 400);
  CHECK(*broker.relay(500, "news", "e") == 500);
  REQUIRE(ahead.wait_for(loop, "id: 500\ndata: e\n\n"));
  REQUIRE(resumed.wait_for(loop, "id: 500\ndata: e\n\n"));
  CHECK(dechunk(ahead.data()) == "id: 500\ndata: e\n\n");
  CHECK(dechunk(resumed.data()) == "id: 250\nevent: update\ndata: b\n\nid: 300\ndata: c\n\nid: 400\ndata: d\n\nid: 500\ndata: e\n\n");
}
