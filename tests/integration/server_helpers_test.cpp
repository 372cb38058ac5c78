// Helpers follow the server they serve (issue 12): a program names its server type once
// and takes server_t::sse_stream, server_t::hub<>, ... from it, or writes
// tether::sse_stream::start(req) and lets the request's type decide. The old spellings
// (basic_sse_stream<server_t::config>, ...) name the same types.
//
// The cases that serve run on both engines (issue 9): TEMPLATE_TEST_CASEs over TT_ENGINES,
// whose bodies are nearly all server-side code (the helpers' types are the point), with
// a reference_buffer server on each engine.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

using namespace std::chrono_literals;

namespace {

// Not the default server: reference_buffer, so a helper of tether::server's policies
// would not fit it.
using server_t = tether::basic_server<tether::eager_close<>, tether::reference_buffer>;
using config_t = server_t::config;

// The members name the families of this server's config...
static_assert(std::is_same_v<server_t::stream, tether::basic_stream<config_t>>);
static_assert(std::is_same_v<server_t::sse_stream, tether::basic_sse_stream<config_t>>);
static_assert(std::is_same_v<server_t::multipart_stream, tether::basic_multipart_stream<config_t>>);
static_assert(std::is_same_v<server_t::long_poll, tether::basic_long_poll<config_t>>);
static_assert(std::is_same_v<server_t::broker_endpoint, tether::basic_broker_endpoint<config_t>>);
static_assert(std::is_same_v<server_t::hub<>, tether::hub<tether::basic_sse_stream<config_t>>>);
static_assert(std::is_same_v<server_t::hub<server_t::multipart_stream>, tether::basic_hub<tether::basic_multipart_stream<config_t>>>);
// ...and tether::server's are the old aliases.
static_assert(std::is_same_v<tether::server::sse_stream, tether::sse_stream>);
static_assert(std::is_same_v<tether::server::stream, tether::stream>);
static_assert(std::is_same_v<tether::server::multipart_stream, tether::multipart_stream>);
static_assert(std::is_same_v<tether::server::long_poll, tether::long_poll>);
static_assert(std::is_same_v<tether::server::broker_endpoint, tether::broker_endpoint>);

// start() takes its type from the request, whichever family member it is called on.
template <class Family, class Request>
using started_t = std::remove_cvref_t<decltype(*Family::start(std::declval<Request&>()))>;
static_assert(std::is_same_v<started_t<tether::sse_stream, server_t::request>, server_t::sse_stream>);
static_assert(std::is_same_v<started_t<tether::multipart_stream, server_t::request>, server_t::multipart_stream>);
static_assert(std::is_same_v<started_t<tether::stream, server_t::request>, server_t::stream>);
static_assert(std::is_same_v<started_t<tether::sse_stream, tether::request>, tether::sse_stream>);
static_assert(std::is_same_v<started_t<server_t::sse_stream, server_t::request>, server_t::sse_stream>);

// The lean engine's servers name the same families, and start() takes their type from a
// lean request too (docs/engine.md).
using lean_t = tether::basic_server<tether::eager_close<>, tether::reference_buffer, tether::close_function<>,
                                    tether::lean_engine>;
using lean_config = lean_t::config;
static_assert(std::is_same_v<lean_t::multipart_stream, tether::basic_multipart_stream<lean_config>>);
static_assert(std::is_same_v<lean_t::long_poll, tether::basic_long_poll<lean_config>>);
static_assert(std::is_same_v<lean_t::broker_endpoint, tether::basic_broker_endpoint<lean_config>>);
static_assert(std::is_same_v<lean_t::hub<>, tether::hub<tether::basic_sse_stream<lean_config>>>);
static_assert(std::is_same_v<started_t<tether::sse_stream, lean_t::request>, lean_t::sse_stream>);
static_assert(std::is_same_v<started_t<tether::multipart_stream, lean_t::request>, lean_t::multipart_stream>);
static_assert(std::is_same_v<started_t<tether::stream, lean_t::request>, lean_t::stream>);
static_assert(std::is_same_v<tether::basic_long_poll<lean_config>::request_type, lean_t::request>);
static_assert(std::is_same_v<tether::basic_broker_endpoint<lean_config>::handle_type, lean_t::request_handle>);

}  // namespace

