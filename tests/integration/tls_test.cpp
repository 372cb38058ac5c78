// TLS (tether/tls.hpp): contexts and their errors, HTTPS server and client over real
// loopback sockets, the close policies when a client vanishes without close_notify,
// streams and file bodies over TLS, handshakes that fail. Certificates are made by the
// openssl command at test time (support/tls.hpp). The server cases run on both engines
// (TT_ENGINE_SERVERS, TT_ENGINES): the evhttp engine's OpenSSL bufferevents and the
// lean engine's transport (detail/lean_transport.hpp).
#include <tether/tether.hpp>
#include <tether/tls.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"
#include "../support/tls.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using tether::close_reason;
using tether::errc;

namespace {

struct timed_close {
  close_reason reason;
  bool aborted;
  std::chrono::steady_clock::time_point at;
};

template <class Server>
struct https_fixture {
  std::vector<timed_close> closes;  // before the server: its destructor runs close callbacks
  int handled = 0;
  tether::event_loop loop;
  std::optional<Server> srv{std::in_place, loop};
  typename Server::request_handle held;
  std::uint16_t port = 0;

  explicit https_fixture(const tether::tls_options& o = tt::server_options()) {
    auto ctx = tether::tls_context::server(o);
    REQUIRE(ctx);
    REQUIRE_FALSE(tether::use_tls(*srv, *ctx));
  }
  auto recorder() {
    return [this](const tether::close_event& e) { closes.push_back({e.reason, e.aborted, std::chrono::steady_clock::now()}); };
  }
  std::uint16_t bind() { return port = *srv->bind("127.0.0.1", 0); }
};

struct fetched {
  std::error_code ec;
  int status = 0;
  std::string body;
  bool done = false;
};

/// GETs `target` with an HTTPS client made from `client` and waits for the completion.
fetched https_get(tether::event_loop& loop, std::uint16_t port, const tether::tls_options& client, std::string target = "/",
                  std::string_view server_name = {}) {
  fetched f;
  auto ctx = tether::tls_context::client(client);
  REQUIRE(ctx);
  auto conn = tether::https_client(loop, *ctx, "127.0.0.1", port, {}, server_name);
  REQUIRE(conn);
  auto sent = conn->get(std::move(target), [&](std::error_code ec, const tether::client_response& res) {
    f.ec = ec;
    f.done = true;
    if (!ec) {
      f.status = res.status();
      f.body = res.body().to_string();
    }
  });
  REQUIRE(sent);
  REQUIRE(tt::run_until(loop, [&] { return f.done; }, 5000ms));
  return f;
}

}  // namespace

// ----- contexts -------------------------------------------------------------------------

TEST_CASE("tls_context: a server context loads a certificate and key; a client one needs neither", "[tls][context]") {
  auto server = tether::tls_context::server(tt::server_options());
  REQUIRE(server);
  CHECK(server->role() == tether::tls_role::server);
  CHECK(server->native() != nullptr);
  auto client = tether::tls_context::client(tt::client_options());
  REQUIRE(client);
  CHECK(client->role() == tether::tls_role::client);
  CHECK(SSL_CTX_get_verify_mode(client->native()) == SSL_VERIFY_PEER);  // verifies by default
  auto system_cas = tether::tls_context::client();
  REQUIRE(system_cas);
  const tether::tls_context copy = *server;  // shares the SSL_CTX
  CHECK(copy.native() == server->native());
}

