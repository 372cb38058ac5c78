// Example: a live image stream (multipart/x-mixed-replace), the way IP cameras and the
// PECL example serve them. Open http://127.0.0.1:8081/ in a browser: the page's <img>
// points at /stream, and the browser replaces the picture with each part it receives,
// ten times a second. Each frame is rendered once and shared by every viewer;
// a viewer on a slow link skips frames (it always gets the newest) instead of queuing
// them, because the buffer policy bounds what it may hold.
//
// Usage: multipart_frames [--lean] [PORT]      (default 8081)
//        multipart_frames [--lean] --once      (serve one viewer on an ephemeral port, then exit)
//   --lean  the same stream on the lean engine (tether::lean_server, docs/engine.md)
#include <tether/tether.hpp>

#include "support/self_client.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

using namespace std::chrono_literals;
// Frames by reference (no copy per viewer); at most 256 KiB waiting per viewer.
// The server type is named once per engine; every helper comes from it
// (Server::multipart_stream, Server::hub): changing a policy changes this line only.
template <class Engine>
using server_on = tether::basic_server<tether::eager_close<>, tether::bounded<tether::reference_buffer, 256 * 1024, 64 * 1024>,
                                       tether::close_function<>, Engine>;

// A small SVG "camera frame": a clock hand that turns.
static std::string render(unsigned frame) {
  const int angle = static_cast<int>(frame * 6 % 360);
  return "<svg xmlns='http://www.w3.org/2000/svg' width='200' height='200'>"
         "<circle cx='100' cy='100' r='90' fill='none' stroke='black'/>"
         "<line x1='100' y1='100' x2='100' y2='20' stroke='red' stroke-width='4' transform='rotate(" +
         std::to_string(angle) + " 100 100)'/><text x='10' y='195'>frame " + std::to_string(frame) + "</text></svg>";
}

// The page at /: browsers render a multipart/x-mixed-replace image as it updates.
constexpr std::string_view page = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tether: multipart_frames</title>
<style>body { font-family: sans-serif; margin: 2em; }</style></head>
<body>
<h1>multipart_frames</h1>
<p>A live <code>multipart/x-mixed-replace</code> stream: each part replaces the picture.</p>
<img id="camera" src="/stream" width="200" height="200" alt="live frames from /stream">
</body></html>
)";

// One program for both engines.
template <class Server>
int serve(bool once, std::uint16_t port) {
  tether::event_loop loop;
  Server srv{loop};
  typename Server::template hub<typename Server::multipart_stream> viewers;
  unsigned frame = 0;

  (void)srv.route("/", tether::method::get, [](typename Server::request& req) {
    (void)req.output_headers().set("Content-Type", "text/html; charset=utf-8");
    (void)req.reply(200, page);
  });
  (void)srv.route("/stream", [&](typename Server::request& req) {
    if (auto v = tether::multipart_stream::start(req)) (void)viewers.subscribe(std::move(*v));  // the request decides the type
  });

  tether::timer camera{loop, [&] {
    const tether::shared_bytes picture(render(++frame));
    viewers.for_each([&](typename Server::multipart_stream& v) { (void)v.replace(picture, "image/svg+xml"); });
  }};
  camera.start_periodic(once ? 5ms : 100ms);

  auto bound = srv.bind(once ? "127.0.0.1" : "0.0.0.0", port);
  if (!bound) {
    std::fprintf(stderr, "multipart_frames: %s\n", bound.error().message().c_str());
    return 1;
  }
  if (once) {
    example::self_client c(*bound, "GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const bool got = c.wait_for(loop, "Content-Type: image/svg+xml\r\n");
    std::printf("%s\n", got ? "multipart_frames: received a frame" : "multipart_frames: no frame");
    return got ? 0 : 1;
  }
  tether::drain_on_signals stop{loop, srv, 10s};  // SIGTERM, Ctrl-C: end every stream, exit 0
  std::printf("multipart_frames: open http://127.0.0.1:%u/\n", unsigned{*bound});
  std::fflush(stdout);
  loop.run();
  return 0;
}

int main(int argc, char** argv) {
  const bool lean = example::take_flag(argc, argv, "--lean");  // the rest as without it
  const bool once = argc > 1 && std::string_view(argv[1]) == "--once";
  const std::uint16_t port = once ? 0 : example::port_arg(argc, argv, 1, "8081");
  if (!once && port == 0) return 1;
  return lean ? serve<server_on<tether::lean_engine>>(once, port) : serve<server_on<tether::evhttp_engine>>(once, port);
}