TEMPLATE_TEST_CASE("helpers: server_t::* and tether::*::start(req) serve a non-default server", "[helpers]",
                   TT_ENGINES) {
  INFO("engine " << TestType::name);
  using server_t = tt::server_on<TestType, tether::reference_buffer>;
  using config_t = typename server_t::config;
  tether::event_loop loop;
  server_t srv{loop};
  typename server_t::template hub<> events;                    // new: named once, from the server
  tether::hub<tether::basic_sse_stream<config_t>> old_events;  // old spelling, same type
  typename server_t::template hub<typename server_t::multipart_stream> viewers;
  typename server_t::long_poll room{loop, 5s};
  std::optional<typename server_t::stream> raw;

  (void)srv.route("/events", [&](typename server_t::request& req) {
    if (auto s = tether::sse_stream::start(req)) (void)events.subscribe(std::move(*s));  // deduced
  });
  (void)srv.route("/old", [&](typename server_t::request& req) {
    if (auto s = tether::basic_sse_stream<config_t>::start(req)) (void)old_events.subscribe(std::move(*s));
  });
  (void)srv.route("/frames", [&](auto& req) {  // a generic handler: the request still decides
    if (auto v = tether::multipart_stream::start(req)) (void)viewers.subscribe(std::move(*v));
  });
  (void)srv.route("/poll", [&](typename server_t::request& req) { (void)room.wait(req); });
  (void)srv.route("/raw", [&](typename server_t::request& req) {
    if (auto s = server_t::stream::start(req)) raw.emplace(std::move(*s));
  });
  const auto port = *srv.bind("127.0.0.1", 0);

  tt::client sse(port), old(port), frames(port), poll(port), plain(port);
  sse.send("GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
  old.send("GET /old HTTP/1.1\r\nHost: t\r\n\r\n");
  frames.send("GET /frames HTTP/1.1\r\nHost: t\r\n\r\n");
  poll.send("GET /poll HTTP/1.1\r\nHost: t\r\n\r\n");
  plain.send("GET /raw HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(loop, [&] {
    return events.size() == 1 && old_events.size() == 1 && viewers.size() == 1 && room.waiting() == 1 && raw;
  }));

  const auto tick = *tether::sse::encode({.id = "1", .data = "tick"});
  CHECK(events.publish(tick).delivered == 1);
  CHECK(old_events.publish(tick).delivered == 1);
  viewers.for_each([](typename server_t::multipart_stream& v) { (void)v.replace(tether::shared_bytes("frame"), "text/plain"); });
  CHECK(room.notify_all(std::string_view("said")) == 1);
  REQUIRE_FALSE(raw->write(std::string_view("bytes")));

  REQUIRE(sse.wait_for(loop, "id: 1\ndata: tick\n\n"));
  CHECK(sse.data().find("Content-Type: text/event-stream\r\n") != std::string::npos);
  REQUIRE(old.wait_for(loop, "id: 1\ndata: tick\n\n"));
  REQUIRE(frames.wait_for(loop, "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nframe"));
  CHECK(frames.data().find("Content-Type: multipart/x-mixed-replace;boundary=") != std::string::npos);
  REQUIRE(poll.wait_for(loop, "\r\n\r\nsaid"));
  REQUIRE(plain.wait_for(loop, "5\r\nbytes\r\n"));

  sse.reset();  // the hub of the new spelling hears the hang-up like any other
  REQUIRE(tt::run_until(loop, [&] { return events.empty(); }));
}

TEMPLATE_TEST_CASE("helpers: tether::stream::start_sized takes its type from the request", "[helpers]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  using server_t = tt::server_on<TestType, tether::reference_buffer>;
  tether::event_loop loop;
  server_t srv{loop};
  srv.fallback([](typename server_t::request& req) {
    auto s = tether::stream::start_sized(req, 2);
    static_assert(std::is_same_v<std::remove_cvref_t<decltype(*s)>, typename server_t::stream>);
    REQUIRE(s);
    REQUIRE_FALSE(s->write(std::string_view("ok")));
    REQUIRE_FALSE(s->end());
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "\r\n\r\nok"));
  CHECK(c.data().find("Content-Length: 2\r\n") != std::string::npos);
}