TEST_CASE("tls_context: each bad input has its own error", "[tls][context][errors]") {
  const auto& c = tt::test_certs::get();
  auto with = [](auto change) {
    tether::tls_options o = tt::server_options();
    change(o);
    return tether::tls_context::server(o).error();
  };
  CHECK(with([&](auto& o) { o.certificate_chain_file = c.path("missing.pem"); }) == std::errc::no_such_file_or_directory);
  CHECK(with([&](auto& o) { o.private_key_file = c.path("missing.key"); }) == std::errc::no_such_file_or_directory);
  CHECK(with([&](auto& o) { o.certificate_chain_file = c.path("server.key"); }) == errc::tls_bad_certificate);
  CHECK(with([&](auto& o) { o.private_key_file = c.path("server.pem"); }) == errc::tls_bad_private_key);
  CHECK(with([&](auto& o) { o.private_key_file = c.path("other-ca.key"); }) == errc::tls_key_mismatch);
  CHECK(with([&](auto& o) { o.private_key_file = c.path("server-enc.key"); }) == errc::tls_wrong_passphrase);
  CHECK(with([&](auto& o) {
          o.private_key_file = c.path("server-enc.key");
          o.passphrase = "not-the-secret";
        }) == errc::tls_wrong_passphrase);
  CHECK(with([&](auto& o) {
          o.private_key_file = c.path("server-enc.key");
          o.passphrase = "tether-secret";
        }) == std::error_code{});
  CHECK(with([&](auto& o) { o.ca_file = c.path("missing-ca.pem"); }) == std::errc::no_such_file_or_directory);
  CHECK(with([&](auto& o) { o.ca_file = c.path("server.key"); }) == errc::tls_bad_ca);
  CHECK(with([&](auto& o) { o.verify_peer = true; }) == errc::tls_bad_ca);  // nothing to verify clients with
  CHECK(with([&](auto& o) { o.ciphers = "NO-SUCH-CIPHER"; }) == errc::tls_bad_settings);
  CHECK(with([&](auto& o) { o.ciphersuites = "TLS_NO_SUCH_SUITE"; }) == errc::tls_bad_settings);
  CHECK(with([&](auto& o) {
          o.min_version = tether::tls_version::tls1_3;
          o.max_version = tether::tls_version::tls1_2;
        }) == errc::tls_bad_settings);
  CHECK(with([&](auto& o) { o.certificate_chain_file.clear(); }) == errc::invalid_argument);
  // The messages say what is wrong.
  CHECK(tether::make_error_code(errc::tls_wrong_passphrase).message().find("passphrase") != std::string::npos);
  CHECK(tether::make_error_code(errc::tls_key_mismatch).message().find("does not match") != std::string::npos);
  CHECK(ERR_peek_error() == 0);  // nothing left on OpenSSL's error queue of this thread
}

TEMPLATE_TEST_CASE("use_tls and https_client refuse a context of the other role", "[tls][context]", TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  TestType srv{loop};
  auto client = tether::tls_context::client(tt::client_options());
  auto server = tether::tls_context::server(tt::server_options());
  REQUIRE(client);
  REQUIRE(server);
  CHECK(tether::use_tls(srv, *client) == errc::invalid_argument);
  CHECK(tether::https_client(loop, *server, "127.0.0.1", 443).error() == errc::invalid_argument);
}

// ----- requests -------------------------------------------------------------------------

TEMPLATE_TEST_CASE("https: a request and its reply, and several on one kept-alive connection", "[tls][request]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  https_fixture<TestType> f;
  (void)f.srv->route("/hello", [&](auto& req) {
    ++f.handled;
    (void)req.reply(200, "hello over tls");
  });
  f.bind();
  auto r = https_get(f.loop, f.port, tt::client_options(), "/hello");
  REQUIRE_FALSE(r.ec);
  CHECK(r.status == 200);
  CHECK(r.body == "hello over tls");

  // Keep-alive: three requests on one connection, one handshake.
  auto ctx = tether::tls_context::client(tt::client_options());
  auto conn = tether::https_client(f.loop, *ctx, "127.0.0.1", f.port);
  REQUIRE(conn);
  int ok = 0;
  for (int i = 0; i < 3; ++i)
    REQUIRE(conn->get("/hello", [&](std::error_code ec, const tether::client_response& res) {
      if (!ec && res.body().to_string() == "hello over tls") ++ok;
    }));
  REQUIRE(tt::run_until(f.loop, [&] { return ok == 3; }));
  CHECK(f.handled == 4);
}

