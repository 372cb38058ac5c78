// fuzz/fuzz_server.cpp - libFuzzer target: raw bytes from a real TCP client into a real
// tether server, in one process, on 127.0.0.1.
//
// Each input is one connection. Its last bytes (FuzzedDataProvider takes integers from the
// end) choose how the rest is cut into writes, what the handlers do with the requests,
// and how the client leaves; the rest is what the client sends. A seed of plain HTTP
// therefore stays plain HTTP at the front.
//
//   handlers: reply at once; hold and never answer; stream (start + a chunk) and stay
//             open; hold, then answer late (after the client's last write); stream, then
//             end late; throw; reply from a static route (router + runtime routes too).
//   client:   FIN (close), RST (SO_LINGER {1, 0}), half-close (shutdown(SHUT_WR), read
//             until the server closes), or a polite end (read until the server closes,
//             then close); reading the server's replies or leaving them unread.
//
// After every input, with the loop run until nothing more happens (bounded), it aborts
// unless: the connection's close callback ran exactly once if any handler ran (never if
// none did) and never for a connection of an earlier input; the server tracks no
// connection; the process has exactly the descriptors it had before the input; every
// handle the handlers kept reports the exchange over. Built with -fsanitize=fuzzer and
// ASan + UBSan (fuzz/meson.build), which add: no crash, no leak, no undefined behaviour.
//
// Built with -DTETHER_FUZZ_LEAN (fuzz_server_lean), the server is the lean engine's
// (docs/engine.md), with the same handlers; its static routes are runtime routes there.
#include <tether/tether.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace {

#ifdef TETHER_FUZZ_LEAN
using server_t = tether::lean_server;
#else
using server_t = tether::server;
#endif
using request_t = server_t::request;
using handle_t = server_t::request_handle;

enum class behaviour : std::uint8_t { reply, hold, stream, hold_late_reply, stream_late_end, throw_, count };
enum class leaving : std::uint8_t { fin, rst, half_close, polite, count };

// What one input did; checked when it is over.
struct run_state {
  std::vector<behaviour> plan;  // cycled over the requests of the connection
  std::size_t requests = 0;
  int handlers = 0;
  int close_callbacks = 0;
  std::vector<handle_t> held;      // hold, hold_late_reply
  std::vector<handle_t> streams;   // stream, stream_late_end
  std::vector<handle_t> late_reply;
  std::vector<handle_t> late_end;
};

run_state* current = nullptr;  // the input being run; close callbacks check they belong to it
int stray_close_callbacks = 0;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_server: invariant broken: %s\n", what);
  std::abort();
}

std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

// Reads what the server request exposes, so that its accessors run on hostile input.
std::size_t touch(request_t& req) {
  std::size_t n = req.uri().size() + req.path().size() + req.host().size() + req.body().size();
  if (auto q = req.query()) n += q->size();
  for (auto h : req.input_headers()) n += h.name.size() + h.value.size();
  if (auto v = req.input_headers().find("Content-Type")) n += v->size();
  n += static_cast<std::size_t>(req.version().first) + static_cast<std::size_t>(req.method());
  return n;
}

void handle(request_t& req) {
  run_state& s = *current;
  ++s.handlers;
  (void)req.connection().on_close([](const tether::close_event& e) noexcept {
    if (current == nullptr) {
      ++stray_close_callbacks;
      return;
    }
    ++current->close_callbacks;
    if (to_string(e.reason).empty()) fail("a close reason without a name");
  });
  const std::size_t seen = touch(req);
  const behaviour b = s.plan.empty() ? behaviour::reply : s.plan[s.requests++ % s.plan.size()];
  switch (b) {
    case behaviour::reply:
      (void)req.reply(200, std::to_string(seen));
      break;
    case behaviour::hold:
      s.held.push_back(req.hold());
      break;
    case behaviour::stream:
      if (!req.start(200)) (void)req.send_chunk("first");
      s.streams.push_back(req.hold());
      break;
    case behaviour::hold_late_reply:
      s.late_reply.push_back(req.hold());
      break;
    case behaviour::stream_late_end:
      if (!req.start(200)) (void)req.send_chunk("first");
      s.late_end.push_back(req.hold());
      break;
    case behaviour::throw_:
      throw std::runtime_error("fuzz handler failure");
    case behaviour::count:
      break;
  }
}

