// tether/tls.hpp - TLS for servers and clients, over libevent's OpenSSL bufferevents.
/// @file
/// tether::tls_context (an SSL_CTX with its certificate, key and verification settings),
/// use_tls() (an HTTPS server) and https_client() (an HTTPS client_connection).
///
/// The one tether header that needs more than libevent: a program that includes it links
/// libevent_openssl and OpenSSL (Meson: dependency('tether-tls'); pkg-config:
/// libevent_openssl openssl). Nothing else in tether refers to OpenSSL. See docs/tls.md.
///
/// How it fits evhttp: a server's connections are made by tether's bevcb (limits, close
/// detection; detail/connection_guard.hpp); use_tls makes that bevcb return an OpenSSL
/// bufferevent in the accepting state instead of a socket one, so every limit, close
/// policy and buffer policy works unchanged on the decrypted bytes. Two things differ
/// and are handled here or in the guard:
///  * A client that vanishes without close_notify (a plain FIN) is an *error* to an
///    OpenSSL bufferevent, not an EOF (bufferevent_openssl.c conn_closed: dirty shutdowns
///    are errors unless allowed), and OpenSSL 3 answers it with an alert that turns the
///    FIN into a RST. Server contexts set SSL_OP_IGNORE_UNEXPECTED_EOF, so the FIN is an
///    EOF and the close reason is peer_closed (a RST stays peer_reset), reported once.
///  * libevent sends file segments with sendfile(2) only into a socket bufferevent's output
///    (EVBUFFER_FLAG_DRAINS_TO_FD); into a TLS one it maps or reads the file and encrypts
///    it. file_buffer replies work as they are, without sendfile.
///
/// How it fits the lean engine (lean_server.hpp): use_tls gives the server a transport
/// (detail/lean_transport.hpp), and each accepted socket an SSL in the accepting state;
/// the engine reads, writes and ends connections through it (SSL_read, SSL_write of
/// gathered bytes, file ranges read and encrypted, SSL_shutdown), waiting for readability
/// or writability as OpenSSL asks. The same two rules hold: a FIN without close_notify is
/// peer_closed (SSL_OP_IGNORE_UNEXPECTED_EOF), a RST peer_reset; close_notify is sent
/// only after a reply written whole.
#pragma once

#include <tether/client.hpp>
#include <tether/config.hpp>
#include <tether/detail/lean_transport.hpp>
#include <tether/engine.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// A TLS protocol version, for tls_options::min_version and max_version.
enum class tls_version : int {
  tls1_2 = TLS1_2_VERSION,  ///< TLS 1.2 (RFC 5246)
  tls1_3 = TLS1_3_VERSION,  ///< TLS 1.3 (RFC 8446)
};

/// Which end of a connection a tls_context is for.
enum class tls_role : std::uint8_t {
  server,  ///< accepts handshakes (use_tls)
  client,  ///< starts handshakes (https_client)
};

/// What a tls_context is made of. Files are PEM.
struct tls_options {
  /// Our certificate, followed by its intermediates (leaf first). Required for a server;
  /// for a client, the certificate it presents to a server that asks for one (mutual TLS).
  std::string certificate_chain_file{};
  /// The certificate's private key; empty: read from certificate_chain_file.
  std::string private_key_file{};
  /// Decrypts an encrypted private key. tether never prompts on a terminal.
  std::string passphrase{};
  /// CA certificates that sign the peer's certificates (one or more, concatenated).
  std::string ca_file{};
  /// A directory of CA certificates named by their hashes (openssl rehash).
  std::string ca_path{};
  /// Check the peer's certificate. Empty means the role's default: a client verifies the
  /// server (its chain against ca_file / ca_path, or the system's CAs when both are
  /// empty, and its host name); a server asks for no client certificate. A server with
  /// true requires one, signed by ca_file / ca_path (mutual TLS).
  std::optional<bool> verify_peer{};
  /// The most intermediate certificates allowed in the peer's chain; -1: OpenSSL's default.
  int verify_depth = -1;
  /// Cipher list for TLS 1.2 (OpenSSL syntax, e.g. "ECDHE+AESGCM"); empty: OpenSSL's default.
  std::string ciphers{};
  /// Cipher suites for TLS 1.3 (e.g. "TLS_AES_128_GCM_SHA256"); empty: OpenSSL's default.
  std::string ciphersuites{};
  /// The oldest protocol version accepted.
  tls_version min_version = tls_version::tls1_2;
  /// The newest protocol version offered; empty: the newest OpenSSL supports.
  std::optional<tls_version> max_version{};
};

