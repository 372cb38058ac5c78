// Example: routes configured at run time.
//
// Paths known only once the program runs (from the command line here; from a config
// file or a plugin in real programs) are added one by one with server.route(). A route
// may take any method, or a set of methods (others get 405 with an Allow header); a
// fallback answers every path no route claims. Static routers (see static_routes.cpp)
// can be installed on the same server.
//
// Usage: runtime_routes [--lean] [PORT] [PATH=TEXT]...   (default 8080; GET PATH answers TEXT)
//        runtime_routes [--lean] --once                  (serve one request to itself, exit)
//   --lean  the same routes on the lean engine (tether::lean_server, docs/engine.md)
//   $ runtime_routes 8080 /motd=hello /version=1.0
//   $ curl -i localhost:8080/motd
//   $ curl -i -d 'ping' localhost:8080/echo
//   $ curl -i localhost:8080/echo                (405, Allow: POST, PUT)
//   $ curl -i localhost:8080/elsewhere           (the fallback's 404)
#include <tether/tether.hpp>

#include "support/self_client.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

namespace {

// One program for both engines: the handlers take `auto&`.
template <class Server>
int serve(bool once, std::uint16_t port, int argc, char** argv) {
  tether::event_loop loop;
  Server server{loop};
  server.set_default_content_type("text/plain");

  // One GET route per PATH=TEXT argument; the handler owns its copy of TEXT.
  for (int i = 2; i < argc; ++i) {
    const std::string_view spec = argv[i];
    const auto eq = spec.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      std::fprintf(stderr, "runtime_routes: expected PATH=TEXT, got %s\n", argv[i]);
      return 1;
    }
    const std::string path(spec.substr(0, eq));
    std::string text = std::string(spec.substr(eq + 1)) + "\n";
    if (auto ec = server.route(path, tether::method::get, [text](auto& req) { (void)req.reply(200, text); })) {
      std::fprintf(stderr, "runtime_routes: cannot route %s: %s\n", path.c_str(), ec.message().c_str());
      return 1;
    }
  }
  (void)server.route("/echo", tether::method::post | tether::method::put,
                     [](auto& req) { (void)req.reply(200, req.body().to_string()); });
  server.fallback([](auto& req) { (void)req.reply(404, "no route for " + std::string(req.path()) + "\n"); });

  const auto bound = server.bind(once ? "127.0.0.1" : "0.0.0.0", port);
  if (!bound) {
    std::fprintf(stderr, "runtime_routes: cannot listen on port %u: %s\n", unsigned{port}, bound.error().message().c_str());
    return 1;
  }
  if (once) {
    example::self_client c(*bound, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nping");
    const bool ok = c.wait_for(loop, "\r\n\r\nping");
    std::printf("runtime_routes: %s\n", ok ? "the echo came back" : "no reply");
    return ok ? 0 : 1;
  }
  tether::drain_on_signals stop{loop, server, std::chrono::seconds(10)};  // SIGTERM, Ctrl-C: drain, exit 0
  std::printf("runtime_routes: listening on port %u\n", unsigned{*bound});
  std::fflush(stdout);
  loop.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool lean = example::take_flag(argc, argv, "--lean");  // the rest as without it
  const bool once = argc > 1 && std::string_view(argv[1]) == "--once";
  const std::uint16_t port = once ? 0 : example::port_arg(argc, argv, 1, "8080");
  if (!once && port == 0) {
    std::fprintf(stderr,
                 "Usage: runtime_routes [--lean] [PORT] [PATH=TEXT]... | [--lean] --once\n  e.g. runtime_routes 8080 "
                 "/motd=hello\n");
    return 1;
  }
  return lean ? serve<tether::lean_server>(once, port, argc, argv) : serve<tether::server>(once, port, argc, argv);
}
