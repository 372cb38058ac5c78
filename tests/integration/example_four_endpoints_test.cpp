// Runs examples/four_endpoints as a user would (issue 12): an SSE broadcast, a long-poll
// chat, a multipart stream and a JSON status on one server, each checked over real
// sockets, and clients that vanish leave at once (the status says so). On both engines:
// the example as it is, and with --lean.
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <sys/types.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

/// The example in a child process, stdout on a pipe; SIGTERM and reaped on destruction.
class process {
 public:
  process(const char* path, std::string port, bool lean) {
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      if (lean) ::execl(path, path, "--lean", port.c_str(), static_cast<char*>(nullptr));
      else ::execl(path, path, port.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
  }
  ~process() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    ::close(out_);
  }
  bool wait_output(std::string_view needle, int ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (output_.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 10) != 1) continue;
      char buf[256];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) break;
      output_.append(buf, static_cast<std::size_t>(n));
    }
    return output_.find(needle) != std::string::npos;
  }
  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string output_;
};

/// A client of another process: no loop to pump, so it waits with poll(2).
class peer {
 public:
  peer(std::uint16_t port, std::string_view request) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  }
  peer(const peer&) = delete;
  peer& operator=(const peer&) = delete;
  ~peer() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool wait_for(std::string_view needle, int ms = 3000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms * tt::time_scale());
    while (data_.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10) != 1) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      data_.append(buf, static_cast<std::size_t>(n));
    }
    return data_.find(needle) != std::string::npos;
  }
  void reset() {  // RST: the client vanishes
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(std::exchange(fd_, -1));
  }
  const std::string& data() const { return data_; }

 private:
  int fd_ = -1;
  std::string data_;
};

std::string status(std::uint16_t port) {
  peer p(port, "GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  if (!p.wait_for("}\n")) return {};
  return p.data().substr(p.data().find("\r\n\r\n") + 4);
}

/// Asks /status until it says `expected` (or `ms` pass); returns the last answer.
std::string status_becomes(std::uint16_t port, std::string_view expected, int ms = 3000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms * tt::time_scale());
  std::string s = status(port);
  while (s != expected && std::chrono::steady_clock::now() < deadline) {
    ::poll(nullptr, 0, 5);
    s = status(port);
  }
  return s;
}

}  // namespace

TEST_CASE("example four_endpoints: SSE broadcast, long-poll chat, multipart stream and JSON status", "[example]") {
  const char* path = std::getenv("TETHER_EXAMPLE_FOUR_ENDPOINTS");
  REQUIRE(path);
  const bool lean = GENERATE(false, true);
  INFO((lean ? "four_endpoints --lean" : "four_endpoints"));
  const std::uint16_t port = tt::free_port();
  process server(path, std::to_string(port), lean);
  REQUIRE(server.wait_output("four_endpoints: listening on port " + std::to_string(port), 5000 * tt::time_scale()));

  peer sse(port, "GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
  peer poller(port, "GET /chat HTTP/1.1\r\nHost: t\r\n\r\n");
  peer viewer(port, "GET /frames HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(status_becomes(port, "{\"events\":1,\"waiting\":1,\"viewers\":1,\"messages\":0}\n") ==
        "{\"events\":1,\"waiting\":1,\"viewers\":1,\"messages\":0}\n");

  // JSON status: the right type.
  {
    peer p(port, "GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    REQUIRE(p.wait_for("}\n"));
    CHECK(p.data().rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(p.data().find("Content-Type: application/json\r\n") != std::string::npos);
  }

  // Multipart: frames keep coming, each an SVG part.
  REQUIRE(viewer.wait_for("Content-Type: multipart/x-mixed-replace;boundary="));
  REQUIRE(viewer.wait_for("Content-Type: image/svg+xml\r\nContent-Length: "));
  // SSE broadcast: the clock's tick.
  REQUIRE(sse.wait_for("Content-Type: text/event-stream\r\n"));
  REQUIRE(sse.wait_for("event: tick\ndata: ", 3000));

  // Chat: a message answers the waiting poll and goes to the SSE clients.
  {
    peer say(port, "POST /chat HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    REQUIRE(say.wait_for("message 1 to 1 waiting\n"));
  }
  REQUIRE(poller.wait_for("\r\n\r\nhello"));
  CHECK(poller.data().rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  REQUIRE(sse.wait_for("id: 1\nevent: chat\ndata: hello\n\n"));

  // Clients that vanish leave at once: a held poll, an SSE stream, a viewer.
  peer second(port, "GET /chat HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(status_becomes(port, "{\"events\":1,\"waiting\":1,\"viewers\":1,\"messages\":1}\n") ==
        "{\"events\":1,\"waiting\":1,\"viewers\":1,\"messages\":1}\n");
  second.reset();
  sse.reset();
  viewer.reset();
  CHECK(status_becomes(port, "{\"events\":0,\"waiting\":0,\"viewers\":0,\"messages\":1}\n") ==
        "{\"events\":0,\"waiting\":0,\"viewers\":0,\"messages\":1}\n");
}