/// An OpenSSL SSL_CTX set up from tls_options: the certificate, key and verification
/// settings shared by every connection of a server or a client. Copies share one SSL_CTX
/// (reference counted); a server or client keeps its own reference, so the context may
/// die first.
///
///     auto tls = tether::tls_context::server({.certificate_chain_file = "cert.pem",
///                                             .private_key_file = "key.pem"});
///     if (!tls) { std::fprintf(stderr, "%s\n", tls.error().message().c_str()); return 1; }
class tls_context {
 public:
  /// A server context. Errors: errc::invalid_argument (no certificate_chain_file), the
  /// system's reason for a file that cannot be opened (no such file, permission denied),
  /// errc::tls_bad_certificate, errc::tls_bad_private_key, errc::tls_wrong_passphrase,
  /// errc::tls_key_mismatch, errc::tls_bad_ca (also: verify_peer without a CA),
  /// errc::tls_bad_settings.
  static result<tls_context> server(const tls_options& options) { return make(tls_role::server, options); }
  /// A client context; by default it verifies servers against the system's CAs. Errors
  /// as for server(), except that a certificate is optional.
  static result<tls_context> client(const tls_options& options = {}) { return make(tls_role::client, options); }

  /// Shares `o`'s SSL_CTX.
  tls_context(const tls_context& o) noexcept : ctx_(o.ctx_), role_(o.role_) {
    if (ctx_) SSL_CTX_up_ref(ctx_);
  }
  /// Takes `o`'s SSL_CTX; `o` is left empty (native() is null).
  tls_context(tls_context&& o) noexcept : ctx_(std::exchange(o.ctx_, nullptr)), role_(o.role_) {}
  /// Shares (or takes) `o`'s SSL_CTX, releasing this one's.
  tls_context& operator=(tls_context o) noexcept {
    std::swap(ctx_, o.ctx_);
    std::swap(role_, o.role_);
    return *this;
  }
  /// Releases this reference; servers and clients made with it keep their own.
  ~tls_context() {
    if (ctx_) SSL_CTX_free(ctx_);
  }

  /// Which end this context is for.
  tls_role role() const noexcept { return role_; }
  /// The SSL_CTX, for settings tether does not wrap (ALPN, session caches, ...). Change it
  /// before the first connection uses it.
  SSL_CTX* native() const noexcept { return ctx_; }

 private:
  tls_context(SSL_CTX* c, tls_role r) noexcept : ctx_(c), role_(r) {}

  struct passphrase_request {
    const std::string* passphrase;
    bool asked = false;
  };
  // OpenSSL asks only for an encrypted key; an empty passphrase refuses (never a prompt).
  static int give_passphrase(char* buf, int size, int, void* arg) noexcept {
    auto* p = static_cast<passphrase_request*>(arg);
    p->asked = true;
    const std::size_t n = p->passphrase->size();
    if (n == 0 || n > static_cast<std::size_t>(size)) return -1;
    std::memcpy(buf, p->passphrase->data(), n);
    return static_cast<int>(n);
  }
  static int no_passphrase(char*, int, int, void*) noexcept { return -1; }

  /// The system's reason when `path` cannot be read (as a file, or as a directory).
  [[nodiscard]] static std::error_code unreadable(const std::string& path, bool directory = false) noexcept {
    if (::access(path.c_str(), directory ? (R_OK | X_OK) : R_OK) != 0) return {errno, std::system_category()};
    return {};
  }

  [[nodiscard]] static std::error_code load_key(SSL_CTX* ctx, const std::string& path, const std::string& passphrase) noexcept {
    if (auto ec = unreadable(path)) return ec;
    BIO* in = BIO_new_file(path.c_str(), "r");
    if (!in) return make_error_code(errc::tls_bad_private_key);
    passphrase_request req{&passphrase};
    EVP_PKEY* key = PEM_read_bio_PrivateKey(in, nullptr, &give_passphrase, &req);
    BIO_free(in);
    if (!key) return make_error_code(req.asked ? errc::tls_wrong_passphrase : errc::tls_bad_private_key);
    // SSL_CTX_use_PrivateKey checks the key against the certificate already loaded.
    const bool matches = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    return matches ? std::error_code{} : make_error_code(errc::tls_key_mismatch);
  }