TEMPLATE_TEST_CASE("https: a plain-text client of the TLS port is refused, and nothing leaks", "[tls][handshake]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  https_fixture<TestType> f;
  f.srv->fallback([&](auto& req) {
    ++f.handled;
    (void)req.reply(200, "never");
  });
  f.bind();
  const std::size_t fds = tt::open_fds();
  {
    tt::client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_eof(f.loop));
    CHECK(c.data().find("never") == std::string::npos);
  }
  REQUIRE(tt::run_until(f.loop, [&] { return f.srv->open_connections() == 0 && tt::open_fds() == fds; }));
  CHECK(f.handled == 0);
}

// ----- handshakes that fail -------------------------------------------------------------

TEMPLATE_TEST_CASE("https_client: a server the client cannot trust is refused with a clear error", "[tls][handshake]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  using https_fixture = ::https_fixture<TestType>;
  const auto& c = tt::test_certs::get();
  SECTION("signed by a CA the client does not trust") {
    https_fixture f;
    f.srv->fallback([&](auto& req) { (void)req.reply(200, "never"); });
    f.bind();
    tether::tls_options o;
    o.ca_file = c.path("other-ca.pem");
    const std::size_t fds = tt::open_fds();
    CHECK(https_get(f.loop, f.port, o).ec == errc::tls_certificate_rejected);
    REQUIRE(tt::run_until(f.loop, [&] { return f.srv->open_connections() == 0 && tt::open_fds() == fds; }));
  }
  SECTION("an expired certificate") {
    tether::tls_options so = tt::server_options();
    so.certificate_chain_file = c.path("expired.pem");
    https_fixture f(so);
    f.srv->fallback([&](auto& req) { (void)req.reply(200, "never"); });
    f.bind();
    CHECK(https_get(f.loop, f.port, tt::client_options()).ec == errc::tls_certificate_rejected);
  }
  SECTION("a certificate for another host name") {
    https_fixture f;
    f.srv->fallback([&](auto& req) { (void)req.reply(200, "never"); });
    f.bind();
    CHECK(https_get(f.loop, f.port, tt::client_options(), "/", "example.com").ec == errc::tls_certificate_rejected);
    // The same server under the name its certificate has.
    CHECK(https_get(f.loop, f.port, tt::client_options(), "/", "localhost").status == 200);
  }
  SECTION("verification turned off accepts it") {
    https_fixture f;
    f.srv->fallback([&](auto& req) { (void)req.reply(200, "unverified"); });
    f.bind();
    tether::tls_options o;
    o.ca_file = c.path("other-ca.pem");
    o.verify_peer = false;
    CHECK(https_get(f.loop, f.port, o).body == "unverified");
  }
}

TEMPLATE_TEST_CASE("https_client: a plain HTTP server, a closed port and no common version", "[tls][handshake]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  using https_fixture = ::https_fixture<TestType>;
  SECTION("a plain HTTP server answers the ClientHello with text: handshake failed") {
    tether::event_loop loop;
    TestType srv{loop};
    srv.fallback([](auto& req) { (void)req.reply(200, "plain"); });
    const auto port = *srv.bind("127.0.0.1", 0);
    CHECK(https_get(loop, port, tt::client_options()).ec == errc::tls_handshake_failed);
  }
  SECTION("a closed port is still the system's connection_refused") {
    tether::event_loop loop;
    std::uint16_t port = 0;
    {
      TestType srv{loop};
      port = *srv.bind("127.0.0.1", 0);
    }
    CHECK(https_get(loop, port, tt::client_options()).ec == std::errc::connection_refused);
  }
  SECTION("TLS 1.3 only against TLS 1.2 only") {
    tether::tls_options so = tt::server_options();
    so.max_version = tether::tls_version::tls1_2;
    https_fixture f(so);
    f.srv->fallback([&](auto& req) { (void)req.reply(200, "never"); });
    f.bind();
    tether::tls_options co = tt::client_options();
    co.min_version = tether::tls_version::tls1_3;
    CHECK(https_get(f.loop, f.port, co).ec == errc::tls_handshake_failed);
  }
}

