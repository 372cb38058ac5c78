// The CORS policy's rules without a socket: which settings make() refuses (and the
// sentence it gives), how origins are normalized, and which headers a reply and a
// preflight get. tests/integration/cors_test.cpp checks the same rules on the wire.
#include <tether/cors.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

using header_pairs = std::vector<std::pair<std::string, std::string>>;

struct collect {
  header_pairs* out;
  void operator()(tether::cstring_view name, tether::cstring_view value) const {
    out->emplace_back(std::string(name.view()), std::string(value.view()));
  }
};

header_pairs reply_headers(const tether::cors& p, std::optional<std::string_view> origin, bool* allowed = nullptr) {
  header_pairs h;
  const bool ok = p.reply_headers(origin, collect{&h});
  if (allowed) *allowed = ok;
  return h;
}

header_pairs preflight_headers(const tether::cors& p, std::string_view origin, const char* requested = nullptr,
                              bool* allowed = nullptr) {
  header_pairs h;
  const bool ok = p.preflight_headers(origin, requested, collect{&h});
  if (allowed) *allowed = ok;
  return h;
}

tether::cors make(const tether::cors_options& o) {
  auto p = tether::cors::make(o);
  INFO(tether::cors::problem(o));
  REQUIRE(p);
  return *p;
}

}  // namespace

TEST_CASE("cors: origins are normalized as browsers send them", "[cors]") {
  using tether::detail::normalize_origin;
  CHECK(normalize_origin("http://127.0.0.1:8000").origin == "http://127.0.0.1:8000");
  CHECK(normalize_origin("HTTPS://App.Example.COM").origin == "https://app.example.com");
  CHECK(normalize_origin("http://example.com:80").origin == "http://example.com");    // default port
  CHECK(normalize_origin("https://example.com:443").origin == "https://example.com");  // default port
  CHECK(normalize_origin("https://example.com:80").origin == "https://example.com:80");
  CHECK(normalize_origin("http://example.com:08080").origin == "http://example.com:8080");
  CHECK(normalize_origin("http://[::1]:8080").origin == "http://[::1]:8080");
  CHECK(normalize_origin("http://[::1]").origin == "http://[::1]");
}

TEST_CASE("cors: malformed origins are refused with the reason", "[cors]") {
  using tether::detail::normalize_origin;
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"https://app.example/", "no path, query or trailing slash"},
      {"https://app.example/path", "no path"},
      {"https://app.example?x", "no path, query"},
      {"app.example", "scheme://host[:port]"},
      {"://app.example", "scheme://host[:port]"},
      {"1http://app.example", "scheme is letters"},
      {"http://", "needs a host"},
      {"http://:80", "needs a host"},
      {"http://a b", "host holds letters"},
      {"http://a:", "port is 1 to 65535"},
      {"http://a:0", "port is 1 to 65535"},
      {"http://a:65536", "port is 1 to 65535"},
      {"http://a:8x", "port is 1 to 65535"},
      {"http://user@a", "no user name"},
      {"http://[::1", "closing ']'"},
      {"http://[::1]x", "followed only by :port"},
      {"http://[]", "needs a host"},
      {"http://[::g]", "hex digits"},
      {"null", "\"null\" is refused"},
      {"*", "set any_origin"},
  };
  for (const auto& [text, reason] : cases) {
    INFO(text);
    const auto r = normalize_origin(text);
    CHECK(r.origin.empty());
    CHECK_THAT(std::string(r.problem), Catch::Contains(reason));
  }
}

