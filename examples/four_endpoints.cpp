// Example: the four endpoints of issue 12's new user, on one server: an SSE broadcast, a
// long-poll chat, a multipart stream and a JSON status. The server type is named once;
// every helper comes from it (server_t::hub<>, server_t::long_poll, ...) or takes its
// type from the request (tether::sse_stream::start(req)), so changing a policy is a
// one-line change. It includes only the headers it uses.
//
// Usage: four_endpoints [--lean] [PORT]   (default 8080; 0 picks a free port; the port is printed)
//        four_endpoints [--lean] --once   (ask /status on a free port, then exit)
//   --lean  the same endpoints on the lean engine (tether::lean_server, docs/engine.md)
//   $ curl -N localhost:8080/events                 # SSE: "tick" every second, and "chat"
//   $ curl localhost:8080/chat                      # long-poll: waits up to 25 s (204 if quiet)
//   $ curl -d 'hello' localhost:8080/chat           # answers the waiting polls, tells /events
//   $ curl -N localhost:8080/frames                 # multipart/x-mixed-replace SVG frames
//   $ curl localhost:8080/status                    # {"events":1,"waiting":0,"viewers":1,...}
// A client that goes away (curl killed, tab closed) leaves its hub or room at once.
// SIGTERM or Ctrl-C drains it (docs/drain.md): streams end cleanly, waiting polls get 503
// with Retry-After, and it exits with status 0.
#include <tether/drain_on_signals.hpp>
#include <tether/duration.hpp>  // 25s, 100ms: std::chrono's durations without all of <chrono>
#include <tether/event_loop.hpp>
#include <tether/hub.hpp>
#include <tether/lean_server.hpp>
#include <tether/long_poll.hpp>
#include <tether/multipart.hpp>
#include <tether/router.hpp>
#include <tether/server.hpp>
#include <tether/sse.hpp>
#include <tether/timer.hpp>

#include "support/self_client.hpp"

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

using namespace tether::literals;

// The one line that names the policies: events and frames are encoded once and shared by
// every client (reference_buffer); eager_close notices a vanished poller at once. The
// engine is the one choice left: evhttp (the default) or lean (--lean).
template <class Engine>
using server_on = tether::basic_server<tether::eager_close<>, tether::reference_buffer, tether::close_function<>, Engine>;

namespace {

std::string frame_svg(unsigned n) {
  return "<svg xmlns='http://www.w3.org/2000/svg' width='120' height='40'><text x='8' y='26'>frame " +
         std::to_string(n) + "</text></svg>";
}

}  // namespace

template <class server_t>
int serve(bool once, std::uint16_t port) {
  tether::event_loop loop;
  typename server_t::template hub<> events;                                    // SSE subscribers (server_t::sse_stream)
  typename server_t::template hub<typename server_t::multipart_stream> viewers;  // multipart viewers
  typename server_t::long_poll chat{loop, 25s};                                // held GET /chat requests
  std::uint64_t messages = 0;
  unsigned frames = 0;

  auto routes = tether::router{
      // SSE broadcast: every subscriber gets the same encoded bytes.
      tether::get<"/events">([&](auto& req) {
        if (auto s = tether::sse_stream::start(req)) (void)events.subscribe(std::move(*s));
      }),
      // Long-poll chat: GET waits for the next message; POST says one.
      tether::get<"/chat">([&](auto& req) { (void)chat.wait(req); }),
      tether::post<"/chat">([&](auto& req) {
        const std::string text = req.body().to_string();
        const std::string id = std::to_string(++messages);
        const std::size_t answered = chat.notify_all(std::string_view(text));
        if (auto event = tether::sse::encode({.id = id, .event = "chat", .data = text})) (void)events.publish(*event);
        (void)req.reply(200, "message " + id + " to " + std::to_string(answered) + " waiting\n");
      }),
      // Multipart stream: each viewer always gets the newest frame.
      tether::get<"/frames">([&](auto& req) {
        if (auto v = tether::multipart_stream::start(req)) (void)viewers.subscribe(std::move(*v));
      }),
      // JSON status.
      tether::get<"/status">([&](auto& req) {
        const std::string json = "{\"events\":" + std::to_string(events.size()) +
                                 ",\"waiting\":" + std::to_string(chat.waiting()) +
                                 ",\"viewers\":" + std::to_string(viewers.size()) +
                                 ",\"messages\":" + std::to_string(messages) + "}\n";
        (void)req.output_headers().set("Content-Type", "application/json");
        (void)req.reply(200, json);
      }),
  };
  server_t srv{loop, routes};

  tether::timer tick{loop, [&] {
    if (auto event = tether::sse::encode({.event = "tick", .data = std::to_string(++frames)})) (void)events.publish(*event);
  }};
  tick.start_periodic(1s);
  tether::timer camera{loop, [&] {
    const tether::shared_bytes picture(frame_svg(frames));
    viewers.for_each([&](typename server_t::multipart_stream& v) { (void)v.replace(picture, "image/svg+xml"); });
  }};
  camera.start_periodic(100ms);

  const auto bound = srv.bind(port == 0 ? "127.0.0.1" : "0.0.0.0", port);
  if (!bound) {
    std::fprintf(stderr, "four_endpoints: cannot listen on port %u: %s\n", unsigned{port}, bound.error().message().c_str());
    return 1;
  }
  if (once) {
    example::self_client c(*bound, "GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const bool ok = c.wait_for(loop, "{\"events\":0,\"waiting\":0,\"viewers\":0,\"messages\":0}\n");
    std::printf("four_endpoints: %s\n", ok ? "the status came back" : "no status");
    return ok ? 0 : 1;
  }
  tether::drain_on_signals stop{loop, srv, 10s};  // SIGTERM, Ctrl-C: drain, exit 0
  std::printf("four_endpoints: listening on port %u\n", unsigned{*bound});
  std::fflush(stdout);
  loop.run();
  return 0;
}

int main(int argc, char** argv) {
  const bool lean = example::take_flag(argc, argv, "--lean");  // the rest as without it
  const bool once = argc > 1 && std::string_view(argv[1]) == "--once";
  const std::string_view port_text = once ? "0" : argc > 1 ? argv[1] : "8080";
  const auto port = port_text == "0" ? tether::result<std::uint16_t>(std::uint16_t{0}) : tether::parse_port(port_text);
  if (!port) {
    std::fprintf(stderr, "Usage: four_endpoints [--lean] [PORT] | [--lean] --once\n");
    return 1;
  }
  return lean ? serve<server_on<tether::lean_engine>>(once, *port) : serve<server_on<tether::evhttp_engine>>(once, *port);
}