TEMPLATE_TEST_CASE("https: mutual TLS requires a client certificate signed by the server's CA", "[tls][mutual]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  const auto& c = tt::test_certs::get();
  tether::tls_options so = tt::server_options();
  so.ca_file = c.path("ca.pem");
  so.verify_peer = true;
  https_fixture<TestType> f(so);
  f.srv->fallback([&](auto& req) {
    ++f.handled;
    (void)req.reply(200, "client known");
  });
  f.bind();
  tether::tls_options with_cert = tt::client_options();
  with_cert.certificate_chain_file = c.path("client.pem");
  with_cert.private_key_file = c.path("client.key");
  auto ok = https_get(f.loop, f.port, with_cert);
  CHECK(ok.body == "client known");
  // Without one: TLS 1.3 finishes the client's side of the handshake before the server
  // checks, so the refusal arrives as the connection closing instead of an answer.
  auto refused = https_get(f.loop, f.port, tt::client_options());
  CAPTURE(refused.ec.message());
  CHECK(refused.ec == errc::no_response);
  // TLS 1.2: the server checks within the handshake, and the client sees it fail.
  tether::tls_options tls12 = tt::client_options();
  tls12.max_version = tether::tls_version::tls1_2;
  auto refused12 = https_get(f.loop, f.port, tls12);
  CAPTURE(refused12.ec.message());
  CHECK(refused12.ec == errc::tls_handshake_failed);
  CHECK(f.handled == 1);
  REQUIRE(tt::run_until(f.loop, [&] { return f.srv->open_connections() == 0; }));
}

// ----- the close policies over TLS ------------------------------------------------------

TEMPLATE_TEST_CASE("https: a held request notices a client that vanishes without close_notify, exactly once",
                   "[tls][close][held]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  enum class ending { reset, fin, close_notify };
  const auto how = GENERATE(ending::reset, ending::fin, ending::close_notify);
  CAPTURE(static_cast<int>(how));
  https_fixture<TestType> f;
  (void)f.srv->route("/hold", [&](auto& req) {
    ++f.handled;
    (void)req.connection().on_close(f.recorder());
    f.held = req.hold();
  });
  f.bind();
  tt::tls_client c(f.port);
  REQUIRE(c.handshake(f.loop));
  c.send(f.loop, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.handled == 1; }));
  tt::run_for(f.loop, 20ms);
  REQUIRE(f.closes.empty());
  const auto gone = std::chrono::steady_clock::now();
  switch (how) {
    case ending::reset: c.reset(); break;
    case ending::fin: c.close_without_notify(); break;
    case ending::close_notify: c.close_with_notify(); break;
  }
  REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
  tt::run_for(f.loop, 50ms);
  REQUIRE(f.closes.size() == 1);  // exactly once
  CHECK(f.closes[0].aborted);
  CHECK(f.closes[0].reason == (how == ending::reset ? close_reason::peer_reset : close_reason::peer_closed));
  CHECK(f.closes[0].at - gone < tt::scaled(500ms));  // promptly
  CHECK(f.held.reply(200, "late") == errc::peer_gone);
  CHECK(f.srv->open_connections() == 0);
}

TEMPLATE_TEST_CASE("https: native_close stays blind to a held request's client on evhttp, as over TCP; the lean "
                   "engine sees it at once",
                   "[tls][close][held]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  using native_server = tt::server_on<TestType, tether::copy_buffer, tether::native_close>;
  https_fixture<native_server> f;
  (void)f.srv->route("/hold", [&](typename native_server::request& req) {
    ++f.handled;
    (void)req.connection().on_close(f.recorder());
    f.held = req.hold();
  });
  f.bind();
  tt::tls_client c(f.port);
  REQUIRE(c.handshake(f.loop));
  c.send(f.loop, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.handled == 1; }));
  c.close_without_notify();
  if constexpr (tether::is_lean_engine<TestType>) {
    // The lean engine reads in every phase whatever the close policy (docs/engine.md).
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }, 100ms));
    CHECK(f.closes[0].reason == close_reason::peer_closed);
    CHECK(f.held.reply(200, "late") == errc::peer_gone);
  } else {
    tt::run_for(f.loop, 100ms);
    CHECK(f.closes.empty());  // libevent's behaviour: nothing is armed while the request is held
    (void)f.held.reply(200, "late");
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
  }
  tt::run_for(f.loop, 20ms);
  CHECK(f.closes.size() == 1);
}