TEST_CASE("cors: make() refuses inconsistent settings and says which", "[cors]") {
  const std::vector<std::pair<tether::cors_options, const char*>> cases = {
      {{}, "no origin is allowed"},
      {{.origins = {"http://a"}, .any_origin = true}, "either origins"},
      {{.any_origin = true, .credentials = true}, "credentials need an exact list of origins"},
      {{.origins = {"http://a/"}}, "trailing slash"},
      {{.origins = {"http://a", "null"}}, "\"null\" is refused"},
      {{.origins = {"*"}, .credentials = true}, "set any_origin"},
      {{.origins = {"http://a"}, .headers = {"X-Ok", "Bad Header"}}, "a header name is a token"},
      {{.origins = {"http://a"}, .headers = {"*"}}, "set any_header"},
      {{.origins = {"http://a"}, .credentials = true, .exposed_headers = {"*"}}, "only without credentials"},
      {{.origins = {"http://a"}, .exposed_headers = {"X: y"}}, "a header name is a token"},
      {{.origins = {"http://a"}, .max_age = -1s}, "max_age"},
  };
  for (const auto& [options, reason] : cases) {
    INFO(reason);
    CHECK_THAT(std::string(tether::cors::problem(options)), Catch::Contains(reason));
    const auto p = tether::cors::make(options);
    REQUIRE_FALSE(p);
    CHECK(p.error() == tether::errc::invalid_argument);
  }
  CHECK(tether::cors::problem({.any_origin = true, .exposed_headers = {"*"}}).empty());
  CHECK(tether::cors::problem({.origins = {"http://a"}, .credentials = true, .any_header = true}).empty());
}

TEST_CASE("cors: an exact list reflects the allowed origin and always varies on Origin", "[cors]") {
  const auto p = make({.origins = {"http://app.example", "http://127.0.0.1:8000"}});
  bool allowed = false;
  CHECK(reply_headers(p, "http://127.0.0.1:8000", &allowed) ==
        header_pairs{{"Vary", "Origin"}, {"Access-Control-Allow-Origin", "http://127.0.0.1:8000"}});
  CHECK(allowed);
  // Another origin (even one differing only in port or scheme) gets Vary and nothing else.
  for (const char* other : {"http://evil.example", "http://127.0.0.1:8001", "https://app.example", "null", ""}) {
    INFO(other);
    CHECK(reply_headers(p, other, &allowed) == header_pairs{{"Vary", "Origin"}});
    CHECK_FALSE(allowed);
  }
  // No Origin: not a cross-origin request; the reply still varies on Origin for caches.
  CHECK(reply_headers(p, std::nullopt, &allowed) == header_pairs{{"Vary", "Origin"}});
  CHECK(allowed);
  CHECK(p.allows_origin("http://app.example"));
  CHECK_FALSE(p.allows_origin("http://APP.example"));  // browsers send lowercase; so must others
}

TEST_CASE("cors: a configured origin matches what browsers send, whatever its case or default port", "[cors]") {
  const auto p = make({.origins = {"HTTP://App.Example:80"}});
  CHECK(p.allows_origin("http://app.example"));
  CHECK(reply_headers(p, "http://app.example") ==
        header_pairs{{"Vary", "Origin"}, {"Access-Control-Allow-Origin", "http://app.example"}});
}

TEST_CASE("cors: any_origin answers '*' to everyone, with no Vary and no credentials", "[cors]") {
  const auto p = make({.any_origin = true, .exposed_headers = {"X-Id"}});
  CHECK(reply_headers(p, "http://whoever.example") ==
        header_pairs{{"Access-Control-Allow-Origin", "*"}, {"Access-Control-Expose-Headers", "X-Id"}});
  CHECK(reply_headers(p, std::nullopt) == header_pairs{{"Access-Control-Allow-Origin", "*"}});
  CHECK(reply_headers(p, "null") == header_pairs{{"Access-Control-Allow-Origin", "*"}, {"Access-Control-Expose-Headers", "X-Id"}});
}

