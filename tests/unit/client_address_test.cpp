// The peer-address rule without a socket: which entry of X-Forwarded-For / Forwarded is
// believed (the rightmost, and only from a trusted proxy), and what forged, malformed,
// IPv6, obfuscated and unknown values give. tests/integration/deploy_test.cpp checks the
// same rule through a real nginx.
#include <tether/client_address.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <string_view>

using tether::address_source;
using tether::forwarding_header;
using tether::proxy_trust;
using tether::resolve_client_address;

namespace {
const proxy_trust xff{.proxies = {"127.0.0.1", "::1"}};
const proxy_trust fwd{.proxies = {"10.0.0.7"}, .header = forwarding_header::forwarded};
}  // namespace

TEST_CASE("client_address: nobody is trusted by default, so headers are ignored", "[client_address]") {
  const proxy_trust none{};
  const auto a = resolve_client_address("203.0.113.9", "198.51.100.1", none);
  CHECK(a.address == "203.0.113.9");
  CHECK(a.source == address_source::socket_peer);
  const auto b = resolve_client_address("127.0.0.1", "198.51.100.1", none);
  CHECK(b.address == "127.0.0.1");
  CHECK(b.source == address_source::socket_peer);
}

TEST_CASE("client_address: a peer that is not a trusted proxy is the client, whatever it writes", "[client_address]") {
  const auto a = resolve_client_address("203.0.113.9", "198.51.100.1", xff);
  CHECK(a.address == "203.0.113.9");
  CHECK(a.source == address_source::socket_peer);
  const auto b = resolve_client_address("203.0.113.9", "for=198.51.100.1", fwd);
  CHECK(b.source == address_source::socket_peer);
}

TEST_CASE("client_address: X-Forwarded-For gives the rightmost entry, not the client's forged ones", "[client_address]") {
  auto a = resolve_client_address("127.0.0.1", "1.2.3.4, 5.6.7.8,198.51.100.1", xff);
  CHECK(a.address == "198.51.100.1");
  CHECK(a.source == address_source::header);
  a = resolve_client_address("127.0.0.1", "198.51.100.1", xff);
  CHECK(a.address == "198.51.100.1");
  a = resolve_client_address("127.0.0.1", "  2001:db8::1 ", xff);  // nginx's $remote_addr: bare IPv6
  CHECK(a.address == "2001:db8::1");
  a = resolve_client_address("127.0.0.1", "[2001:db8::1]:4711", xff);
  CHECK(a.address == "2001:db8::1");
  a = resolve_client_address("127.0.0.1", "192.0.2.1:80", xff);
  CHECK(a.address == "192.0.2.1");
  a = resolve_client_address("0:0:0:0:0:0:0:1", "192.0.2.2", xff);  // "::1" spelled out is trusted too
  CHECK(a.address == "192.0.2.2");
  CHECK(a.source == address_source::header);
}

TEST_CASE("client_address: malformed or missing headers from a trusted proxy give the proxy, flagged", "[client_address]") {
  for (std::optional<std::string_view> v :
       {std::optional<std::string_view>{}, std::optional<std::string_view>{""}, std::optional<std::string_view>{"1.2.3.4,"},
        std::optional<std::string_view>{"evil.example"}, std::optional<std::string_view>{"1.2.3.4, 999.1.1.1"},
        std::optional<std::string_view>{"1.2.3.4, [2001:db8::1"}, std::optional<std::string_view>{"1.2.3.4:99999"},
        std::optional<std::string_view>{"[1.2.3.4]:80"}, std::optional<std::string_view>{"198.51.100.1 x"}}) {
    INFO((v ? std::string(*v) : std::string("(no header)")));
    const auto a = resolve_client_address("127.0.0.1", v, xff);
    CHECK(a.address == "127.0.0.1");
    CHECK(a.source == address_source::malformed);
  }
}

TEST_CASE("client_address: Forwarded (RFC 7239) takes the last element's for=, IPv6 quoted with its port", "[client_address]") {
  auto a = resolve_client_address("10.0.0.7", "for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\"", fwd);
  CHECK(a.address == "2001:db8:cafe::17");
  CHECK(a.source == address_source::header);
  a = resolve_client_address("10.0.0.7", "for=1.2.3.4;proto=http, For=192.0.2.60;proto=https;by=203.0.113.43", fwd);
  CHECK(a.address == "192.0.2.60");
  a = resolve_client_address("10.0.0.7", "for=\"192.0.2.43:47011\"", fwd);
  CHECK(a.address == "192.0.2.43");
  a = resolve_client_address("10.0.0.7", "for=\"[2001:db8::1]\"", fwd);
  CHECK(a.address == "2001:db8::1");
  // A comma inside a quoted value of the client's element does not split the list.
  a = resolve_client_address("10.0.0.7", "for=\"x,y\";by=a, for=192.0.2.9", fwd);
  CHECK(a.address == "192.0.2.9");
  // The client's own Forwarded header is ignored when the proxy writes X-Forwarded-For:
  // only the configured header is read (client_address_of passes only that one).
  CHECK(resolve_client_address("10.0.0.7", "for=192.0.2.9", proxy_trust{.proxies = {"10.0.0.7"}}).source ==
        address_source::malformed);
}

TEST_CASE("client_address: unknown and obfuscated identifiers are undisclosed, not addresses", "[client_address]") {
  auto a = resolve_client_address("10.0.0.7", "for=192.0.2.1, for=unknown", fwd);
  CHECK(a.address == "unknown");
  CHECK(a.source == address_source::undisclosed);
  a = resolve_client_address("10.0.0.7", "for=_hidden", fwd);
  CHECK(a.address == "_hidden");
  CHECK(a.source == address_source::undisclosed);
  a = resolve_client_address("10.0.0.7", "for=\"_SEVKISEK\"", fwd);
  CHECK(a.source == address_source::undisclosed);
  a = resolve_client_address("10.0.0.7", "for=\"192.0.2.43:_port9\"", fwd);  // obfuscated port, real node
  CHECK(a.address == "192.0.2.43");
  CHECK(a.source == address_source::header);
  a = resolve_client_address("127.0.0.1", "1.2.3.4, unknown", xff);
  CHECK(a.source == address_source::undisclosed);
}

TEST_CASE("client_address: malformed Forwarded values are refused", "[client_address]") {
  for (std::string_view v : {"for=[2001:db8::1]:80",   // IPv6 must be quoted
                             "for=2001:db8::1",        // and bracketed
                             "for=\"2001:db8::1\"",    //
                             "for=\"[2001:db8::1]:x\"",  // bad port
                             "for=\"192.0.2.1",        // open quote
                             "for=192.0.2.1, ",        // empty last element
                             "for=192.0.2.1, proto=https",  // last element says nothing of the client
                             "for=192.0.2.1;for=192.0.2.2",  // for= twice in one element
                             "for=",                   //
                             "=192.0.2.1",             //
                             "for=192.0.2.1;;",        //
                             "for=\"_bad!id\"",        //
                             "for=evil.example"}) {
    INFO(std::string(v));
    const auto a = resolve_client_address("10.0.0.7", v, fwd);
    CHECK(a.source == address_source::malformed);
    CHECK(a.address == "10.0.0.7");
  }
}

TEST_CASE("client_address: last_forwarded_for unquotes", "[client_address]") {
  CHECK(tether::last_forwarded_for("for=a, for=\"[::1]:8\\0\"") == "[::1]:80");
  CHECK(tether::last_forwarded_for("proto=http") == std::nullopt);
}
