// Measures what routing costs per request, for scripts/measure-routing (callgrind).
//
//   route_dispatch STYLE ROUTES REQUESTS
//
// Serves ROUTES paths (/r0 ... /r<ROUTES-1>; 1, 4 or 16) in one STYLE and sends REQUESTS
// keep-alive GETs, one after the other, for the last path (the worst case for libevent's
// list of paths):
//   runtime          server.route(path, handler)              (no method check)
//   runtime_methods  server.route(path, method::get, handler) (405 for other methods)
//   static           a router of ROUTES static GET routes      (switch over methods, 405)
//   gencb_switch     the alternative design, measured to justify the choice: no
//                    per-path callbacks, one fallback that matches the path itself with
//                    compile-time constants (ignoring percent-decoding, so a lower bound)
// Everything runs in this process without timers, so callgrind's counts for REQUESTS = 1
// and REQUESTS = 1 + K differ by K times the cost of one request.
#include <tether/tether.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace {

struct ok_handler {
  void operator()(auto& req) const { (void)req.reply(200, "ok"); }
};

template <std::size_t I>
constexpr auto path_of() {
  if constexpr (I < 10) {
    tether::fixed_string<3> s;
    s.chars[0] = '/', s.chars[1] = 'r', s.chars[2] = static_cast<char>('0' + I);
    return s;
  } else {
    tether::fixed_string<4> s;
    s.chars[0] = '/', s.chars[1] = 'r', s.chars[2] = '1', s.chars[3] = static_cast<char>('0' + I - 10);
    return s;
  }
}

template <std::size_t... I>
auto make_router(std::index_sequence<I...>) {
  return tether::router{tether::get<path_of<I>()>(ok_handler{})...};
}

// The alternative: a compile-time matcher behind evhttp's generic callback.
template <std::size_t N>
struct path_switch {
  template <std::size_t... I>
  static bool match(std::string_view p, std::index_sequence<I...>) {
    return ((p == path_of<I>().view()) || ...);
  }
  void operator()(auto& req) const {
    if (!match(req.path(), std::make_index_sequence<N>{})) {
      (void)req.send_error(404);
      return;
    }
    if (req.method() != tether::method::get && req.method() != tether::method::head) {
      (void)req.output_headers().add("Allow", "GET, HEAD");
      (void)req.reply(405);
      return;
    }
    (void)req.reply(200, "ok");
  }
};

template <std::size_t N>
bool setup(tether::server& srv, std::string_view style) {
  if (style == "static") return !srv.route(make_router(std::make_index_sequence<N>{}));
  if (style == "gencb_switch") {
    srv.fallback(path_switch<N>{});
    return true;
  }
  const bool methods = style == "runtime_methods";
  if (!methods && style != "runtime") return false;
  for (std::size_t i = 0; i < N; ++i) {
    const std::string path = "/r" + std::to_string(i);
    const auto ec = methods ? srv.route(path, tether::method::get, ok_handler{}) : srv.route(path, ok_handler{});
    if (ec) return false;
  }
  return true;
}

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return -1;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "Usage: route_dispatch runtime|runtime_methods|static|gencb_switch 1|4|16 REQUESTS\n");
    return 2;
  }
  const std::string_view style = argv[1];
  const int routes = std::atoi(argv[2]);
  const long requests = std::atol(argv[3]);

  tether::event_loop loop;
  tether::server srv{loop};
  const bool ok = routes == 1 ? setup<1>(srv, style) : routes == 4 ? setup<4>(srv, style)
                  : routes == 16 ? setup<16>(srv, style) : false;
  if (!ok || requests < 1) {
    std::fprintf(stderr, "route_dispatch: bad style, route count or request count\n");
    return 2;
  }
  const auto port = srv.bind("127.0.0.1", 0);
  if (!port) return 1;
  const int fd = connect_to(*port);
  if (fd < 0) return 1;

  const std::string request = "GET /r" + std::to_string(routes - 1) + " HTTP/1.1\r\nHost: b\r\n\r\n";
  char buf[4096];
  for (long i = 0; i < requests; ++i) {
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return 1;
    // One reply is a few dozen bytes ending in the body "ok"; read until it is complete.
    std::string got;
    for (int spins = 0; spins < 1000 && (got.size() < 2 || got.compare(got.size() - 2, 2, "ok") != 0); ++spins) {
      loop.run_once();
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    }
    if (got.find("HTTP/1.1 200") != 0) {
      std::fprintf(stderr, "route_dispatch: unexpected reply: %s\n", got.c_str());
      return 1;
    }
  }
  ::close(fd);
  std::printf("%s routes=%d requests=%ld: ok\n", std::string(style).c_str(), routes, requests);
  return 0;
}
