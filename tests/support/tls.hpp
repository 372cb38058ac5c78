// Test support for TLS: certificates made with the openssl command at test time, and a
// TLS client driven by hand (non-blocking, pumped between loop iterations) that can
// vanish without close_notify (RST, or a plain FIN).
#pragma once

#include "loopback.hpp"

#include <tether/tls.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace tt {

/// A scratch directory of PEM files, made once per process by the openssl command:
///   ca.pem / ca.key            the test CA
///   other-ca.pem / other-ca.key  a CA nobody trusts
///   server.pem / server.key    CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by ca
///   server-enc.key             server.key encrypted with the passphrase "tether-secret"
///   expired.pem                server.key's certificate, expired yesterday
///   client.pem / client.key    a client certificate signed by ca (mutual TLS)
class test_certs {
 public:
  static const test_certs& get() {
    static const test_certs certs;
    return certs;
  }
  std::string path(const char* name) const { return dir_ + "/" + name; }

  test_certs(const test_certs&) = delete;
  test_certs& operator=(const test_certs&) = delete;
  ~test_certs() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

 private:
  test_certs() {
    char tmpl[] = "/tmp/tether-tls-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    const std::string script =
        "set -e; cd '" + dir_ + "'\n"
        "openssl req -x509 " + key + " -keyout ca.key -out ca.pem -days 2 -subj /CN=tether-test-ca\n"
        "openssl req -x509 " + key + " -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=tether-other-ca\n"
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
        "openssl req " + key + " -keyout server.key -out server.csr -subj /CN=localhost\n"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem\n"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days -1 -extfile server.ext -out expired.pem\n"
        "openssl pkey -in server.key -aes256 -passout pass:tether-secret -out server-enc.key\n"
        "openssl req " + key + " -keyout client.key -out client.csr -subj /CN=tether-test-client\n"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.pem\n";
    const std::string cmd = "sh -c \"$(cat <<'TETHER_EOF'\n" + script + "TETHER_EOF\n)\" > '" + dir_ + "/openssl.log' 2>&1";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl failed; see " + dir_ + "/openssl.log");
  }
  std::string dir_;
};

/// tls_options of a server with the test certificate.
inline tether::tls_options server_options() {
  const auto& c = test_certs::get();
  tether::tls_options o;
  o.certificate_chain_file = c.path("server.pem");
  o.private_key_file = c.path("server.key");
  return o;
}
/// tls_options of a client that trusts the test CA.
inline tether::tls_options client_options() {
  tether::tls_options o;
  o.ca_file = test_certs::get().path("ca.pem");
  return o;
}

/// A TLS client socket the test drives by hand: handshake, send, read, then end in a
/// chosen way. It verifies the server against the test CA.
class tls_client {
 public:
  explicit tls_client(std::uint16_t port) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_ || SSL_CTX_load_verify_locations(ctx_, test_certs::get().path("ca.pem").c_str(), nullptr) != 1)
      throw std::runtime_error("client SSL_CTX");
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) throw std::runtime_error("connect");
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set1_host(ssl_, "localhost");
    SSL_set_connect_state(ssl_);
  }
  tls_client(const tls_client&) = delete;
  tls_client& operator=(const tls_client&) = delete;
  ~tls_client() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    SSL_CTX_free(ctx_);
  }

  /// Pumps the loop until the handshake is done; false if it failed or timed out.
  bool handshake(tether::event_loop& loop) {
    bool failed = false;
    const bool done = run_until(loop, [&] {
      const int r = SSL_do_handshake(ssl_);
      if (r == 1) return true;
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return false;
      failed = true;
      return true;
    });
    ERR_clear_error();
    return done && !failed;
  }
  void send(tether::event_loop& loop, std::string_view data) {
    const bool sent = run_until(loop, [&] {
      while (!data.empty()) {
        const int n = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
      }
      return true;
    });
    if (!sent) throw std::runtime_error("SSL_write");
  }
  /// Reads what is available; false once the server closed.
  bool pump() {
    char buf[16384];
    for (;;) {
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) {
        data_.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      const int e = SSL_get_error(ssl_, n);
      if (e == SSL_ERROR_ZERO_RETURN) clean_eof_ = true;
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) eof_ = true;
      ERR_clear_error();
      return !eof_;
    }
  }
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
  bool wait_eof(tether::event_loop& loop, std::chrono::milliseconds limit = 3000ms) {
    return run_until(loop, [&] {
      pump();
      return eof_;
    }, limit);
  }

  /// Vanishes with a RST: no close_notify.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(std::exchange(fd_, -1));
  }
  /// Vanishes with a FIN but no close_notify (a killed client, a dropped connection).
  void close_without_notify() {
    pump();
    ::close(std::exchange(fd_, -1));
  }
  /// Ends cleanly: close_notify, then FIN.
  void close_with_notify() {
    SSL_shutdown(ssl_);
    pump();
    ::close(std::exchange(fd_, -1));
  }

  const std::string& data() const noexcept { return data_; }
  /// The server ended the session with close_notify (not a bare FIN or an error).
  bool clean_eof() const noexcept { return clean_eof_; }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  std::string data_;
  bool eof_ = false;
  bool clean_eof_ = false;
};

}  // namespace tt
