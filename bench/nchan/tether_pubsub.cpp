// bench/nchan/tether_pubsub.cpp - the tether side of bench/nchan/run: what nchan's
// eventsource subscriber and HTTP publisher do for one channel, on one loop.
//
//   GET  /sub   an SSE stream (text/event-stream) of every message published from now on
//   POST /pub   the body is the message: encoded once, written to every stream; 202
//
// Same work as nchan per message: one SSE frame with an id line, shared by all streams.
#include <tether/tether.hpp>

#include <cstdio>
#include <string>

// Fan-out: the frame is encoded once and every stream references it (the policy
// bench/sse_scale measures as tether's best for SSE).
using server = tether::basic_server<tether::eager_close<>, tether::reference_buffer>;
using sse_stream = tether::basic_sse_stream<server::config>;

int main(int argc, char** argv) {
  const auto port = tether::parse_port(argc > 1 ? argv[1] : "");
  if (!port) {
    std::fprintf(stderr, "usage: tether_pubsub PORT\n");
    return 2;
  }
  tether::event_loop loop;
  server srv{loop};
  srv.set_max_connections(tether::unlimited);  // the benchmark opens thousands of streams
  tether::hub<sse_stream> streams;
  std::uint64_t id = 0;

  (void)srv.route("/sub", [&](server::request& req) {
    if (auto s = sse_stream::start(req)) (void)streams.subscribe(std::move(*s));
  });
  (void)srv.route("/pub", tether::method::post, [&](server::request& req) {
    const std::string data = req.body().to_string();
    const std::string sid = std::to_string(++id);
    auto frame = tether::sse::encode({.id = sid, .data = data});
    if (!frame) return (void)req.reply(400);
    (void)streams.publish(*frame);
    (void)req.reply(202);
  });
  if (!srv.bind("127.0.0.1", *port)) return 1;
  std::printf("tether_pubsub: port %u\n", unsigned{*port});
  std::fflush(stdout);
  loop.run();
}
