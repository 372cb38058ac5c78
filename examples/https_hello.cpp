// Example: an HTTPS server (tether/tls.hpp). Answers every path with 200 "hello over TLS",
// and prints one line when a client hangs up during a streamed reply (/stream), TLS or not.
//
// Usage: https_hello [--lean] PORT CERT KEY [PASSPHRASE]
//   CERT  PEM certificate chain (leaf first); KEY  its PEM private key.
//   --lean  the same server on the lean engine (docs/engine.md).
// Try it with a self-signed certificate:
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30
//       -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem
//   (one command)
//   https_hello 8443 cert.pem key.pem
//   curl --cacert cert.pem https://localhost:8443/
//   curl -N --cacert cert.pem https://localhost:8443/stream    (then Ctrl-C)
// Prints "listening on PORT" once it serves. Exits 1 with the reason on a bad port,
// certificate or key.
#include <tether/tether.hpp>
#include <tether/tls.hpp>

#include "support/self_client.hpp"

#include <cstdio>
#include <string>

namespace {

template <class Server>
int serve(std::uint16_t port, const tether::tls_context& tls) {
  tether::event_loop loop;
  Server server{loop};
  if (auto ec = tether::use_tls(server, tls)) {
    std::fprintf(stderr, "https_hello: %s\n", ec.message().c_str());
    return 1;
  }
  (void)server.route("/stream", [](auto& req) {
    (void)req.connection().on_close([](const tether::close_event& e) noexcept {
      std::printf("client left: %s\n", std::string(to_string(e.reason)).c_str());
      std::fflush(stdout);
    });
    (void)req.output_headers().add("Content-Type", "text/plain");
    (void)req.start(200);  // a reply that stays open until the client leaves
    (void)req.send_chunk("hello over TLS, waiting...\n");
  });
  server.fallback([](auto& req) {
    (void)req.output_headers().add("Content-Type", "text/plain");
    (void)req.reply(200, "hello over TLS\n");
  });
  const auto bound = server.bind("0.0.0.0", port);
  if (!bound) {
    std::fprintf(stderr, "https_hello: %s\n", bound.error().message().c_str());
    return 1;
  }
  // SIGTERM or SIGINT: finish what is in flight, close cleanly, exit 0 (docs/drain.md).
  tether::drain_on_signals stop{loop, server, std::chrono::seconds(10)};
  std::printf("listening on %u\n", static_cast<unsigned>(*bound));
  std::fflush(stdout);
  loop.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool lean = example::take_flag(argc, argv, "--lean");  // the rest as without it
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: https_hello [--lean] PORT CERT KEY [PASSPHRASE]\n");
    return 1;
  }
  const auto port = tether::parse_port(argv[1]);
  if (!port) {
    std::fprintf(stderr, "https_hello: invalid port %s\n", argv[1]);
    return 1;
  }
  tether::tls_options options;
  options.certificate_chain_file = argv[2];
  options.private_key_file = argv[3];
  if (argc == 5) options.passphrase = argv[4];
  auto tls = tether::tls_context::server(options);
  if (!tls) {
    std::fprintf(stderr, "https_hello: %s\n", tls.error().message().c_str());
    return 1;
  }
  return lean ? serve<tether::lean_server>(*port, *tls) : serve<tether::server>(*port, *tls);
}
