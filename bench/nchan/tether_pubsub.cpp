// bench/nchan/tether_pubsub.cpp - the tether side of bench/nchan/run: what nchan's
// eventsource subscriber and HTTP publisher do for one channel, on one loop.
//
//   GET  /sub   an SSE stream (text/event-stream) of every message published from now on
//   GET  /lp    a long-poll: held until the next message (200, the message) or 25 s (204)
//   POST /pub   the body is the message: encoded once, written to every stream; 202
//
// Usage: tether_pubsub PORT [LOOPS]     (LOOPS 1: one loop and a hub; more: a server
//                                         group of LOOPS loops sharing a broker)
//
// Same work as nchan per message: one SSE frame with an id line, shared by all streams.
#include <tether/tether.hpp>

#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

// Fan-out: the frame is encoded once and every stream references it (the policy
// bench/sse_scale measures as tether's best for SSE).
using server = tether::basic_server<tether::eager_close<>, tether::reference_buffer>;
using sse_stream = tether::basic_sse_stream<server::config>;

// LOOPS > 1: a server group, one loop per thread on one port (SO_REUSEPORT), and a
// broker: a publish on any loop is encoded once and delivered by every loop to its own
// streams (docs/scaling.md), as nchan's workers share a channel.
int serve_group(std::uint16_t port, unsigned loops) {
  using endpoint = tether::basic_broker_endpoint<server::config>;
  tether::broker channel{{.history = 1}};
  tether::basic_server_group<server> group{{.threads = loops}};
  auto bound = group.start("127.0.0.1", port, [&channel](server& srv, tether::event_loop& loop) {
    srv.set_max_connections(tether::unlimited);
    auto e = std::make_unique<endpoint>(channel, loop);
    (void)srv.route("/sub", [e = e.get()](server::request& req) { (void)e->subscribe(req, "bench"); });
    (void)srv.route("/lp", [e = e.get()](server::request& req) { (void)e->poll(req, "bench", std::nullopt); });
    (void)srv.route("/pub", tether::method::post, [&channel](server::request& req) {
      (void)req.reply(channel.publish("bench", req.body().to_string()) ? 202 : 400);
    });
    return e;
  });
  if (!bound) return 1;
  std::printf("tether_pubsub: port %u, %u loops\n", unsigned{*bound}, loops);
  std::fflush(stdout);
  group.join();
  return 0;
}

int main(int argc, char** argv) {
  const auto port = tether::parse_port(argc > 1 ? argv[1] : "");
  const unsigned loops = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 1;
  if (!port || loops < 1) {
    std::fprintf(stderr, "usage: tether_pubsub PORT [LOOPS]\n");
    return 2;
  }
  if (loops > 1) return serve_group(*port, loops);
  tether::event_loop loop;
  server srv{loop};
  srv.set_max_connections(tether::unlimited);  // the benchmark opens thousands of streams
  tether::hub<sse_stream> streams;
  tether::basic_long_poll<server::config> polls{loop, std::chrono::seconds(25)};  // nchan_subscriber_timeout 25s
  std::uint64_t id = 0;

  (void)srv.route("/sub", [&](server::request& req) {
    if (auto s = sse_stream::start(req)) (void)streams.subscribe(std::move(*s));
  });
  (void)srv.route("/lp", [&](server::request& req) { (void)polls.wait(req); });
  (void)srv.route("/pub", tether::method::post, [&](server::request& req) {
    const std::string data = req.body().to_string();
    const std::string sid = std::to_string(++id);
    auto frame = tether::sse::encode({.id = sid, .data = data});
    if (!frame) return (void)req.reply(400);
    (void)streams.publish(*frame);
    if (polls.waiting() != 0) (void)polls.notify_all(data);
    (void)req.reply(202);
  });
  if (!srv.bind("127.0.0.1", *port)) return 1;
  std::printf("tether_pubsub: port %u\n", unsigned{*port});
  std::fflush(stdout);
  loop.run();
}