  [[nodiscard]] static std::error_code configure(SSL_CTX* ctx, tls_role role, const tls_options& o) noexcept {
    SSL_CTX_set_default_passwd_cb(ctx, &no_passphrase);  // never a terminal prompt
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    // A server's client that vanishes without close_notify: OpenSSL 3 would answer its FIN
    // with a fatal alert, which the departed client's kernel answers with a RST, and
    // libevent would report an error: the close would read as peer_reset. With this
    // option the FIN reads as close_notify, an EOF, so the close reason is peer_closed.
    // Not for clients: there it would let a truncated close-delimited body pass as whole.
    if (role == tls_role::server) SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    if (!o.certificate_chain_file.empty()) {
      if (auto ec = unreadable(o.certificate_chain_file)) return ec;
      if (SSL_CTX_use_certificate_chain_file(ctx, o.certificate_chain_file.c_str()) != 1)
        return make_error_code(errc::tls_bad_certificate);
      if (auto ec = load_key(ctx, o.private_key_file.empty() ? o.certificate_chain_file : o.private_key_file, o.passphrase))
        return ec;
    } else if (role == tls_role::server) {
      return make_error_code(errc::invalid_argument);
    } else if (!o.private_key_file.empty()) {
      return make_error_code(errc::invalid_argument);  // a key without its certificate
    }
    const bool has_ca = !o.ca_file.empty() || !o.ca_path.empty();
    if (!o.ca_file.empty())
      if (auto ec = unreadable(o.ca_file)) return ec;
    if (!o.ca_path.empty())
      if (auto ec = unreadable(o.ca_path, true)) return ec;
    if (has_ca && SSL_CTX_load_verify_locations(ctx, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
                                                o.ca_path.empty() ? nullptr : o.ca_path.c_str()) != 1)
      return make_error_code(errc::tls_bad_ca);
    const bool verify = o.verify_peer.value_or(role == tls_role::client);
    if (verify) {
      if (role == tls_role::server) {
        if (!has_ca) return make_error_code(errc::tls_bad_ca);  // nothing to verify clients against
        if (!o.ca_file.empty())
          if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str()))
            SSL_CTX_set_client_CA_list(ctx, names);  // tells clients which CAs we accept
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      } else {
        if (!has_ca && SSL_CTX_set_default_verify_paths(ctx) != 1) return make_error_code(errc::tls_bad_ca);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
      }
    } else {
      SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    if (o.verify_depth >= 0) SSL_CTX_set_verify_depth(ctx, o.verify_depth);
    if (!o.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, o.ciphers.c_str()) != 1)
      return make_error_code(errc::tls_bad_settings);
    if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, o.ciphersuites.c_str()) != 1)
      return make_error_code(errc::tls_bad_settings);
    const int min = static_cast<int>(o.min_version);
    const int max = o.max_version ? static_cast<int>(*o.max_version) : 0;
    if ((max != 0 && max < min) || SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, max) != 1)
      return make_error_code(errc::tls_bad_settings);
    return {};
  }

  static result<tls_context> make(tls_role role, const tls_options& o) {
    SSL_CTX* ctx = SSL_CTX_new(role == tls_role::server ? TLS_server_method() : TLS_client_method());
    if (!ctx) return std::make_error_code(std::errc::not_enough_memory);
    const std::error_code ec = configure(ctx, role, o);
    ERR_clear_error();  // what OpenSSL queued on this thread is explained by `ec`
    if (ec) {
      SSL_CTX_free(ctx);
      return ec;
    }
    return tls_context(ctx, role);
  }

  SSL_CTX* ctx_ = nullptr;
  tls_role role_ = tls_role::server;
};

namespace detail {

inline bufferevent* make_tls_server_bufferevent(event_base* base, void* ctx) noexcept {
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx));
  if (!ssl) return nullptr;
  // CLOSE_ON_FREE: the bufferevent frees the SSL (and, failing, frees it here); evhttp
  // then leaves closing the socket to the bufferevent (http.c evhttp_connection_free).
  return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}
inline void release_tls_context(void* ctx) noexcept { SSL_CTX_free(static_cast<SSL_CTX*>(ctx)); }

