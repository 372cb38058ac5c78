// tests/support/loopback.hpp - real sockets on 127.0.0.1 for tether's tests.
//
// Every wait here is bounded in time and in iterations, and waits for a condition (a
// callback fired, bytes arrived), never for a fixed delay.
#pragma once

#include <tether/tether.hpp>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TT_DETAIL_RUNNING_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define TT_DETAIL_RUNNING_ON_VALGRIND() false
#endif

namespace tt {

using namespace std::chrono_literals;

/// True when this process runs under valgrind: TETHER_TEST_VALGRIND=1 (scripts/check's
/// valgrind pass sets it) or valgrind's own client request says so.
inline bool under_valgrind() {
  if (const char* v = std::getenv("TETHER_TEST_VALGRIND")) return v[0] == '1';
  return TT_DETAIL_RUNNING_ON_VALGRIND();
}

/// How many times slower than a native run this one is: TETHER_TEST_TIME_SCALE if set
/// (a whole number, at least 1), else 10 under valgrind, else 1. Windows in which
/// something must NOT happen (a second close callback, a tick after a hang-up) are
/// stretched by it, so that a late duplicate under a slow tool still falls inside them.
inline int time_scale() {
  static const int scale = [] {
    if (const char* s = std::getenv("TETHER_TEST_TIME_SCALE")) {
      const int v = std::atoi(s);
      if (v >= 1) return v;
    }
    return under_valgrind() ? 10 : 1;
  }();
  return scale;
}
inline std::chrono::milliseconds scaled(std::chrono::milliseconds d) { return d * time_scale(); }

namespace detail {
// One loop driver for every call site: the predicate is passed as a pointer and a thunk,
// so a test's hundreds of run_until calls do not each instantiate a timer and the loop
// (they were a quarter of push_test's compiled code, 9 % of all tests' under g++ -O0).
inline bool run_until_unscaled(tether::event_loop& loop, void* pred, bool (*call)(void*),
                               std::chrono::milliseconds limit) {
  if (call(pred)) return true;
  tether::timer wake{loop, [] {}};
  wake.start_periodic(1ms);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  const long max_iterations = static_cast<long>(limit.count()) * 4 + 16;
  for (long i = 0; i < max_iterations && std::chrono::steady_clock::now() < deadline; ++i) {
    loop.run_once();
    if (call(pred)) return true;
  }
  return call(pred);
}
template <class Pred>
bool call_pred(void* p) {  // a function, not a lambda: no static invoker or conversion per call site
  return static_cast<bool>((*static_cast<Pred*>(p))());
}
}  // namespace detail

/// Runs `loop` until `pred()` holds or `limit` (times time_scale()) passes; returns
/// pred(). A 1 ms wake-up timer bounds each iteration so that conditions outside the loop
/// (a child process, a client socket) are re-checked; at most limit/1ms + 1 iterations
/// run.
template <class Pred>
bool run_until(tether::event_loop& loop, Pred pred, std::chrono::milliseconds limit = 3000ms) {
  return detail::run_until_unscaled(loop, &pred, &detail::call_pred<Pred>, scaled(limit));
}

/// Runs `loop` for `d` times time_scale() (to let things that must NOT happen have their
/// chance, under a slow tool too).
inline void run_for(tether::event_loop& loop, std::chrono::milliseconds d) {
  detail::run_until_unscaled(loop, nullptr, [](void*) { return false; }, scaled(d));
}

/// A loopback port free right now, for a server in another process (an example program)
/// that takes its port on the command line: bound, read back and closed again. Another
/// program may take it in between; the kernel does not hand it out again at once.
inline std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("free_port: socket failed");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("free_port: no loopback port");
  return ntohs(sa.sin_port);
}

/// A client socket the test drives by hand; the loop keeps running in between.
class client {
 public:
  explicit client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) throw std::runtime_error("connect");
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client() {
    if (fd_ >= 0) ::close(fd_);
  }

  void send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      if (n <= 0) throw std::runtime_error("send");
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  /// Reads what is available; returns false once the server closed (EOF or error).
  bool pump() {
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        data_.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) eof_ = true;
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        eof_ = true;
        if (errno == ECONNRESET) reset_seen_ = true;
      }
      return !eof_;
    }
  }
  /// Pumps the loop until the received bytes contain `needle`.
  bool wait_for(tether::event_loop& loop, std::string_view needle, std::chrono::milliseconds limit = 3000ms) {
    // Searches only what arrived since the last look (plus the needle's length less one):
    // rescanning a body of megabytes on every wake-up made a wait quadratic, minutes
    // under valgrind.
    std::size_t from = 0;
    return run_until(loop, [&] {
      pump();
      if (from > data_.size()) from = 0;  // cleared meanwhile
      if (data_.find(needle, from) != std::string::npos) return true;
      from = data_.size() >= needle.size() ? data_.size() - needle.size() + 1 : 0;
      return false;
    }, limit);
  }
  /// Pumps the loop until the server closes the connection.
  bool wait_eof(tether::event_loop& loop, std::chrono::milliseconds limit = 3000ms) {
    return run_until(loop, [&] {
      pump();
      return eof_;
    }, limit);
  }
  /// Reads until `count` occurrences of `needle` were received.
  bool wait_count(tether::event_loop& loop, std::string_view needle, std::size_t count,
                  std::chrono::milliseconds limit = 3000ms) {
    return run_until(loop, [&] {
      pump();
      return occurrences(needle) >= count;
    }, limit);
  }
  std::size_t occurrences(std::string_view needle) const {
    std::size_t n = 0;
    for (auto p = data_.find(needle); p != std::string::npos; p = data_.find(needle, p + needle.size())) ++n;
    return n;
  }

  /// Abrupt end: RST (SO_LINGER {1, 0}, then close).
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(std::exchange(fd_, -1));
  }
  /// Orderly end: FIN (close after draining what the server sent, so no RST follows).
  void close() {
    pump();
    ::close(std::exchange(fd_, -1));
  }
  /// Half-close: FIN on our side, still reading.
  void half_close() { ::shutdown(fd_, SHUT_WR); }

  const std::string& data() const noexcept { return data_; }
  void clear() { data_.clear(); }
  bool eof() const noexcept { return eof_; }
  /// True if a read failed with ECONNRESET: the server's close destroyed the connection.
  bool reset_seen() const noexcept { return reset_seen_; }
  int fd() const noexcept { return fd_; }
  /// The client's local port, to find its connection in /proc/net/tcp.
  std::uint16_t local_port() const {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    return ntohs(sa.sin_port);
  }

 private:
  int fd_ = -1;
  std::string data_;
  bool eof_ = false;
  bool reset_seen_ = false;
};

