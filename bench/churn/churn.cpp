// bench/churn/churn.cpp - the churn soak: N abrupt disconnects across every phase a
// connection can be in, times every way a client can leave, while another client keeps a
// keep-alive connection busy with GET /hello. One tether server, one event loop.
//
// Usage: churn [N]          (default 10000; bench/churn/run runs it and prints the table)
//
// Phases (the client leaves...):
//   connected   after connecting, before sending anything
//   head        with its request head half sent
//   body        with its body half sent (Content-Length: 1000, 100 bytes sent)
//   held        while the handler holds its request without replying
//   running     while the handler runs (the handler itself makes the client leave)
//   streaming   while a streamed reply is open (a chunk every 2 ms)
//   blocked     while the server's write is blocked (256 KiB queued to a reader that
//               does not read, both socket buffers shrunk)
//   idle        on an idle keep-alive connection, after its reply
//   pipelined   with a second request queued behind a held one
// Endings: RST (SO_LINGER {1, 0}), FIN (close, after reading what arrived), half-close
// (shutdown(SHUT_WR), then wait for the server to close), killed (a child process holding
// the connection is SIGKILLed with what the server sent unread: the kernel sends a RST
// when there is unread data, a FIN when there is none).
//
// Checked (exit status 1 if any fails): every connection that reached a handler got its
// close callback exactly once, and none that did not got one, also through the server's
// destruction; no socket of the server's port in CLOSE_WAIT; the process's descriptors
// back to where they were; RSS after malloc_trim within 2 MiB of where it was after
// warm-up (not checked under ASan: its quarantine keeps freed memory); the load client
// got every reply, all "200 hello", and was never disconnected.
#include <tether/tether.hpp>

#include "../../tests/support/loopback.hpp"

#include <malloc.h>
#include <poll.h>
#include <sys/wait.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CHURN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHURN_ASAN 1
#endif
#endif
#ifndef CHURN_ASAN
#define CHURN_ASAN 0
#endif

using namespace std::chrono_literals;

namespace {

enum class phase { connected, head, body, held, running, streaming, blocked, idle, pipelined, count };
enum class ending { rst, fin, half_close, killed, count };
constexpr std::array<const char*, 9> phase_names{"connected", "head", "body",    "held",     "running",
                                                 "streaming", "blocked", "idle", "pipelined"};
constexpr std::array<const char*, 4> ending_names{"RST", "FIN", "half-close", "killed"};

bool reaches_handler(phase p) { return p != phase::connected && p != phase::head && p != phase::body; }

struct record {
  phase p = phase::connected;
  ending e = ending::rst;
  bool handler_ran = false;
  int closes = 0;
  tether::close_reason reason = tether::close_reason::error;
  bool aborted = false;
  bool settled = false;
};

std::size_t rss_kib() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  std::size_t kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmRSS:", 6) == 0) kib = std::strtoul(line + 6, nullptr, 10);
  std::fclose(f);
  return kib;
}

void shrink(int fd, int option) {
  const int size = 4096;
  ::setsockopt(fd, SOL_SOCKET, option, &size, sizeof size);
}

int dial(std::uint16_t port, bool small_rcvbuf = false) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (small_rcvbuf) shrink(fd, SO_RCVBUF);  // before connecting: the window starts small
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// A child process that holds one client connection: it connects, sends `request`, waits
// (peeking, never reading) until `marker` arrived, tells the parent, and waits to be killed.
// It closes every descriptor it inherited first: the server's sockets must have no copy.
pid_t spawn_holder(std::uint16_t port, const std::string& request, const std::string& marker, bool small_rcvbuf,
                   int& ready_fd) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (::dup2(p[1], 3) != 3) ::_exit(5);
    ::close_range(4, ~0U, 0);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) ::_exit(2);
    if (small_rcvbuf) shrink(fd, SO_RCVBUF);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) ::_exit(2);
    if (!send_all(fd, request)) ::_exit(3);
    static char peeked[65536];
    for (int i = 0; !marker.empty() && i < 10000; ++i) {
      const ssize_t n = ::recv(fd, peeked, sizeof peeked, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0 && std::string_view(peeked, static_cast<std::size_t>(n)).find(marker) != std::string_view::npos) break;
      ::usleep(500);
    }
    if (::write(3, "r", 1) != 1) ::_exit(4);
    for (;;) ::pause();
  }
  ::close(p[1]);
  ready_fd = p[0];
  return pid;
}