/// libevent frees a connection's bufferevent without a TLS shutdown: tether sends
/// close_notify first (best effort, non-blocking, straight to the socket), so that a
/// client tells the server's close from a cut connection. Not after a failed handshake,
/// nor once the peer's close_notify (or FIN) arrived, nor with reply bytes still unsent:
/// a close_notify then would pass a cut reply off as a complete one.
inline void send_close_notify(bufferevent* bev) noexcept {
  SSL* ssl = bufferevent_openssl_get_ssl(bev);
  if (!ssl || !SSL_is_init_finished(ssl) || (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN)) return;
  if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) return;
  SSL_shutdown(ssl);
  ERR_clear_error();
}

// ----- the lean engine's transport: one SSL per connection, on its socket ---------------

inline void* lean_tls_open(void* ctx, int fd) noexcept {
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx));
  if (!ssl) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {  // a socket BIO that does not close the socket
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  // A write returns once a record is out (the engine consumes what was written), and its
  // retry may come from another buffer holding the same bytes (the gathered copy, then
  // the output string).
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ssl;
}

/// An SSL_read or SSL_write that returned `r` <= 0, in the terms of a system call.
inline ssize_t lean_tls_failed(SSL* ssl, int r, lean_io_wait* wait, bool reading) noexcept {
  const int saved = errno;
  const int e = SSL_get_error(ssl, r);
  ERR_clear_error();
  switch (e) {
    case SSL_ERROR_WANT_READ:
      *wait = lean_wait_readable;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      *wait = lean_wait_writable;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:  // close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a bare FIN
      return 0;
    case SSL_ERROR_SYSCALL:
      // The socket's error (ECONNRESET for a RST); none is an EOF that broke the protocol
      // (OpenSSL without SSL_OP_IGNORE_UNEXPECTED_EOF): still the client's hang-up.
      if (saved != 0 && saved != EAGAIN) {
        errno = saved;
        return -1;
      }
      if (reading) return 0;
      errno = EPIPE;
      return -1;
    default:  // SSL_ERROR_SSL: not TLS, a failed handshake, a bad record
      errno = EPROTO;
      return -1;
  }
}

inline ssize_t lean_tls_read(void* session, char* buf, std::size_t n, lean_io_wait* wait) noexcept {
  auto* ssl = static_cast<SSL*>(session);
  ERR_clear_error();  // SSL_get_error reads this thread's queue
  errno = 0;
  const int r = SSL_read(ssl, buf, static_cast<int>(std::min<std::size_t>(n, INT_MAX)));
  return r > 0 ? r : lean_tls_failed(ssl, r, wait, true);
}

inline ssize_t lean_tls_write(void* session, const iovec* iov, int n, lean_io_wait* wait) noexcept {
  auto* ssl = static_cast<SSL*>(session);
  // SSL_write takes one buffer: small runs (a head, a chunk's framing and bytes) are
  // gathered into one record's worth, so that they leave in one record and one send.
  constexpr std::size_t record = 16 * 1024;
  alignas(16) static thread_local char gathered[record];
  const char* data = static_cast<const char*>(iov[0].iov_base);
  std::size_t len = iov[0].iov_len;
  if (n > 1 && len < record) {
    len = 0;
    for (int i = 0; i < n && len < record; ++i) {
      const std::size_t take = std::min(iov[i].iov_len, record - len);
      std::memcpy(gathered + len, iov[i].iov_base, take);
      len += take;
    }
    data = gathered;
  }
  if (len == 0) return 0;
  ERR_clear_error();
  errno = 0;
  const int r = SSL_write(ssl, data, static_cast<int>(std::min<std::size_t>(len, INT_MAX)));
  return r > 0 ? r : lean_tls_failed(ssl, r, wait, false);
}

inline bool lean_tls_pending(void* session) noexcept { return SSL_has_pending(static_cast<SSL*>(session)) == 1; }

inline void lean_tls_close(void* session, bool clean) noexcept {
  auto* ssl = static_cast<SSL*>(session);
  // As send_close_notify: not after a failed handshake, nor once the client's close_notify
  // (or FIN) arrived; best effort, straight to the non-blocking socket.
  if (clean && SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN)) SSL_shutdown(ssl);
  SSL_free(ssl);
  ERR_clear_error();
}