TEST_CASE("cors: credentials add Allow-Credentials and never '*'", "[cors]") {
  const auto p = make({.origins = {"https://app.example"}, .credentials = true, .exposed_headers = {"Last-Event-ID", "X-Id"}});
  CHECK(p.credentials());
  CHECK(reply_headers(p, "https://app.example") == header_pairs{{"Vary", "Origin"},
                                                               {"Access-Control-Allow-Origin", "https://app.example"},
                                                               {"Access-Control-Allow-Credentials", "true"},
                                                               {"Access-Control-Expose-Headers", "Last-Event-ID, X-Id"}});
  CHECK(reply_headers(p, "https://evil.example") == header_pairs{{"Vary", "Origin"}});
}

TEST_CASE("cors: a preflight gets methods, headers and max-age; another origin gets none of them", "[cors]") {
  const auto p = make({.origins = {"http://app.example"},
                       .credentials = true,
                       .methods = tether::method::get | tether::method::post | tether::method::delete_,
                       .headers = {"Content-Type", "X-Chat-User"},
                       .max_age = 600s});
  CHECK(p.methods() == (tether::method::get | tether::method::post | tether::method::delete_));
  bool allowed = false;
  CHECK(preflight_headers(p, "http://app.example", "x-chat-user", &allowed) ==
        header_pairs{{"Vary", "Origin"},
                    {"Access-Control-Allow-Origin", "http://app.example"},
                    {"Access-Control-Allow-Credentials", "true"},
                    {"Access-Control-Allow-Methods", "GET, POST, DELETE"},
                    {"Access-Control-Allow-Headers", "Content-Type, X-Chat-User"},
                    {"Access-Control-Max-Age", "600"}});
  CHECK(allowed);
  CHECK(preflight_headers(p, "http://evil.example", "x-chat-user", &allowed) == header_pairs{{"Vary", "Origin"}});
  CHECK_FALSE(allowed);
}

TEST_CASE("cors: any_header echoes the requested headers and varies on them", "[cors]") {
  const auto p = make({.origins = {"http://app.example"}, .any_header = true});
  CHECK(preflight_headers(p, "http://app.example", "content-type,x-a") ==
        header_pairs{{"Vary", "Origin, Access-Control-Request-Headers"},
                    {"Access-Control-Allow-Origin", "http://app.example"},
                    {"Access-Control-Allow-Methods", "GET, HEAD, POST"},
                    {"Access-Control-Allow-Headers", "content-type,x-a"}});
  CHECK(preflight_headers(p, "http://app.example", nullptr) ==
        header_pairs{{"Vary", "Origin, Access-Control-Request-Headers"},
                    {"Access-Control-Allow-Origin", "http://app.example"},
                    {"Access-Control-Allow-Methods", "GET, HEAD, POST"}});
  const auto any = make({.any_origin = true, .any_header = true});
  CHECK(preflight_headers(any, "http://x.example", "x-a") ==
        header_pairs{{"Vary", "Access-Control-Request-Headers"},
                    {"Access-Control-Allow-Origin", "*"},
                    {"Access-Control-Allow-Methods", "GET, HEAD, POST"},
                    {"Access-Control-Allow-Headers", "x-a"}});
}

TEST_CASE("cors: a wrapped handler answers OPTIONS itself, and servers let OPTIONS through", "[cors]") {
  const auto p = make({.any_origin = true});
  auto h = p.wrap([](auto&) {});
  STATIC_REQUIRE(decltype(h)::own_methods == tether::method::options);
  STATIC_REQUIRE(tether::handler_own_methods<decltype(h)> == tether::method::options);
  STATIC_REQUIRE(tether::handler_own_methods<decltype(h)&> == tether::method::options);
  STATIC_REQUIRE(tether::handler_own_methods<void (*)(tether::request&)>.empty());
  // A static route of a wrapped handler answers OPTIONS as well as what it declares.
  using route = decltype(tether::get<"/events">(p.wrap([](auto&) {})));
  STATIC_REQUIRE(route::methods == (tether::method::get | tether::method::options));
  STATIC_REQUIRE(decltype(tether::get<"/plain">([](auto&) {}))::methods == tether::method::get);
}