/// A client in a child process, so that it can be killed with SIGKILL. The child
/// connects, sends `request`, reads until it has seen `ready_marker` (then tells the
/// parent through a pipe) and keeps reading until it is killed.
///
/// With `unread` set it only peeks: what the server sent stays in the child's receive
/// queue, so the kernel answers the kill with a RST instead of a FIN.
class child_client {
 public:
  enum class reading { drain, unread };

  child_client(std::uint16_t port, std::string request, std::string ready_marker, reading mode = reading::drain) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      ::close(p[0]);
      run_child(port, request, ready_marker, mode, p[1]);
    }
    ::close(p[1]);
    ready_fd_ = p[0];
  }
  child_client(const child_client&) = delete;
  child_client& operator=(const child_client&) = delete;
  ~child_client() {
    kill();
    if (ready_fd_ >= 0) ::close(ready_fd_);
  }

  /// Pumps the loop until the child saw its marker.
  bool wait_ready(tether::event_loop& loop, std::chrono::milliseconds limit = 3000ms) {
    return run_until(loop, [&] {
      pollfd pf{ready_fd_, POLLIN, 0};
      return ::poll(&pf, 1, 0) == 1;
    }, limit);
  }
  /// Pumps the loop until the child sleeps (in recv: it has read everything sent so far).
  bool wait_asleep(tether::event_loop& loop, std::chrono::milliseconds limit = 3000ms) {
    const std::string stat = "/proc/" + std::to_string(pid_) + "/stat";
    return run_until(loop, [&] {
      std::ifstream in(stat);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const auto paren = text.rfind(')');  // "pid (comm) S ..."
      return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'S';
    }, limit);
  }
  /// SIGKILL, then reap.
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

 private:
  [[noreturn]] static void run_child(std::uint16_t port, const std::string& request, const std::string& marker,
                                     reading mode, int ready) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) ::_exit(2);
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) ::_exit(3);
    if (mode == reading::unread) {
      static char peeked[65536];
      for (int i = 0; i < 10000; ++i) {  // at most ~10 s
        const ssize_t n = ::recv(fd, peeked, sizeof peeked, MSG_PEEK);
        if (n > 0 && std::string_view(peeked, static_cast<std::size_t>(n)).find(marker) != std::string_view::npos) {
          if (::write(ready, "r", 1) != 1) ::_exit(4);
          break;
        }
        ::usleep(1000);
      }
      for (;;) ::pause();  // wait to be killed, with the bytes unread
    }
    std::string got;
    char buf[4096];
    bool told = false;
    for (;;) {
      if (!told && got.find(marker) != std::string::npos) {
        if (::write(ready, "r", 1) != 1) ::_exit(4);
        told = true;
      }
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        ::pause();  // wait to be killed
        ::_exit(0);
      }
      got.append(buf, static_cast<std::size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int ready_fd_ = -1;
};

/// Open file descriptors of this process.
inline std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n - 1;  // the directory stream itself
}

/// Sockets in /proc/net/tcp{,6} whose local port is `port` and state is `state_hex`
/// ("08" CLOSE_WAIT, "0A" LISTEN, "01" ESTABLISHED).
inline std::size_t tcp_sockets(std::uint16_t port, std::string_view state_hex) {
  std::size_t n = 0;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, st;
      fields >> sl >> local >> remote >> st;
      const auto colon = local.rfind(':');
      if (colon == std::string::npos) continue;
      const auto p = static_cast<std::uint16_t>(std::stoul(local.substr(colon + 1), nullptr, 16));
      if (p == port && st == state_hex) ++n;
    }
  }
  return n;
}
inline std::size_t close_wait_sockets(std::uint16_t port) { return tcp_sockets(port, "08"); }

/// Extracts the Content-Length body of the first HTTP reply in `s` (empty if none).
inline std::string first_body(const std::string& s) {
  const auto eoh = s.find("\r\n\r\n");
  if (eoh == std::string::npos) return {};
  const auto cl = s.find("Content-Length: ");
  if (cl == std::string::npos || cl > eoh) return {};
  const auto len = std::stoul(s.substr(cl + 16));
  return s.substr(eoh + 4, len);
}

}  // namespace tt
