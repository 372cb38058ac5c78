// bench/hello_minimal.cpp - the smallest hello server: one loop, one server, one handler.
//
// examples/hello.cpp without its options (--fast, --threads, the drain on signals): what
// a program that serves "hello" pays to compile when it includes only what it uses
// (bench/compile_time's "hello minimal" row, docs/performance.md).
//
// Usage: hello_minimal PORT
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  const auto port = tether::parse_port(argc > 1 ? argv[1] : "");
  if (!port) {
    std::puts("usage: hello_minimal PORT");
    return 2;
  }
  tether::event_loop loop;
  tether::server server{loop};
  server.fallback([](tether::request& req) {
    (void)req.output_headers().add("Content-Type", "text/plain");
    (void)req.reply(200, "hello");
  });
  if (!server.bind("127.0.0.1", *port)) return 1;
  loop.run();
}
