// Example: routes declared at compile time.
//
// The paths, methods and handlers of this server are one tether::router, checked by the
// compiler (a second GET /todos would not compile) and installed as one libevent callback
// per path, each switching over the request's method at compile time. An unknown path
// gets 404; a known path with another method gets 405 and an Allow header.
//
// Usage: static_routes [--lean] [PORT]        (default 8080)
//        static_routes [--lean] --once        (serve one request to itself on a free port, exit)
//   --lean  the same router on the lean engine (tether::lean_server, docs/engine.md)
//   $ curl -i localhost:8080/hello
//   $ curl -i -d 'buy milk' localhost:8080/todos
//   $ curl -i localhost:8080/todos
//   $ curl -i -X DELETE localhost:8080/todos      (405, Allow: GET, HEAD, POST)
#include <tether/tether.hpp>

#include "support/self_client.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

// A route written as a type: path and methods are constants, the call operator answers.
struct health {
  static constexpr std::string_view path = "/health";
  static constexpr tether::method_set methods = tether::method::get;
  void operator()(auto& req) const { (void)req.reply(200, "ok\n"); }
};

namespace {

// One program for both engines: the router's handlers take `auto&`.
template <class Server>
int serve(bool once, std::uint16_t port) {
  std::vector<std::string> todos;  // the handlers' shared state, owned here
  auto api = tether::router{
      tether::get<"/hello">([](auto& req) { (void)req.reply(200, "hello\n"); }),
      tether::get<"/todos">([&todos](auto& req) {
        std::string list;
        for (const auto& t : todos) list += t + "\n";
        (void)req.reply(200, list);
      }),
      tether::post<"/todos">([&todos](auto& req) {
        todos.push_back(req.body().to_string());
        (void)req.reply(201, "added\n");
      }),
      health{},
  };

  tether::event_loop loop;
  Server server{loop, api};
  server.set_default_content_type("text/plain");
  const auto bound = server.bind(once ? "127.0.0.1" : "0.0.0.0", port);
  if (!bound) {
    std::fprintf(stderr, "static_routes: cannot listen on port %u: %s\n", unsigned{port}, bound.error().message().c_str());
    return 1;
  }
  if (once) {
    example::self_client c(*bound, "POST /todos HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\nbuy milk");
    const bool ok = c.wait_for(loop, "201 Created");
    std::printf("static_routes: %s\n", ok ? "a todo added" : "no reply");
    return ok ? 0 : 1;
  }
  tether::drain_on_signals stop{loop, server, std::chrono::seconds(10)};  // SIGTERM, Ctrl-C: drain, exit 0
  std::printf("static_routes: listening on port %u\n", unsigned{*bound});
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
    std::fprintf(stderr, "Usage: static_routes [--lean] [PORT] | [--lean] --once\n  e.g. static_routes 8080\n");
    return 1;
  }
  return lean ? serve<tether::lean_server>(once, port) : serve<tether::server>(once, port);
}