TEMPLATE_TEST_CASE("https: a streamed reply over TLS, and its client vanishing mid-stream", "[tls][close][stream]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  const bool reset = GENERATE(true, false);
  CAPTURE(reset);
  https_fixture<TestType> f;
  (void)f.srv->route("/stream", [&](auto& req) {
    ++f.handled;
    (void)req.connection().on_close(f.recorder());
    (void)req.start(200);
    (void)req.send_chunk("first piece\n");
    f.held = req.hold();
  });
  f.bind();
  tt::tls_client c(f.port);
  REQUIRE(c.handshake(f.loop));
  c.send(f.loop, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(f.loop, "first piece"));
  CHECK(c.data().find("Transfer-Encoding: chunked") != std::string::npos);
  REQUIRE_FALSE(f.held.send_chunk("second piece\n"));
  REQUIRE(c.wait_for(f.loop, "second piece"));
  if (reset) c.reset();
  else c.close_without_notify();
  REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
  tt::run_for(f.loop, 50ms);
  REQUIRE(f.closes.size() == 1);
  CHECK(f.closes[0].aborted);
  CHECK(f.closes[0].reason == (reset ? close_reason::peer_reset : close_reason::peer_closed));
  CHECK(f.held.send_chunk("into the void\n") == errc::peer_gone);
}

