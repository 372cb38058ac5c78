// TLS (tether/tls.hpp): contexts and their errors, HTTPS server and client over real
// loopback sockets, the close policies when a client vanishes without close_notify,
// streams and file bodies over TLS, handshakes that fail. Certificates are made by the
// openssl command at test time (support/tls.hpp).
#include <tether/tether.hpp>
#include <tether/tls.hpp>

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

struct recorded_close {
  close_reason reason;
  bool aborted;
  std::chrono::steady_clock::time_point at;
};

template <class Server = tether::server>
struct https_fixture {
  std::vector<recorded_close> closes;  // before the server: its destructor runs close callbacks
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

TEST_CASE("use_tls and https_client refuse a context of the other role", "[tls][context]") {
  tether::event_loop loop;
  tether::server srv{loop};
  auto client = tether::tls_context::client(tt::client_options());
  auto server = tether::tls_context::server(tt::server_options());
  REQUIRE(client);
  REQUIRE(server);
  CHECK(tether::use_tls(srv, *client) == errc::invalid_argument);
  CHECK(tether::https_client(loop, *server, "127.0.0.1", 443).error() == errc::invalid_argument);
}

// ----- requests -------------------------------------------------------------------------

TEST_CASE("https: a request and its reply, and several on one kept-alive connection", "[tls][request]") {
  https_fixture f;
  f.srv->route("/hello", [&](tether::request& req) {
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

TEST_CASE("https: a plain-text client of the TLS port is refused, and nothing leaks", "[tls][handshake]") {
  https_fixture f;
  f.srv->fallback([&](tether::request& req) {
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
