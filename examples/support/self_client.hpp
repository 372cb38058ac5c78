// examples/support/self_client.hpp - what the examples' --once mode uses to talk to
// themselves: a loopback client socket read from inside the example's own event loop.
// Not part of tether; examples stay runnable servers without it.
#pragma once

// Only what it uses (event_loop, timer, parse_port from server.hpp, the durations): the
// examples that include it are measured for compile time (bench/compile_time).
#include <tether/duration.hpp>
#include <tether/event_loop.hpp>
#include <tether/server.hpp>
#include <tether/timer.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace example {

class self_client {
 public:
  /// Connects to 127.0.0.1:`port` and sends `request`.
  self_client(std::uint16_t port, std::string_view request) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
          ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
    if (ok_) ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  self_client(const self_client&) = delete;
  self_client& operator=(const self_client&) = delete;
  ~self_client() {
    if (fd_ >= 0) ::close(fd_);
  }

  /// Runs `loop` until the received bytes contain `needle` (at most `limit`).
  bool wait_for(tether::event_loop& loop, std::string_view needle,
                tether::milliseconds limit = tether::seconds(5)) {
    if (!ok_) return false;
    tether::timer poll{loop, [&] {
      char buf[4096];
      for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, 0)) > 0;) data_.append(buf, static_cast<std::size_t>(n));
      if (data_.find(needle) != std::string::npos) loop.stop();
    }};
    poll.start_periodic(tether::milliseconds(1));
    loop.stop_after(limit);
    loop.run();
    return data_.find(needle) != std::string::npos;
  }

  const std::string& data() const noexcept { return data_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
  std::string data_;
};

/// The port from argv[1] (default `fallback`), or 0 with "Invalid port" printed.
inline std::uint16_t port_arg(int argc, char** argv, int index, const char* fallback) {
  const auto port = tether::parse_port(argc > index ? argv[index] : fallback);
  if (!port) {
    std::puts("Invalid port");
    return 0;
  }
  return *port;
}

/// True if argv[1] is `flag`; it is then consumed, so the other arguments keep their places.
inline bool take_flag(int& argc, char**& argv, std::string_view flag) {
  if (argc < 2 || std::string_view(argv[1]) != flag) return false;
  --argc;
  ++argv;
  return true;
}

}  // namespace example
