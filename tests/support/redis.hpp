// tests/support/redis.hpp - a real redis-server, started, killed and restarted by the test
// that needs it.
//
// It listens on a free 127.0.0.1 port with no persistence (`--save '' --appendonly no`),
// runs in the foreground as a child of the test with a fresh temporary directory as its
// working directory (and nothing else: no configuration file), and is stopped by its PID.
// restart() brings a new one up on the same port, empty, as a Redis without persistence
// comes back after a crash.
#pragma once

#include "nginx.hpp"  // free_loopback_port

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace tt {

class redis_process {
 public:
  /// The redis-server binary, or nothing if it is not installed.
  static std::optional<std::string> binary() {
    for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"})
      if (::access(p, X_OK) == 0) return std::string(p);
    return std::nullopt;
  }

  /// Starts redis-server on a free loopback port. Throws std::runtime_error (with its
  /// log) if it does not come up.
  redis_process() {
    if (!binary()) throw std::runtime_error("redis-server is not installed");
    char tmpl[] = "/tmp/tether-redis-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
      port_ = free_loopback_port();
      start();
      if (!wait_ready()) kill();
    }
    if (pid_ < 0) throw std::runtime_error("redis-server did not start: " + log());
  }
  redis_process(const redis_process&) = delete;
  redis_process& operator=(const redis_process&) = delete;
  ~redis_process() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  /// Stops it by its PID (SIGKILL by default: a crash) and waits for it.
  void kill(int sig = SIGKILL) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  /// Sends `sig` (SIGSTOP: Redis hangs with its connections open; SIGCONT: it goes on).
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  /// A new, empty redis-server on the same port. Returns false if it did not come up.
  bool restart() {
    kill();
    for (int attempt = 0; attempt < 50 && pid_ < 0; ++attempt) {  // the port may linger a moment
      start();
      if (!wait_ready()) {
        kill();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling for the port to come free
      }
    }
    return pid_ > 0;
  }

  std::uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const {
    std::ifstream in(dir_ + "/redis.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  void start() {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      const int log = ::open((dir_ + "/redis.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (log >= 0) {
        ::dup2(log, STDOUT_FILENO);
        ::dup2(log, STDERR_FILENO);
      }
      if (::chdir(dir_.c_str()) != 0) ::_exit(126);
      const std::string port = std::to_string(port_);
      const std::string bin = *binary();
      ::execl(bin.c_str(), "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--dir", dir_.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }

  /// Until it answers PING with +PONG (at most 5 s), or has exited.
  bool wait_ready() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (pong()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a child process's readiness
    }
    return false;
  }
  bool pong() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port_);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
              ::send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6;
    char buf[8] = {};
    pollfd p{fd, POLLIN, 0};
    ok = ok && ::poll(&p, 1, 500) == 1 && ::recv(fd, buf, sizeof buf - 1, 0) >= 5 && std::string_view(buf, 5) == "+PONG";
    ::close(fd);
    return ok;
  }

  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tt