TEMPLATE_TEST_CASE("https: the server ends a TLS connection with close_notify", "[tls][close]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  https_fixture<TestType> f;
  f.srv->fallback([&](auto& req) { (void)req.reply(200, "bye"); });
  f.bind();
  tt::tls_client c(f.port);
  REQUIRE(c.handshake(f.loop));
  c.send(f.loop, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  REQUIRE(c.wait_eof(f.loop));
  CHECK(c.data().find("bye") != std::string::npos);
  CHECK(c.clean_eof());  // SSL_read saw close_notify, not a bare FIN
}

TEMPLATE_TEST_CASE("https: a stream that ends is received whole by the HTTPS client", "[tls][stream]",
                   TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  https_fixture<TestType> f;
  (void)f.srv->route("/count", [&](auto& req) {
    (void)req.start(200);
    for (int i = 0; i < 100; ++i) (void)req.send_chunk(std::to_string(i) + "\n");
    (void)req.end();
  });
  f.bind();
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += std::to_string(i) + "\n";
  CHECK(https_get(f.loop, f.port, tt::client_options(), "/count").body == expected);
}

TEMPLATE_TEST_CASE("https: file_buffer bodies are sent without sendfile, byte for byte", "[tls][file]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  constexpr std::size_t size = 300 * 1000;
  std::string content(size, '\0');
  for (std::size_t i = 0; i < size; ++i) content[i] = static_cast<char>('a' + (i * 7) % 26);
  const std::string path = tt::test_certs::get().path("body.bin");
  std::ofstream(path, std::ios::binary) << content;
  using file_server = tt::server_on<TestType, tether::file_buffer>;
  https_fixture<file_server> f;
  auto file = tether::file::open(path);
  REQUIRE(file);
  (void)f.srv->route("/whole", [&](typename file_server::request& req) { (void)req.reply(200, file->all()); });
  (void)f.srv->route("/range", [&](typename file_server::request& req) {
    (void)req.start(200);
    (void)req.send_chunk(file->range(1000, 26));
    (void)req.send_chunk(file->range(size - 3, 100));  // clamped to the last 3 bytes
    (void)req.end();
  });
  f.bind();
  auto whole = https_get(f.loop, f.port, tt::client_options(), "/whole");
  REQUIRE_FALSE(whole.ec);
  CHECK(whole.body.size() == size);
  CHECK((whole.body == content));  // not printed: 300 kB
  const auto range = https_get(f.loop, f.port, tt::client_options(), "/range").body;
  CHECK((range == content.substr(1000, 26) + content.substr(size - 3)));
  CAPTURE(range.substr(0, 40));
}

// ----- examples/https_hello ---------------------------------------------------------------

namespace {

/// examples/https_hello in a child process, stdout on a pipe; killed by PID.
class https_hello_process {
 public:
  https_hello_process(const char* path, std::vector<std::string> args) {
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(out[1], STDERR_FILENO);
      std::vector<char*> argv{const_cast<char*>(path)};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(path, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
    ::fcntl(out_, F_SETFL, ::fcntl(out_, F_GETFL) | O_NONBLOCK);
  }
  https_hello_process(const https_hello_process&) = delete;
  https_hello_process& operator=(const https_hello_process&) = delete;
  ~https_hello_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
  }
  /// Pumps `loop` until the output contains `needle`.
  bool wait_output(tether::event_loop& loop, std::string_view needle, std::chrono::milliseconds limit = 5000ms) {
    return tt::run_until(loop, [&] {
      char buf[512];
      ssize_t n;
      while ((n = ::read(out_, buf, sizeof buf)) > 0) text_.append(buf, static_cast<std::size_t>(n));
      return text_.find(needle) != std::string::npos;
    }, limit);
  }
  /// Waits for the process to exit; its exit code (-1 if it did not within the limit).
  int wait_exit(std::chrono::milliseconds limit = 5000ms) {
    const auto end = std::chrono::steady_clock::now() + tt::scaled(limit);
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        char buf[512];
        ssize_t n;
        while ((n = ::read(out_, buf, sizeof buf)) > 0) text_.append(buf, static_cast<std::size_t>(n));
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      ::usleep(5000);
    }
    return -1;
  }
  const std::string& output() const noexcept { return text_; }
  void signal(int sig) const { ::kill(pid_, sig); }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string text_;
};

}  // namespace

TEST_CASE("example https_hello: serves HTTPS with the given certificate, and notices a vanished client",
          "[tls][example]") {
  const char* path = std::getenv("TETHER_EXAMPLE_HTTPS_HELLO");
  if (!path || !*path) {
    WARN("TETHER_EXAMPLE_HTTPS_HELLO is not set: run this through meson test example_https_hello");
    return;
  }
  const bool lean = GENERATE(false, true);  // https_hello --lean: the same server on the lean engine
  CAPTURE(lean);
  const auto& c = tt::test_certs::get();
  tether::event_loop loop;
  const std::uint16_t port = tt::free_port();
  std::vector<std::string> args{std::to_string(port), c.path("server.pem"), c.path("server.key")};
  if (lean) args.insert(args.begin(), "--lean");
  https_hello_process server(path, args);
  REQUIRE(server.wait_output(loop, "listening on " + std::to_string(port)));
  auto r = https_get(loop, port, tt::client_options(), "/anything");
  REQUIRE_FALSE(r.ec);
  CHECK(r.status == 200);
  CHECK(r.body == "hello over TLS\n");
  {
    tt::tls_client client(port);
    REQUIRE(client.handshake(loop));
    client.send(loop, "GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(client.wait_for(loop, "waiting..."));
    client.reset();
  }
  CHECK(server.wait_output(loop, "client left: peer_reset"));
  // Like every example, it drains on SIGTERM and exits with status 0 (docs/drain.md).
  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
}

TEST_CASE("example https_hello: a bad key or usage exits 1 with the reason", "[tls][example]") {
  const char* path = std::getenv("TETHER_EXAMPLE_HTTPS_HELLO");
  if (!path || !*path) {
    WARN("TETHER_EXAMPLE_HTTPS_HELLO is not set: run this through meson test example_https_hello");
    return;
  }
  const auto& c = tt::test_certs::get();
  {
    https_hello_process p(path, {"8443", c.path("server.pem"), c.path("other-ca.key")});
    CHECK(p.wait_exit() == 1);
    CHECK(p.output().find("does not match") != std::string::npos);
  }
  {
    https_hello_process p(path, {"8443", c.path("server.pem"), c.path("server-enc.key")});
    CHECK(p.wait_exit() == 1);
    CHECK(p.output().find("passphrase") != std::string::npos);
  }
  {
    https_hello_process p(path, {"8443"});
    CHECK(p.wait_exit() == 1);
    CHECK(p.output().find("usage") != std::string::npos);
  }
}

TEMPLATE_TEST_CASE("https: a client that never finishes its handshake is closed by the head timeout",
                   "[tls][handshake][limits]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  https_fixture<TestType> f;
  f.srv->set_head_timeout(200ms);
  f.srv->fallback([&](auto& req) {
    ++f.handled;
    (void)req.reply(200, "never");
  });
  f.bind();
  const std::size_t fds = tt::open_fds();
  const auto start = std::chrono::steady_clock::now();
  {
    tt::client c(f.port);
    c.send(std::string_view("\x16\x03\x01\x02\x00", 5));  // the start of a ClientHello record, and nothing more
    REQUIRE(c.wait_eof(f.loop, 3000ms));
  }
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 150ms);
  CHECK(took < tt::scaled(2000ms));
  REQUIRE(tt::run_until(f.loop, [&] { return f.srv->open_connections() == 0 && tt::open_fds() == fds; }));
  CHECK(f.handled == 0);
}

