// A program that includes tether/tls.hpp and links what dependency('tether-tls') brings
// (libevent_openssl and OpenSSL, docs/tls.md): it makes a client context and an HTTPS
// client connection (nothing is connected until a request), then exits 0.
#include <tether/event_loop.hpp>
#include <tether/tls.hpp>

int main() {
  tether::event_loop loop;
  auto ctx = tether::tls_context::client();
  if (!ctx) return 1;
  auto conn = tether::https_client(loop, *ctx, "127.0.0.1", 1);
  return conn ? 0 : 2;
}
