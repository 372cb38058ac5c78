// tests/support/nginx.hpp - a real nginx, started and stopped by the test that needs it.
//
// Everything lives in a fresh temporary directory: the configuration, the pid file, the
// error log, the temp paths, the files it serves. nginx listens on a free 127.0.0.1 port,
// runs in the foreground (`nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'`) as a child
// of the test, and is stopped by its PID (SIGTERM, then SIGKILL if it lingers).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tt {

/// A free TCP port on 127.0.0.1 (bound, read back, released: another process could take
/// it in between, which nginx_process handles by trying again).
inline std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

class nginx_process {
 public:
  /// The nginx binary, or nothing if it is not installed.
  static std::optional<std::string> binary() {
    for (const char* p : {"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"})
      if (::access(p, X_OK) == 0) return std::string(p);
    return std::nullopt;
  }

  struct file {
    std::string path;  ///< relative to the document root
    std::string content;
  };

  /// Starts nginx serving `files` from its document root, and proxying /proxy/ to
  /// 127.0.0.1:`upstream_port` (unbuffered, HTTP/1.1: an upstream response without a
  /// length reaches the client chunked). `extra_http` is added to the http block.
  /// Throws std::runtime_error (with nginx's error log) if it does not come up.
  nginx_process(const std::vector<file>& files, std::uint16_t upstream_port, const std::string& extra_http = {}) {
    const auto bin = binary();
    if (!bin) throw std::runtime_error("nginx is not installed");
    char tmpl[] = "/tmp/tether-nginx-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    std::filesystem::create_directories(dir_ + "/html");
    for (const auto& f : files) {
      const auto path = std::filesystem::path(dir_ + "/html/" + f.path);
      std::filesystem::create_directories(path.parent_path());
      std::ofstream(path, std::ios::binary) << f.content;
    }
    for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
      port_ = free_loopback_port();
      write_config(upstream_port, extra_http);
      start(*bin);
      if (!wait_ready()) stop();
    }
    if (pid_ < 0) throw std::runtime_error("nginx did not start: " + error_log());
  }
  nginx_process(const nginx_process&) = delete;
  nginx_process& operator=(const nginx_process&) = delete;
  ~nginx_process() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  const std::string& dir() const noexcept { return dir_; }
  std::string error_log() const {
    std::ifstream in(dir_ + "/error.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  void write_config(std::uint16_t upstream_port, const std::string& extra_http) const {
    std::ofstream conf(dir_ + "/nginx.conf");
    if (::geteuid() == 0) conf << "user root;\n";  // workers can read the test's files
    conf << "worker_processes 1;\n"
         << "pid " << dir_ << "/nginx.pid;\n"
         << "error_log " << dir_ << "/error.log info;\n"
         << "events { worker_connections 64; }\n"
         << "http {\n"
         << "  access_log off;\n"
         << "  default_type text/plain;\n"
         << "  client_body_temp_path " << dir_ << "/client_body;\n"
         << "  proxy_temp_path " << dir_ << "/proxy;\n"
         << "  fastcgi_temp_path " << dir_ << "/fastcgi;\n"
         << "  uwsgi_temp_path " << dir_ << "/uwsgi;\n"
         << "  scgi_temp_path " << dir_ << "/scgi;\n"
         << extra_http << "\n"
         << "  server {\n"
         << "    listen 127.0.0.1:" << port_ << ";\n"
         << "    root " << dir_ << "/html;\n"
         << "    location /proxy/ {\n"
         << "      proxy_pass http://127.0.0.1:" << upstream_port << "/;\n"
         << "      proxy_http_version 1.1;\n"
         << "      proxy_buffering off;\n"
         << "    }\n"
         << "  }\n"
         << "}\n";
  }

  void start(const std::string& bin) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      const int log = ::open((dir_ + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (log >= 0) {
        ::dup2(log, STDOUT_FILENO);
        ::dup2(log, STDERR_FILENO);
      }
      const std::string conf = dir_ + "/nginx.conf";
      ::execl(bin.c_str(), "nginx", "-p", dir_.c_str(), "-c", conf.c_str(), "-e", (dir_ + "/error.log").c_str(), "-g",
              "daemon off;", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }

  /// Until nginx accepts a connection on its port (at most 5 s), or has exited.
  bool wait_ready() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(port_);
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
      ::close(fd);
      if (up) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a child process's readiness
    }
    return false;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 300; ++i) {  // 3 s
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tt
