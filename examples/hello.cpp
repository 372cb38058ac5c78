// Example: the smallest useful tether server, and the one bench/ measures against C.
//
// Answers every path with 200 "hello" (text/plain) on keep-alive connections.
//
// Usage: hello [--fast] [--lean] [--threads N] [PORT]       (default 8080)
//   --fast       the same server with tether's opt-in fast policies (see docs/performance.md)
//   --lean       the same handler on the lean engine, tether's own HTTP/1.1 core
//                (tether::lean_server, docs/engine.md); with --threads too
//   --threads N  N loops on N threads sharing PORT, connections balanced between them
//                (a tether::server_group, docs/scaling.md); 0 means one per core.
//                Without it: one loop on the main thread.
// SIGTERM or Ctrl-C drains it (docs/drain.md): replies in progress finish, idle
// connections close, and it exits with status 0.
//
// It includes only the headers it uses (docs/install.md, "Include what you use"): one
// loop and one server need tether/event_loop.hpp and tether/server.hpp; the rest is for
// --fast, --lean, --threads and the drain.
#include <tether/drain_on_signals.hpp>
#include <tether/duration.hpp>
#include <tether/event_loop.hpp>
#include <tether/lean_server.hpp>
#include <tether/memory_policy.hpp>
#include <tether/server.hpp>
#include <tether/server_group.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

template <class Server>
void setup(Server& server, bool fast) {
  server.cache_date_header(fast);
  // One handler for both engines: `auto&` is tether::request or the lean server's request.
  server.fallback([](auto& req) {
    (void)req.output_headers().add("Content-Type", "text/plain");
    (void)req.reply(200, "hello");
  });
}

// One server on this thread's loop until SIGTERM or SIGINT drained it.
template <class Server>
int serve(tether::event_loop& loop, std::uint16_t port, bool fast) {
  Server server{loop};
  setup(server, fast);
  if (auto bound = server.bind("127.0.0.1", port); !bound) {
    std::fprintf(stderr, "hello: %s\n", bound.error().message().c_str());
    return 1;
  }
  tether::drain_on_signals stop{loop, server, tether::seconds(10)};
  loop.run();
  return 0;
}

// N loops on N threads sharing the port (a server group, balanced accepts) until SIGTERM
// or SIGINT drained every loop.
template <class Server>
int serve_group(const tether::group_options& options, std::uint16_t port, bool fast) {
  tether::basic_server_group<Server> group{options};
  auto bound = group.start("127.0.0.1", port, [fast](Server& server) { setup(server, fast); });
  if (!bound) {
    std::fprintf(stderr, "hello: %s\n", bound.error().message().c_str());
    return 1;
  }
  group.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool fast = false;
  bool lean = false;
  long threads = -1;  // -1: no group, one loop on this thread
  const char* port_text = "8080";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg{argv[i]};
    if (arg == "--fast") {
      fast = true;
    } else if (arg == "--lean") {
      lean = true;
    } else if (arg == "--threads" && i + 1 < argc) {
      char* end = nullptr;
      threads = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || threads < 0 || threads > 1024) {
        std::puts("Invalid thread count");
        return 1;
      }
    } else {
      port_text = argv[i];
    }
  }
  const auto port = tether::parse_port(port_text);
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
  const tether::loop_options loop_options{.epoll_changelist = fast};

  if (threads >= 0) {
    const tether::group_options options{
        .threads = static_cast<unsigned>(threads), .loop = loop_options, .signal_drain = tether::seconds(10)};
    return lean ? serve_group<tether::lean_server>(options, *port, fast)
                : serve_group<tether::server>(options, *port, fast);
  }

  tether::event_loop loop{loop_options};
  if (lean) return serve<tether::lean_server>(loop, *port, fast);
  return serve<tether::server>(loop, *port, fast);
}
