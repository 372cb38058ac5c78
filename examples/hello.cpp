// Example: the smallest useful tether server, and the one bench/ measures against C.
//
// Answers every path with 200 "hello" (text/plain) on keep-alive connections.
//
// Usage: hello [--fast] [PORT]       (default 8080)
//   --fast  the same server with tether's opt-in fast policies (see docs/performance.md)
#include <tether/tether.hpp>

#include <cstdio>
#include <string_view>

int main(int argc, char** argv) {
  const bool fast = argc > 1 && std::string_view{argv[1]} == "--fast";
  const int arg = fast ? 2 : 1;
  const auto port = tether::parse_port(argc > arg ? argv[arg] : "8080");
  if (!port) {
    std::puts("Invalid port");
    return 1;
  }

  // Process-wide and first: libevent must not have allocated anything yet.
  if (fast) {
    if (auto ec = tether::install_memory_policy<tether::pooled_memory<>>()) {
      std::fprintf(stderr, "hello: %s\n", ec.message().c_str());
      return 1;
    }
  }
  tether::event_loop loop{tether::loop_options{.epoll_changelist = fast}};
  tether::server server{loop};
  server.cache_date_header(fast);
  server.fallback([](tether::request& req) {
    req.output_headers().add("Content-Type", "text/plain");
    req.reply(200, "hello");
  });

  if (auto bound = server.bind("127.0.0.1", *port); !bound) {
    std::fprintf(stderr, "hello: %s\n", bound.error().message().c_str());
    return 1;
  }
  loop.run();
}