TEMPLATE_TEST_CASE("https_client: the close callback says why the server closed an idle TLS connection",
                   "[tls][close][client]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  https_fixture<TestType> f;
  f.srv->set_idle_timeout(200ms);
  f.srv->fallback([&](auto& req) { (void)req.reply(200, "once"); });
  f.bind();
  auto ctx = tether::tls_context::client(tt::client_options());
  auto conn = tether::https_client(f.loop, *ctx, "127.0.0.1", f.port);
  REQUIRE(conn);
  std::vector<tether::client_close_reason> reasons;
  conn->on_close([&](const tether::client_close_event& e) { reasons.push_back(e.reason); });
  bool done = false;
  REQUIRE(conn->get("/", [&](std::error_code ec, const tether::client_response&) { done = !ec; }));
  REQUIRE(tt::run_until(f.loop, [&] { return done; }));
  REQUIRE(tt::run_until(f.loop, [&] { return !reasons.empty(); }));
  tt::run_for(f.loop, 50ms);
  REQUIRE(reasons.size() == 1);
  CAPTURE(to_string(reasons[0]));
  // The server sends close_notify before its FIN (libevent alone sends none, and the
  // client's OpenSSL would answer the bare FIN with an alert, turning it into a RST).
  CHECK(reasons[0] == tether::client_close_reason::peer_closed);
}