struct fixture {
  tether::event_loop loop;
#ifdef TETHER_FUZZ_LEAN
  server_t srv{loop};  // no routers of static routes on the lean engine yet
#else
  server_t srv{loop, tether::router{
                         tether::get<"/static">([](request_t& req) { handle(req); }),
                         tether::post<"/static">([](request_t& req) { handle(req); }),
                     }};
#endif
  std::uint16_t port = 0;

  fixture() {
#ifdef TETHER_FUZZ_LEAN
    (void)srv.route("/static", tether::method::get | tether::method::post, [](request_t& req) { handle(req); });
#endif
    (void)srv.route("/runtime", tether::method::get | tether::method::put, [](request_t& req) { handle(req); });
    srv.fallback([](request_t& req) { handle(req); });
    const auto bound = srv.bind("127.0.0.1", 0);
    if (!bound) fail("cannot listen on 127.0.0.1");
    port = *bound;
  }
};

fixture& the_server() {
  static fixture* f = new fixture;  // lives for the process, like a real server
  return *f;
}

class client {
 public:
  explicit client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail("socket");
    // A source address of its own in 127.0.0.0/8 for every few thousand inputs: each has
    // its own ephemeral ports, so the closed connections' TIME_WAIT never exhausts them.
    static std::uint32_t inputs = 0;
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(0x7F000000u | (2 + (inputs++ / 4096) % 0xFFFF00u));
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) fail("bind of the client's address");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Non-blocking from the start: libFuzzer's SIGALRM (its -timeout watchdog) would
    // interrupt a blocking connect with EINTR.
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      if (errno != EINPROGRESS && errno != EINTR) connect_failed(errno);
      pollfd p{fd_, POLLOUT, 0};
      for (int i = 0; i < 1000 && ::poll(&p, 1, 10) <= 0; ++i) {
      }
      int error = 0;
      socklen_t len = sizeof error;
      if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
      if (error != 0 || !(p.revents & POLLOUT)) connect_failed(error != 0 ? error : ETIMEDOUT);
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  [[noreturn]] static void connect_failed(int error) {
    std::fprintf(stderr, "connect: %s\n", std::strerror(error));
    fail("the client cannot connect");
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client() { close(); }

  // Sends what the socket takes now; returns the bytes taken (0 when it takes none now),
  // or nothing once the server has gone (EPIPE, ECONNRESET).
  std::optional<std::size_t> send_some(const std::uint8_t* p, std::size_t n) {
    const ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (w >= 0) return static_cast<std::size_t>(w);
    if (errno == EAGAIN || errno == EINTR) return 0;
    return std::nullopt;
  }
  // Reads what is there; false once the server closed.
  bool drain() {
    char buf[16384];
    for (;;) {
      const ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r > 0) {
        received_ += static_cast<std::size_t>(r);
        continue;
      }
      if (r == 0) eof_ = true;
      else if (errno != EAGAIN && errno != EINTR) eof_ = true;
      return !eof_;
    }
  }
  void half_close() { ::shutdown(fd_, SHUT_WR); }
  void reset() {
    const linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool eof() const { return eof_; }
  std::size_t received() const { return received_; }

 private:
  int fd_ = -1;
  std::size_t received_ = 0;
  bool eof_ = false;
};