/// Why a TLS client's connect failed, from what the OpenSSL bufferevent recorded.
inline std::error_code explain_tls_failure(bufferevent* bev) noexcept {
  SSL* ssl = bufferevent_openssl_get_ssl(bev);
  bool any = false;
  bool refused = ssl && SSL_get_verify_result(ssl) != X509_V_OK;
  while (const unsigned long e = bufferevent_get_openssl_error(bev)) {
    // libevent records SSL_get_error's code (SSL_ERROR_SYSCALL for a TCP failure) next to
    // OpenSSL's own packed errors; only the latter say that TLS itself failed.
    if (ERR_GET_LIB(e) == 0) continue;
    any = true;
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) refused = true;
  }
  if (refused) return make_error_code(errc::tls_certificate_rejected);
  if (any) return make_error_code(errc::tls_handshake_failed);
  return {};  // a TCP failure (refused, reset): the system's reason
}

}  // namespace detail

/// Makes `srv` an HTTPS server: every connection it accepts from now on starts with a TLS
/// handshake before a request is read: on the evhttp engine an OpenSSL bufferevent
/// (BUFFEREVENT_SSL_ACCEPTING), on the lean engine an SSL on the socket that the engine
/// reads and writes through. Limits, close policies, buffer policies and handles work as
/// over plain TCP. The server keeps a reference to the context. Call it before bind().
/// Errors: errc::invalid_argument if `ctx` is not a server context.
template <close_policy ClosePolicy, buffer_policy BufferPolicy, close_callback CloseCallback, class Engine>
[[nodiscard]] std::error_code use_tls(basic_server<ClosePolicy, BufferPolicy, CloseCallback, Engine>& srv,
                                      const tls_context& ctx) noexcept {
  if (!ctx.native() || ctx.role() != tls_role::server) return make_error_code(errc::invalid_argument);
  SSL_CTX_up_ref(ctx.native());
  if constexpr (is_lean_engine<Engine>) {
    srv.set_transport(detail::lean_transport{&detail::lean_tls_open, &detail::lean_tls_read, &detail::lean_tls_write,
                                             &detail::lean_tls_pending, &detail::lean_tls_close,
                                             &detail::release_tls_context, ctx.native()});
  } else {
    srv.set_transport(detail::transport{&detail::make_tls_server_bufferevent, ctx.native(),
                                        &detail::release_tls_context, &detail::send_close_notify});
  }
  return {};
}

/// An HTTPS client connection to `host` and `port`: a client_connection whose TCP
/// connection starts with a TLS handshake (OpenSSL bufferevent, BUFFEREVENT_SSL_CONNECTING).
/// With a verifying context (the default) the server's certificate must chain to a trusted
/// CA and name `server_name` (empty: `host`) as a DNS name or IP address; the name is also
/// sent as SNI when it is not an IP address. A failed handshake completes the request
/// with errc::tls_certificate_rejected (untrusted, expired, wrong name) or
/// errc::tls_handshake_failed (not TLS, nothing in common); these are not retried.
/// Errors: errc::invalid_argument (not a client context, or an empty name).
inline result<client_connection> https_client(event_loop& loop, const tls_context& ctx, std::string_view host,
                                              std::uint16_t port, const client_options& options = {},
                                              std::string_view server_name = {}) {
  if (!ctx.native() || ctx.role() != tls_role::client) return errc::invalid_argument;
  std::string name(server_name.empty() ? host : server_name);
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  if (name.empty()) return errc::invalid_argument;
  SSL* ssl = SSL_new(ctx.native());
  if (!ssl) return std::make_error_code(std::errc::not_enough_memory);
  unsigned char ip[sizeof(in6_addr)];
  const bool is_ip = ::inet_pton(AF_INET, name.c_str(), ip) == 1 || ::inet_pton(AF_INET6, name.c_str(), ip) == 1;
  bool named = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1
                     : SSL_set1_host(ssl, name.c_str()) == 1 && SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
  if (!named) {
    SSL_free(ssl);
    ERR_clear_error();
    return errc::invalid_argument;
  }
  bufferevent* bev = bufferevent_openssl_socket_new(loop.native(), -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) return std::make_error_code(std::errc::not_enough_memory);
  return client_connection(loop.native(), detail::client_transport{bev, &detail::explain_tls_failure}, host, port, options);
}

TETHER_END_NAMESPACE