TEMPLATE_TEST_CASE("https: SSE over TLS: events written outside the handler arrive, a FIN is peer_gone once",
                   "[tls][sse]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  https_fixture<TestType> f;
  std::optional<typename TestType::sse_stream> s;
  f.srv->fallback([&](auto& req) {
    (void)req.connection().on_close(f.recorder());
    s.emplace(std::move(*tether::sse_stream::start(req)));
  });
  f.bind();
  tt::tls_client c(f.port);
  REQUIRE(c.handshake(f.loop));
  c.send(f.loop, "GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return s.has_value(); }));
  for (int i = 0; i < 20; ++i) REQUIRE_FALSE(s->send({.id = std::to_string(i), .data = "tick " + std::to_string(i)}));
  REQUIRE(c.wait_for(f.loop, "id: 19\ndata: tick 19\n\n"));
  CHECK(c.data().find("Content-Type: text/event-stream\r\n") != std::string::npos);
  CHECK(c.data().find("id: 7\ndata: tick 7\n\n") != std::string::npos);
  c.close_without_notify();
  REQUIRE(tt::run_until(f.loop, [&] { return s->peer_gone(); }));
  tt::run_for(f.loop, 30ms);
  REQUIRE(f.closes.size() == 1);
  CHECK(f.closes[0].reason == close_reason::peer_closed);
  CHECK(s->send({.data = "late"}) == errc::peer_gone);
}

TEMPLATE_TEST_CASE("https: pipelined requests in one TLS record larger than the read buffer are all answered",
                   "[tls][pipelining]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  // One SSL_write: a 12 KB POST and two GETs behind it, one record. The lean engine reads
  // 4 KiB of it first; the rest is inside OpenSSL, not in the socket, and no read event
  // would come for it (the client sends nothing more).
  https_fixture<TestType> f;
  std::vector<std::size_t> bodies;
  f.srv->fallback([&](auto& req) {
    bodies.push_back(req.body().size());
    (void)req.reply(200, "answer " + std::to_string(bodies.size()) + ";");
  });
  f.bind();
  tt::tls_client c(f.port);
  REQUIRE(c.handshake(f.loop));
  const std::string body(12000, 'b');
  c.send(f.loop, "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 12000\r\n\r\n" + body +
                     "GET /b HTTP/1.1\r\nHost: t\r\n\r\nGET /c HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(f.loop, "answer 3;"));
  CHECK(bodies == std::vector<std::size_t>{12000, 0, 0});
  CHECK(c.data().find("answer 1;") < c.data().find("answer 2;"));
}

TEMPLATE_TEST_CASE("https: a reply larger than the socket takes waits for writability and arrives whole",
                   "[tls][write]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  https_fixture<TestType> f;
  std::string big(2 * 1000 * 1000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('A' + (i * 13) % 26);
  f.srv->fallback([&](auto& req) {
    const int small = 8192;  // the reply's writes meet EAGAIN many times
    ::setsockopt(tt::socket_of(req), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    (void)req.reply(200, big);
  });
  f.bind();
  tt::tls_client c(f.port);
  REQUIRE(c.handshake(f.loop));
  c.send(f.loop, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  tt::run_for(f.loop, 50ms);  // the client reads nothing yet: the server's socket fills
  REQUIRE(c.wait_eof(f.loop, 10000ms));
  const auto at = c.data().find("\r\n\r\n");
  REQUIRE(at != std::string::npos);
  CHECK(c.data().size() - at - 4 == big.size());
  CHECK((c.data().substr(at + 4) == big));  // not printed: 2 MB
  CHECK(c.clean_eof());
}

TEMPLATE_TEST_CASE("https: past max_connections a TLS client is turned away, and the one admitted is served",
                   "[tls][limits]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  https_fixture<TestType> f;
  f.srv->set_max_connections(1);
  int handled = 0;
  f.srv->fallback([&](auto& req) {
    ++handled;
    (void)req.reply(200, "admitted");
  });
  f.bind();
  tt::tls_client first(f.port);
  REQUIRE(first.handshake(f.loop));
  REQUIRE(tt::run_until(f.loop, [&] { return f.srv->open_connections() == 1; }));
  if constexpr (tt::is_lean<TestType>()) {
    // The lean engine closes it before a handshake: its plain-text 503 would mean nothing
    // on a TLS port. Not a byte comes back.
    tt::client second(f.port);
    REQUIRE(second.wait_eof(f.loop));
    CHECK(second.data().empty());
  } else {
    // The evhttp engine turns it away over TLS (or fails its handshake).
    tt::tls_client second(f.port);
    if (second.handshake(f.loop)) {
      second.send(f.loop, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
      REQUIRE(second.wait_eof(f.loop));
      CHECK(second.data().find("admitted") == std::string::npos);
    }
  }
  first.send(f.loop, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(first.wait_for(f.loop, "admitted"));
  CHECK(handled == 1);
}