// Runs the loop without blocking until three passes in a row change nothing the client
// or the handlers can see (at most 200 passes).
void settle(tether::event_loop& loop, client* c, bool read) {
  int quiet = 0;
  for (int pass = 0; pass < 200 && quiet < 3; ++pass) {
    const auto before = std::make_tuple(current->handlers, current->close_callbacks, c ? c->received() : 0u,
                                        c ? c->eof() : false);
    event_base_loop(loop.native(), EVLOOP_NONBLOCK);
    if (c && read) c->drain();
    const auto after = std::make_tuple(current->handlers, current->close_callbacks, c ? c->received() : 0u,
                                       c ? c->eof() : false);
    quiet = before == after ? quiet + 1 : 0;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fixture& f = the_server();
  if (stray_close_callbacks != 0) fail("a close callback ran for a connection of an earlier input");
  FuzzedDataProvider in(data, size);
  run_state s;
  // Configuration from the end of the input; the rest, from the front, goes on the wire.
  const auto pieces = in.ConsumeIntegralInRange<std::size_t>(1, 8);
  const auto how = static_cast<leaving>(in.ConsumeIntegralInRange<int>(0, static_cast<int>(leaving::count) - 1));
  const bool read_replies = in.ConsumeBool();
  const auto plan_size = in.ConsumeIntegralInRange<std::size_t>(1, 4);
  for (std::size_t i = 0; i < plan_size; ++i)
    s.plan.push_back(static_cast<behaviour>(in.ConsumeIntegralInRange<int>(0, static_cast<int>(behaviour::count) - 1)));
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < pieces; ++i) cuts.push_back(in.ConsumeIntegral<std::uint16_t>());
  const std::vector<std::uint8_t> wire = in.ConsumeRemainingBytes<std::uint8_t>();

  current = &s;
  const std::size_t fds_before = open_fds();
  {
    client c(f.port);
    // The writes: piece i ends at cut i (modulo what is left), the last takes the rest.
    std::size_t at = 0;
    bool gone = false;
    for (std::size_t i = 0; i < pieces && at < wire.size() && !gone; ++i) {
      std::size_t len = wire.size() - at;
      if (i < cuts.size()) len = 1 + cuts[i] % len;
      for (int tries = 0; len > 0 && tries < 100 && !gone; ++tries) {
        const auto took = c.send_some(wire.data() + at, len);
        gone = !took;
        if (took) {
          at += *took;
          len -= *took;
        }
        settle(f.loop, &c, read_replies);
      }
    }
    // Late answers, after the client's last byte.
    for (auto& h : s.late_reply) (void)h.reply(200, "late");
    for (auto& h : s.late_end) {
      (void)h.send_chunk("late");
      (void)h.end();
    }
    settle(f.loop, &c, read_replies);

    switch (how) {
      case leaving::fin: c.close(); break;
      case leaving::rst: c.reset(); break;
      case leaving::half_close:
        c.half_close();
        settle(f.loop, &c, true);
        break;
      case leaving::polite:
        settle(f.loop, &c, true);
        break;
      case leaving::count: break;
    }
    // A client still connected reads until the server is done with it, then closes.
    settle(f.loop, &c, true);
  }
  settle(f.loop, nullptr, false);

  if (s.close_callbacks != (s.handlers > 0 ? 1 : 0)) {
    std::fprintf(stderr, "handlers %d, close callbacks %d\n", s.handlers, s.close_callbacks);
    fail("a connection that reached a handler must be reported closed exactly once (and one that did not, never)");
  }
  if (f.srv.tracked_connections() != 0) fail("the server still tracks a connection of a client that is gone");
  if (open_fds() != fds_before) {
    std::fprintf(stderr, "descriptors: %zu before, %zu after\n", fds_before, open_fds());
    fail("a descriptor was left open");
  }
  for (auto* list : {&s.held, &s.streams, &s.late_reply, &s.late_end})
    for (auto& h : *list)
      if (h.alive()) fail("a handle outlived its client");
  current = nullptr;
  return 0;  // the handles go with s: state the server kept for them is freed now
}
