// bench/loops/loops_hello.cpp - examples/hello's server on a server group, counting what
// each loop serves: the measured side of bench/loops/run.
//
// Usage: loops_hello PORT LOOPS [reuseport|shared]
//   reuseport  server_group::start(address, port): one SO_REUSEPORT socket per loop (the
//              kernel hashes each connection to a socket)
//   shared     one listening socket, a duplicate of it adopted by every loop's server
//              (every loop's listener watches the same queue; whoever accepts first wins)
//
// Every path answers 200 "hello" (text/plain), as examples/hello does. On SIGTERM the
// group drains and the program prints one line per loop on stdout:
//   loop I requests R connections C
#include <tether/tether.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

struct alignas(64) loop_counts {
  std::atomic<unsigned long> requests{0};
  std::atomic<unsigned long> connections{0};
};
std::array<loop_counts, 64> counts;

void setup(tether::server& server, unsigned index) {
  server.fallback([index, &server](tether::request& req) {
    loop_counts& c = counts[index];
    c.requests.store(c.requests.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // wrk keeps its connections open for the whole run: the most this loop had open at
    // once is how many of them it got.
    const unsigned long open = server.open_connections();
    if (open > c.connections.load(std::memory_order_relaxed)) c.connections.store(open, std::memory_order_relaxed);
    (void)req.output_headers().add("Content-Type", "text/plain");
    (void)req.reply(200, "hello");
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: loops_hello PORT LOOPS [reuseport|shared]\n");
    return 2;
  }
  const auto port = tether::parse_port(argv[1]);
  const unsigned loops = static_cast<unsigned>(std::atoi(argv[2]));
  const std::string_view mode = argc > 3 ? argv[3] : "reuseport";
  if (!port || loops < 1 || loops > counts.size() || (mode != "reuseport" && mode != "shared")) {
    std::fprintf(stderr, "usage: loops_hello PORT LOOPS [reuseport|shared]\n");
    return 2;
  }
  tether::server_group group{{.threads = loops, .signal_drain = std::chrono::seconds(5)}};
  if (mode == "reuseport") {
    auto bound = group.start("127.0.0.1", *port, [](tether::server& s, tether::event_loop&, unsigned i) { setup(s, i); });
    if (!bound) {
      std::fprintf(stderr, "loops_hello: %s\n", bound.error().message().c_str());
      return 1;
    }
  } else {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(*port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 1024) != 0) {
      std::perror("loops_hello: listen");
      return 1;
    }
    auto ec = group.start([fd](tether::server& s, tether::event_loop&, unsigned i) -> std::error_code {
      setup(s, i);
      auto adopted = s.accept(::dup(fd));
      return adopted ? std::error_code{} : adopted.error();
    });
    ::close(fd);
    if (ec) {
      std::fprintf(stderr, "loops_hello: %s\n", ec.message().c_str());
      return 1;
    }
  }
  std::printf("loops_hello: port %u, %u loops, %.*s\n", unsigned{*port}, loops, static_cast<int>(mode.size()), mode.data());
  std::fflush(stdout);
  group.join();  // until SIGTERM drained every loop
  for (unsigned i = 0; i < loops; ++i)
    std::printf("loop %u requests %lu connections %lu\n", i, counts[i].requests.load(), counts[i].connections.load());
  return 0;
}
