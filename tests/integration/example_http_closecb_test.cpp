// Runs examples/http_closecb as a user would and checks the five steps of the seed's
// comment: start it, talk to it like `nc`, kill the client, see "_close_callback",
// find no orphaned socket.
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <sys/types.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

std::string example_path() {
  const char* p = std::getenv("TETHER_EXAMPLE_HTTP_CLOSECB");
  return p ? p : "";
}

// A child process running the example with stdout on a pipe.
class example_process {
 public:
  explicit example_process(std::vector<std::string> args) {
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      std::vector<char*> argv;
      const std::string path = example_path();
      argv.push_back(const_cast<char*>(path.c_str()));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
  }
  ~example_process() {
    stop();
    ::close(out_);
  }

  /// Reads stdout until it contains `needle` or `ms` pass.
  bool wait_output(std::string_view needle, int ms = 3000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (output_.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      read_some(10);
    }
    return output_.find(needle) != std::string::npos;
  }
  /// Waits for the process to exit; returns its exit code (or -1), with all its output read.
  int wait_exit(int ms = 3000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        while (read_some(0)) {
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      read_some(10);
    }
    return -1;
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  /// Sockets the process has open (entries of /proc/PID/fd that are sockets).
  std::size_t sockets() const {
    std::size_t n = 0;
    const std::string dir = "/proc/" + std::to_string(pid_) + "/fd";
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        char target[PATH_MAX] = {};
        const std::string link = dir + "/" + e->d_name;
        if (::readlink(link.c_str(), target, sizeof target - 1) > 0 && std::string_view(target).rfind("socket:", 0) == 0)
          ++n;
      }
      ::closedir(d);
    }
    return n;
  }
  const std::string& output() const { return output_; }

 private:
  // Waits up to `ms` for output and reads what is there; false at EOF or when none came.
  bool read_some(int ms) {
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return false;
    char buf[256];
    const ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) return false;
    output_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string output_;
};

// The example closes the socket right after its close callback printed: wait for it,
// polling at most `ms`.
template <class Pred>
bool eventually(Pred pred, int ms = 2000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!pred() && std::chrono::steady_clock::now() < deadline) ::poll(nullptr, 0, 1);
  return pred();
}

int connect_with_retry(std::uint16_t port) {
  for (int attempt = 0; attempt < 300; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) return fd;
    ::close(fd);
    ::poll(nullptr, 0, 10);  // the server is still starting
  }
  return -1;
}

// A client process like `nc -t 127.0.0.1 PORT`: sends the seed's request, forwards what it
// receives to the parent, and waits to be killed.
struct nc_process {
  pid_t pid = -1;
  int from_child = -1;
  std::string received;

  explicit nc_process(std::uint16_t port) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int fd = connect_with_retry(port);
      if (fd < 0) ::_exit(2);
      const std::string req = "GET / HTTP/1.0\r\nConnection: close\r\n\r\n";
      if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) < 0) ::_exit(3);
      char buf[4096];
      for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) ::pause();
        if (::write(p[1], buf, static_cast<std::size_t>(n)) != n) ::_exit(4);
      }
    }
    ::close(p[1]);
    from_child = p[0];
  }
  ~nc_process() {
    kill();
    ::close(from_child);
  }
  bool wait_received(std::string_view needle) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (received.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd pf{from_child, POLLIN, 0};
      if (::poll(&pf, 1, 10) == 1) {
        char buf[4096];
        const ssize_t n = ::read(from_child, buf, sizeof buf);
        if (n <= 0) break;
        received.append(buf, static_cast<std::size_t>(n));
      }
    }
    return received.find(needle) != std::string::npos;
  }
  void kill() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
};

/// The example's arguments on `port`, with --lean for the lean engine: each case runs on
/// both engines.
std::vector<std::string> engine_args(bool lean, std::uint16_t port) {
  if (lean) return {"--lean", std::to_string(port)};
  return {std::to_string(port)};
}

}  // namespace

TEST_CASE("examples/http_closecb: the seed's five steps", "[example][seed]") {
  REQUIRE_FALSE(example_path().empty());
  const bool lean = GENERATE(false, true);
  INFO((lean ? "lean engine" : "evhttp engine"));
  const std::uint16_t port = tt::free_port();
  // 1) Launch the server.
  example_process server(engine_args(lean, port));

  for (int round = 1; round <= 3; ++round) {
    INFO("round " << round);
    // 2) A telnet-like client sends the request and sees the headers and "<html>".
    nc_process nc(port);
    REQUIRE(nc.wait_received("<html>"));
    if (!lean) {
      CHECK(nc.received ==
            "HTTP/1.0 200 OK\r\n"
            "Content-Type: multipart/x-mixed-replace;boundary=boundarydonotcross\r\n"
            "Connection: close\r\n"
            "\r\n"
            "<html>");
    } else {  // HTTP/1.1 in the status line (RFC 9110 2.5), and a Date (docs/engine.md)
      CHECK(nc.received.starts_with("HTTP/1.1 200 OK\r\n"
                                    "Content-Type: multipart/x-mixed-replace;boundary=boundarydonotcross\r\n"
                                    "Date: "));
      CHECK(nc.received.ends_with("\r\nConnection: close\r\n\r\n<html>"));
    }
    CHECK(server.sockets() == 2);  // listener + this client
    // 3) Terminate the client abruptly.
    nc.kill();
    // 4) The server prints _close_callback, once per client.
    std::string expected;
    for (int i = 0; i < round; ++i) expected += "_close_callback\n";
    REQUIRE(server.wait_output(expected));
    CHECK(server.output() == expected);
    // 5) No orphaned connection: only the listening socket is left, nothing in CLOSE_WAIT.
    CHECK(eventually([&] { return server.sockets() == 1; }));
    CHECK(tt::close_wait_sockets(port) == 0);
  }
}

TEST_CASE("examples/http_closecb: a client that resets is noticed the same way", "[example][seed]") {
  const bool lean = GENERATE(false, true);
  INFO((lean ? "lean engine" : "evhttp engine"));
  const std::uint16_t port = tt::free_port();
  example_process server(engine_args(lean, port));
  const int fd = connect_with_retry(port);
  REQUIRE(fd >= 0);
  const std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
  std::string got;
  for (int i = 0; i < 500 && got.find("<html>") == std::string::npos; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) == 1) {
      char buf[1024];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
  }
  REQUIRE(got.find("Transfer-Encoding: chunked") != std::string::npos);
  REQUIRE(got.find("6\r\n<html>\r\n") != std::string::npos);
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
  REQUIRE(server.wait_output("_close_callback\n"));
  CHECK(eventually([&] { return server.sockets() == 1; }));
}

TEST_CASE("examples/http_closecb: rejects a port that is not 1..65535", "[example][seed]") {
  for (const char* bad : {"0", "-1", "65536", "abc", "", "42x"}) {
    INFO("port argument '" << bad << "'");
    example_process p({bad});
    CHECK(p.wait_exit() != 0);
    CHECK(p.output() == "Invalid port\n");
  }
}
