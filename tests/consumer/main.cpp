// Serves one request on an ephemeral port from a client it makes itself, then exits 0.
// Includes what a hello server uses (docs/install.md, "Include what you use"), not the
// umbrella tether.hpp: each way builds this file once per CI run, the include way twice
// (install_list checks that every header is installed, header_check that each compiles on
// its own). The builds precompile these two headers (docs/install.md, "Faster builds").
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

int main() {
  tether::event_loop loop;
  tether::server srv{loop};
  bool served = false;
  srv.fallback([&](tether::request& req) {
    (void)req.reply(200, "hello from a consumer");
    served = true;
  });
  auto port = srv.bind("127.0.0.1", 0);
  if (!port) return 1;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(*port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return 2;
  const char req[] = "GET / HTTP/1.0\r\n\r\n";
  if (send(fd, req, sizeof req - 1, 0) < 0) return 3;
  for (int i = 0; i < 200 && !served; ++i) loop.run_for(std::chrono::milliseconds(10));
  loop.run_for(std::chrono::milliseconds(10));
  char buf[512] = {};
  const auto n = recv(fd, buf, sizeof buf - 1, 0);
  close(fd);
  std::printf("%s\n", n > 0 ? buf : "(nothing)");
  return served && std::strstr(buf, "hello from a consumer") ? 0 : 4;
}