// The load: a child process that sends GET /hello on one keep-alive connection, one
// after the other, until told to stop; it reports how many 200 "hello" replies it got and
// whether anything else happened.
struct load_client {
  pid_t pid = -1;
  int stop_fd = -1;    // parent closes it: stop
  int result_fd = -1;  // child writes "served errors"

  void start(std::uint16_t port) {
    int stop[2], result[2];
    if (::pipe2(stop, O_CLOEXEC) != 0 || ::pipe2(result, O_CLOEXEC) != 0) std::abort();
    pid = ::fork();
    if (pid < 0) std::abort();
    if (pid == 0) {
      if (::dup2(stop[0], 3) != 3 || ::dup2(result[1], 4) != 4) ::_exit(5);
      ::close_range(5, ~0U, 0);
      run(port);
    }
    ::close(stop[0]);
    ::close(result[1]);
    stop_fd = stop[1];
    result_fd = result[0];
  }
  [[noreturn]] static void run(std::uint16_t port) {
    long served = 0, errors = 0;
    const int fd = dial(port);
    if (fd < 0) errors = 1;
    const timeval patience{10, 0};  // a reply that never comes is an error, not a hang
    if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    static const char request[] = "GET /hello HTTP/1.1\r\nHost: load\r\n\r\n";
    static char buf[4096];
    while (fd >= 0) {
      pollfd stop{3, POLLIN, 0};
      if (::poll(&stop, 1, 0) != 0) break;
      if (!send_all(fd, request)) {
        ++errors;
        break;
      }
      std::size_t have = 0;
      bool done = false;
      while (!done) {
        const ssize_t n = ::recv(fd, buf + have, sizeof buf - have, 0);
        if (n <= 0) break;
        have += static_cast<std::size_t>(n);
        const std::string_view got(buf, have);
        if (got.size() >= 5 && got.substr(got.size() - 5) == "hello") done = true;
        if (have == sizeof buf) break;
      }
      if (!done || std::string_view(buf, have).rfind("HTTP/1.1 200 OK", 0) != 0) {
        ++errors;
        break;
      }
      ++served;
    }
    char line[64];
    const int len = std::snprintf(line, sizeof line, "%ld %ld\n", served, errors);
    if (::write(4, line, static_cast<std::size_t>(len)) != len) ::_exit(6);
    ::_exit(0);
  }
  // Tells it to stop after its current request (which the loop must still serve).
  void stop() { ::close(stop_fd); }
  bool reported() const {
    pollfd p{result_fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }
  // Returns {served, errors}.
  std::pair<long, long> finish() {
    char line[64] = {};
    std::size_t have = 0;
    for (;;) {
      const ssize_t n = ::read(result_fd, line + have, sizeof line - 1 - have);
      if (n <= 0) break;
      have += static_cast<std::size_t>(n);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(result_fd);
    long served = 0, errors = 1;
    if (std::sscanf(line, "%ld %ld", &served, &errors) != 2) errors = 1;
    return {served, errors};
  }
};

struct churn {
  explicit churn(std::size_t n) : records(n), handles(n) {}

  std::vector<record> records;
  std::vector<tether::request_handle> handles;
  std::vector<std::size_t> streams;  // ids with an open stream
  std::map<std::size_t, std::function<void()>> leave_in_handler;  // phase::running
  long stray_closes = 0;
  const std::string block = std::string(256 * 1024, 'b');

  tether::event_loop loop;
  std::optional<tether::server> srv{std::in_place, loop};
  tether::timer<std::function<void()>> producer{loop, [this] { tick(); }};
  std::uint16_t port = 0;

  struct noted_close {  // 16 bytes: stored in the connection, no allocation
    churn* self;
    std::size_t id;
    void operator()(const tether::close_event& e) const noexcept {
      record& r = self->records[id];
      ++r.closes;
      r.reason = e.reason;
      r.aborted = e.aborted;
    }
  };

  void serve() {
    srv->fallback([this](tether::request& req) {
      const std::string_view path = req.path();
      if (path == "/hello") {
        (void)req.reply(200, "hello");
        return;
      }
      // "/<phase>/<id>"
      const auto slash = path.find('/', 1);
      std::size_t id = 0;
      if (slash == std::string_view::npos ||
          std::from_chars(path.data() + slash + 1, path.data() + path.size(), id).ec != std::errc{} ||
          id >= records.size()) {
        (void)req.reply(404);
        return;
      }
      record& r = records[id];
      r.handler_ran = true;
      (void)req.connection().on_close(noted_close{this, id});
      switch (r.p) {
        case phase::held:
        case phase::pipelined:
          handles[id] = req.hold();
          break;
        case phase::running:
          if (auto it = leave_in_handler.find(id); it != leave_in_handler.end()) it->second();
          (void)req.reply(200, "written to a client that left");
          break;
        case phase::streaming:
          if (!req.start(200) && !req.send_chunk("tick\n")) streams.push_back(id);
          handles[id] = req.hold();
          break;
        case phase::blocked:
          if (auto bev = req.connection().bufferevent()) shrink(bev->fd(), SO_SNDBUF);
          if (!req.start(200)) (void)req.send_chunk(std::string_view(block));
          handles[id] = req.hold();
          break;
        case phase::idle:
          (void)req.reply(200, "idle-ok");
          break;
        default:
          (void)req.reply(500);
      }
    });
    port = *srv->bind("127.0.0.1", 0);
    producer.start_periodic(2ms);
  }

  void tick() {
    for (std::size_t i = 0; i < streams.size();) {
      if (handles[streams[i]].send_chunk("tick\n")) {
        streams[i] = streams.back();
        streams.pop_back();
      } else {
        ++i;
      }
    }
  }

  // Runs the loop until `done()` or 5 s; false on time-out.
  template <class F>
  bool until(F done) {
    return tt::run_until(loop, done, 5000ms);
  }
};

struct client_side {
  int fd = -1;           // local client
  pid_t child = -1;      // or a child holding it
  int ready_fd = -1;
  std::string received;

  void drain() {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) return;
      received.append(buf, static_cast<std::size_t>(n));
    }
  }
  bool child_ready() const {
    pollfd p{ready_fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }
  void kill_child() {
    if (child > 0) {
      ::kill(child, SIGKILL);
      int status = 0;
      ::waitpid(child, &status, 0);
      child = -1;
    }
    if (ready_fd >= 0) ::close(std::exchange(ready_fd, -1));
  }
  void leave(ending e) {
    switch (e) {
      case ending::rst: {
        const linger l{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        ::close(std::exchange(fd, -1));
        break;
      }
      case ending::fin:
        drain();
        ::close(std::exchange(fd, -1));
        break;
      case ending::half_close:
        ::shutdown(fd, SHUT_WR);
        break;
      case ending::killed:
        kill_child();
        break;
      case ending::count:
        break;
    }
  }
  void close_all() {
    if (fd >= 0) {
      const linger l{1, 0};  // whatever is unread: no TIME_WAIT left behind
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      ::close(std::exchange(fd, -1));
    }
    kill_child();
  }
};

std::string request_for(phase p, std::size_t id) {
  const std::string target = "/" + std::string(phase_names[static_cast<int>(p)]) + "/" + std::to_string(id);
  const std::string get = "GET " + target + " HTTP/1.1\r\nHost: churn\r\n\r\n";
  switch (p) {
    case phase::connected: return {};
    case phase::head: return "GET " + target + " HTTP/1.1\r\nHost: churn\r\nX-Partial: ";
    case phase::body: return "POST " + target + " HTTP/1.1\r\nHost: churn\r\nContent-Length: 1000\r\n\r\n" + std::string(100, 'x');
    case phase::pipelined: return get + "GET /hello HTTP/1.1\r\nHost: churn\r\n\r\n";
    default: return get;
  }
}
// What the client waits to have received (and leaves unread, for a killed client).
std::string marker_for(phase p) {
  switch (p) {
    case phase::streaming: return "tick";
    case phase::blocked: return "bbbb";
    case phase::idle: return "idle-ok";
    default: return {};
  }
}

// One connection through its phase and ending. `base` is the process's descriptor count
// with no churn connection open.
void run_one(churn& c, std::size_t id, std::size_t base) {
  record& r = c.records[id];
  client_side cl;
  const std::string request = request_for(r.p, id);
  const std::string marker = marker_for(r.p);
  if (r.e == ending::killed) {
    cl.child = spawn_holder(c.port, request, marker, r.p == phase::blocked, cl.ready_fd);
    if (cl.child < 0) return;
  } else {
    cl.fd = dial(c.port, r.p == phase::blocked);
    if (cl.fd < 0) return;
    if (r.p == phase::running) c.leave_in_handler[id] = [&cl, &r] { cl.leave(r.e); };
    if (!request.empty()) (void)send_all(cl.fd, request);
  }
  const std::size_t mine = 1;  // the client's socket, or the pipe to the child holding it

  // Wait for the phase.
  if (reaches_handler(r.p)) {
    (void)c.until([&] {
      if (!r.handler_ran) return false;
      if (r.p == phase::blocked && c.handles[id].queued_bytes() < 64 * 1024) return false;  // not blocked yet
      if (marker.empty()) return true;
      if (cl.child > 0) return cl.child_ready();
      if (r.p == phase::blocked) return true;  // a local client must not read it
      cl.drain();
      return cl.received.find(marker) != std::string::npos;
    });
  } else {
    // Accepted by the server (its socket is open), and a few passes for evhttp to read.
    (void)c.until([&] { return tt::open_fds() >= base + mine + 1 && (cl.child < 0 || cl.child_ready()); });
    for (int i = 0; i < 3; ++i) event_base_loop(c.loop.native(), EVLOOP_NONBLOCK);
  }

  if (r.p != phase::running) cl.leave(r.e);  // a running handler made the client leave
  // The server's side is closed once the descriptors are back (a half-closed client still
  // holds its own socket).
  const bool half = r.e == ending::half_close;
  r.settled = c.until([&] {
    if (half && cl.fd >= 0) cl.drain();
    const std::size_t expect = base + (half && cl.fd >= 0 ? 1 : 0);
    return tt::open_fds() == expect && r.closes >= (r.handler_ran ? 1 : 0);
  });
  cl.close_all();
  c.leave_in_handler.erase(id);
  c.handles[id].reset();
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10000;
  if (n < 36) {
    std::fprintf(stderr, "usage: churn [N]   (N >= 36: every phase x ending at least once)\n");
    return 2;
  }
  churn c(n);
  // Every phase x ending in turn, so that each cell gets N/36 connections spread over the run.
  for (std::size_t id = 0; id < n; ++id) {
    c.records[id].p = static_cast<phase>(id % static_cast<std::size_t>(phase::count));
    c.records[id].e = static_cast<ending>((id / static_cast<std::size_t>(phase::count)) % static_cast<std::size_t>(ending::count));
  }
  c.serve();

  load_client load;
  load.start(c.port);
  // Wait until the load connection is open and served.
  tt::run_for(c.loop, 50ms);
  const std::size_t base = tt::open_fds();

  const std::size_t warmup = std::min<std::size_t>(n / 10, 360);
  std::size_t rss_after_warmup = 0;
  const auto started = std::chrono::steady_clock::now();
  for (std::size_t id = 0; id < n; ++id) {
    if (id == warmup) {
      malloc_trim(0);
      rss_after_warmup = rss_kib();
    }
    record& r = c.records[id];
    if (r.p == phase::running && r.e == ending::killed) {
      // The handler kills the child holding the connection.
      pid_t child = -1;
      int ready = -1;
      child = spawn_holder(c.port, request_for(r.p, id), "", false, ready);
      c.leave_in_handler[id] = [child] {
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
      };
      r.settled = c.until([&] { return tt::open_fds() == base + 1 && r.closes == 1; });
      ::close(ready);
      c.leave_in_handler.erase(id);
      c.handles[id].reset();
      continue;
    }
    run_one(c, id, base);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  tt::run_for(c.loop, 100ms);  // late duplicates would arrive here

  const std::size_t close_wait = tt::close_wait_sockets(c.port);
  const std::size_t fds_after = tt::open_fds();
  const std::size_t tracked = c.srv->tracked_connections();
  c.streams.clear();
  malloc_trim(0);
  const std::size_t rss_after = rss_kib();
  load.stop();
  (void)c.until([&] { return load.reported(); });
  const auto [served, load_errors] = load.finish();

  // The server's teardown must report none of them again.
  std::vector<int> closes_before(n);
  for (std::size_t i = 0; i < n; ++i) closes_before[i] = c.records[i].closes;
  c.producer.stop();
  c.srv.reset();
  std::size_t teardown_duplicates = 0;
  for (std::size_t i = 0; i < n; ++i) teardown_duplicates += c.records[i].closes != closes_before[i];

  // ----- the table --------------------------------------------------------------------
  struct cell {
    std::size_t connections = 0, handler = 0, callbacks = 0, once = 0, missing = 0, duplicates = 0, unexpected = 0,
                unsettled = 0, fin = 0, rst = 0, other = 0, aborted = 0;
  };
  std::map<std::pair<int, int>, cell> cells;
  cell total;
  for (const record& r : c.records) {
    for (cell* x : {&cells[{static_cast<int>(r.p), static_cast<int>(r.e)}], &total}) {
      ++x->connections;
      x->handler += r.handler_ran;
      x->callbacks += static_cast<std::size_t>(r.closes);
      if (r.handler_ran) {
        x->once += r.closes == 1;
        x->missing += r.closes == 0;
        x->duplicates += r.closes > 1;
      } else {
        x->unexpected += r.closes != 0;
      }
      x->unsettled += !r.settled;
      if (r.closes > 0) {
        x->fin += r.reason == tether::close_reason::peer_closed;
        x->rst += r.reason == tether::close_reason::peer_reset;
        x->other += r.reason != tether::close_reason::peer_closed && r.reason != tether::close_reason::peer_reset;
        x->aborted += r.aborted;
      }
    }
  }
  std::printf("churn: %zu abrupt disconnects in %.1f s while a keep-alive client was served %ld times "
              "(9 phases x 4 endings, %zu each)\n\n",
              n, seconds, served, n / 36);
  std::printf("| phase | client leaves by | connections | reached a handler | close callbacks | exactly once | "
              "missing | duplicate | callback without handler | reason FIN / RST / other | aborted |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& [key, x] : cells)
    std::printf("| %s | %s | %zu | %zu | %zu | %zu | %zu | %zu | %zu | %zu / %zu / %zu | %zu |\n", phase_names[key.first],
                ending_names[key.second], x.connections, x.handler, x.callbacks, x.once, x.missing, x.duplicates,
                x.unexpected, x.fin, x.rst, x.other, x.aborted);
  std::printf("| **all** | | %zu | %zu | %zu | %zu | %zu | %zu | %zu | %zu / %zu / %zu | %zu |\n\n", total.connections,
              total.handler, total.callbacks, total.once, total.missing, total.duplicates, total.unexpected, total.fin,
              total.rst, total.other, total.aborted);

  int failures = 0;
  auto check = [&failures](bool ok, const char* what, const std::string& detail) {
    std::printf("%s %s: %s\n", ok ? "ok    " : "FAILED", what, detail.c_str());
    failures += !ok;
  };
  check(total.missing == 0 && total.duplicates == 0 && total.unexpected == 0,
        "every close callback exactly once",
        std::to_string(total.once) + " of " + std::to_string(total.handler) + " once, " + std::to_string(total.missing) +
            " missing, " + std::to_string(total.duplicates) + " duplicated, " + std::to_string(total.unexpected) +
            " without a handler");
  check(teardown_duplicates == 0, "none again at the server's teardown", std::to_string(teardown_duplicates) + " reported again");
  check(total.unsettled == 0, "every disconnect noticed within 5 s", std::to_string(total.unsettled) + " not");
  check(close_wait == 0, "no CLOSE_WAIT", std::to_string(close_wait) + " sockets of port " + std::to_string(c.port));
  check(fds_after == base && tracked == 0, "descriptors back",
        std::to_string(base) + " before, " + std::to_string(fds_after) + " after; " + std::to_string(tracked) +
            " connections tracked");
  const long grown = static_cast<long>(rss_after) - static_cast<long>(rss_after_warmup);
  if (CHURN_ASAN)
    std::printf("skip   RSS back within 2 MiB: under ASan (its quarantine keeps freed memory); %zu KiB after warm-up, "
                "%zu KiB at the end\n",
                rss_after_warmup, rss_after);
  else
    check(grown <= 2048, "RSS back within 2 MiB (after malloc_trim)",
          std::to_string(rss_after_warmup) + " KiB after " + std::to_string(warmup) + " warm-up disconnects, " +
              std::to_string(rss_after) + " KiB at the end (" + std::to_string(grown) + " KiB)");
  check(load_errors == 0 && served > 0, "the load was served throughout",
        std::to_string(served) + " replies, " + std::to_string(load_errors) + " errors");
  return failures == 0 ? 0 : 1;
}
