// Example: the close-callback server of PECL event's http_closecb.php, in tether.
//
// Every request gets a close callback that prints "_close_callback", a
// multipart/x-mixed-replace reply is started with one "<html>" chunk, and the reply
// stays open. Kill the client and the server prints "_close_callback"; no socket is
// left in CLOSE_WAIT. The PHP original re-enables EV_READ on the connection's
// bufferevent by hand; here the close policy (eager_close, the default) does it safely.
//
// Usage: http_closecb [--lean] [PORT]          (default 4242)
//   --lean  the same server on the lean engine (tether::lean_server, docs/engine.md)
//   $ nc -t 127.0.0.1 4242
//   GET / HTTP/1.0
//   Connection: close
//
//   then press Ctrl-C in nc: the server prints _close_callback.
//
// SIGTERM or Ctrl-C on the server drains it (docs/drain.md): each open reply gets its
// final chunk, each close callback runs (server_shutdown), and it exits with status 0.
#include <tether/tether.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace {

// One program for both engines: the handler takes `auto&`.
template <class Server>
int serve(std::uint16_t port) {
  tether::event_loop loop;
  Server server{loop};

  server.fallback([](auto& req) {
    (void)req.connection().on_close([](const tether::close_event&) noexcept {
      std::puts("_close_callback");
      std::fflush(stdout);  // also when stdout is a pipe
    });
    (void)req.output_headers().add("Content-Type", "multipart/x-mixed-replace;boundary=boundarydonotcross");
    (void)req.start(200, "OK");
    (void)req.send_chunk("<html>");
  });

  if (auto bound = server.bind("0.0.0.0", port); !bound) {
    std::fprintf(stderr, "http_closecb: cannot listen on port %u: %s\n", unsigned{port},
                 bound.error().message().c_str());
    return 1;
  }
  tether::drain_on_signals stop{loop, server, std::chrono::seconds(10)};
  loop.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool lean = argc > 1 && std::string_view(argv[1]) == "--lean";
  const int first = lean ? 2 : 1;
  const auto port = tether::parse_port(argc > first ? argv[first] : "4242");
  if (!port) {
    std::puts("Invalid port");
    return 1;
  }
  return lean ? serve<tether::lean_server>(*port) : serve<tether::server>(*port);
}
