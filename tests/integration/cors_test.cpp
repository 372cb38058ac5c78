// CORS on the wire, with raw sockets: every header rule of tether::cors as a client sees
// it, on plain replies, SSE, multipart and long-poll replies, preflights answered by the
// server, and OPTIONS let through by every way of routing a wrapped handler.
// tests/browser/ checks what a real browser makes of it.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// The status line and headers of the first reply in `raw`.
struct reply_head {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;

  explicit reply_head(const std::string& raw) {
    const auto end = raw.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    REQUIRE(raw.compare(0, 9, "HTTP/1.1 ") == 0);
    status = std::stoi(raw.substr(9, 3));
    std::size_t pos = raw.find("\r\n") + 2;
    while (pos < end) {
      const auto eol = raw.find("\r\n", pos);
      const std::string line = raw.substr(pos, eol - pos);
      const auto colon = line.find(':');
      headers.emplace_back(line.substr(0, colon), line.substr(line.find_first_not_of(' ', colon + 1)));
      pos = eol + 2;
    }
  }
  std::size_t count(std::string_view name) const {
    std::size_t n = 0;
    for (const auto& h : headers)
      if (tether::detail::ascii_iequal(h.first, name)) ++n;
    return n;
  }
  /// The value of the only `name` header ("" if there is none; fails if several).
  std::string value(std::string_view name) const {
    CHECK(count(name) <= 1);
    for (const auto& h : headers)
      if (tether::detail::ascii_iequal(h.first, name)) return h.second;
    return {};
  }
  /// Every Access-Control-* header.
  std::size_t cors_headers() const {
    std::size_t n = 0;
    for (const auto& h : headers)
      if (h.first.size() > 15 && tether::detail::ascii_iequal(h.first.substr(0, 15), "Access-Control-")) ++n;
    return n;
  }
};

/// Sends `request` on a new connection and returns the reply's head once it arrived.
reply_head exchange(tether::event_loop& loop, std::uint16_t port, const std::string& request) {
  tt::client c(port);
  c.send(request);
  REQUIRE(c.wait_for(loop, "\r\n\r\n"));
  return reply_head(c.data());
}

std::string get(std::string_view path, std::string_view origin = {}, std::string_view extra = {}) {
  std::string r = "GET " + std::string(path) + " HTTP/1.1\r\nHost: api.example\r\n";
  if (!origin.empty()) r += "Origin: " + std::string(origin) + "\r\n";
  return r + std::string(extra) + "\r\n";
}

std::string preflight(std::string_view path, std::string_view origin, std::string_view method = "GET",
                      std::string_view headers = {}) {
  std::string r = "OPTIONS " + std::string(path) + " HTTP/1.1\r\nHost: api.example\r\nOrigin: " + std::string(origin) +
                  "\r\nAccess-Control-Request-Method: " + std::string(method) + "\r\n";
  if (!headers.empty()) r += "Access-Control-Request-Headers: " + std::string(headers) + "\r\n";
  return r + "\r\n";
}

constexpr std::string_view app = "http://app.example:8000";

tether::cors policy(const tether::cors_options& o) {
  auto p = tether::cors::make(o);
  INFO(tether::cors::problem(o));
  REQUIRE(p);
  return *p;
}

}  // namespace

TEMPLATE_TEST_CASE("cors: an allowed origin gets its own origin back, Vary: Origin, and the handler's reply", "[cors]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  int runs = 0;
  REQUIRE_FALSE(srv.route("/data", policy({.origins = {std::string(app)}}).wrap([&](auto& req) {
    ++runs;
    (void)req.reply(200, "data");
  })));
  const auto port = *srv.bind("127.0.0.1", 0);

  const reply_head ok = exchange(loop, port, get("/data", app));
  CHECK(ok.status == 200);
  CHECK(ok.value("Access-Control-Allow-Origin") == app);
  CHECK(ok.value("Vary") == "Origin");
  CHECK(ok.count("Access-Control-Allow-Credentials") == 0);
  CHECK(ok.cors_headers() == 1);
  CHECK(runs == 1);
}

TEMPLATE_TEST_CASE("cors: another origin gets no CORS header; the handler still runs unless refuse_other_origins", "[cors]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  int runs = 0;
  auto handler = [&](auto& req) {
    ++runs;
    (void)req.reply(200, "data");
  };
  REQUIRE_FALSE(srv.route("/open", policy({.origins = {std::string(app)}}).wrap(handler)));
  REQUIRE_FALSE(srv.route("/strict", policy({.origins = {std::string(app)}, .refuse_other_origins = true}).wrap(handler)));
  const auto port = *srv.bind("127.0.0.1", 0);

  for (const char* other : {"http://evil.example", "http://app.example:8001", "https://app.example:8000", "null"}) {
    INFO(other);
    const reply_head open = exchange(loop, port, get("/open", other));
    CHECK(open.status == 200);
    CHECK(open.cors_headers() == 0);
    CHECK(open.value("Vary") == "Origin");
    const reply_head strict = exchange(loop, port, get("/strict", other));
    CHECK(strict.status == 403);
    CHECK(strict.cors_headers() == 0);
    CHECK(strict.value("Vary") == "Origin");
  }
  CHECK(runs == 4);  // only /open's

  // Requests without Origin (curl, a same-origin GET) always pass, with Vary only.
  for (const char* path : {"/open", "/strict"}) {
    const reply_head plain = exchange(loop, port, get(path));
    CHECK(plain.status == 200);
    CHECK(plain.cors_headers() == 0);
    CHECK(plain.value("Vary") == "Origin");
  }
  CHECK(runs == 6);
  // The allowed origin passes /strict.
  CHECK(exchange(loop, port, get("/strict", app)).value("Access-Control-Allow-Origin") == app);
  CHECK(runs == 7);
}

TEMPLATE_TEST_CASE("cors: any_origin answers '*' without Vary; credentials reflect the origin and allow credentials", "[cors]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  auto reply = [](auto& req) { (void)req.reply(200, "x"); };
  REQUIRE_FALSE(srv.route("/public", policy({.any_origin = true, .exposed_headers = {"X-Id"}}).wrap(reply)));
  REQUIRE_FALSE(srv.route("/private", policy({.origins = {std::string(app)}, .credentials = true,
                                               .exposed_headers = {"Last-Event-ID", "X-Id"}})
                                          .wrap(reply)));
  const auto port = *srv.bind("127.0.0.1", 0);

  const reply_head pub = exchange(loop, port, get("/public", "http://anyone.example"));
  CHECK(pub.value("Access-Control-Allow-Origin") == "*");
  CHECK(pub.value("Access-Control-Expose-Headers") == "X-Id");
  CHECK(pub.count("Vary") == 0);
  CHECK(pub.count("Access-Control-Allow-Credentials") == 0);
  CHECK(exchange(loop, port, get("/public")).value("Access-Control-Allow-Origin") == "*");

  const reply_head priv = exchange(loop, port, get("/private", app, "Cookie: session=1\r\n"));
  CHECK(priv.value("Access-Control-Allow-Origin") == app);
  CHECK(priv.value("Access-Control-Allow-Credentials") == "true");
  CHECK(priv.value("Access-Control-Expose-Headers") == "Last-Event-ID, X-Id");
  CHECK(priv.value("Vary") == "Origin");
  const reply_head other = exchange(loop, port, get("/private", "http://evil.example", "Cookie: session=1\r\n"));
  CHECK(other.cors_headers() == 0);
}

TEMPLATE_TEST_CASE("cors: the server answers a preflight with 204 and the handler never sees it", "[cors]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  int runs = 0;
  REQUIRE_FALSE(srv.route("/send", policy({.origins = {std::string(app)},
                                            .credentials = true,
                                            .methods = tether::method::get | tether::method::post | tether::method::put,
                                            .headers = {"Content-Type", "X-Chat-User"},
                                            .max_age = 600s})
                                       .wrap([&](auto& req) {
                                         ++runs;
                                         (void)req.reply(200, "sent");
                                       })));
  const auto port = *srv.bind("127.0.0.1", 0);

  // Allowed: 204, every preflight header, and the connection stays open for the real
  // request that follows (browsers reuse it).
  tt::client c(port);
  c.send(preflight("/send", app, "POST", "content-type,x-chat-user"));
  REQUIRE(c.wait_for(loop, "\r\n\r\n"));
  const reply_head pre(c.data());
  CHECK(pre.status == 204);
  CHECK(pre.value("Access-Control-Allow-Origin") == app);
  CHECK(pre.value("Access-Control-Allow-Credentials") == "true");
  CHECK(pre.value("Access-Control-Allow-Methods") == "GET, POST, PUT");
  CHECK(pre.value("Access-Control-Allow-Headers") == "Content-Type, X-Chat-User");
  CHECK(pre.value("Access-Control-Max-Age") == "600");
  CHECK(pre.value("Vary") == "Origin");
  CHECK(pre.count("Content-Length") == 0);  // a 204 has no body and says none
  CHECK(runs == 0);
  c.clear();
  c.send("POST /send HTTP/1.1\r\nHost: api.example\r\nOrigin: " + std::string(app) +
         "\r\nContent-Type: application/json\r\nX-Chat-User: ann\r\nContent-Length: 2\r\n\r\n{}");
  REQUIRE(c.wait_for(loop, "sent"));
  const reply_head real(c.data());
  CHECK(real.status == 200);
  CHECK(real.value("Access-Control-Allow-Origin") == app);
  CHECK(real.count("Access-Control-Allow-Methods") == 0);  // preflight-only headers stay there
  CHECK(runs == 1);

  // Another origin: 204 with no CORS header, so the browser stops before the request.
  const reply_head refused = exchange(loop, port, preflight("/send", "http://evil.example", "POST", "x-chat-user"));
  CHECK(refused.status == 204);
  CHECK(refused.cors_headers() == 0);
  CHECK(refused.value("Vary") == "Origin");
  CHECK(runs == 1);
}

TEMPLATE_TEST_CASE("cors: preflights under refuse_other_origins, any_header, and a plain OPTIONS", "[cors]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  int runs = 0;
  auto handler = [&](auto& req) {
    ++runs;
    (void)req.reply(200, "x");
  };
  REQUIRE_FALSE(srv.route("/strict", policy({.origins = {std::string(app)}, .refuse_other_origins = true}).wrap(handler)));
  REQUIRE_FALSE(srv.route("/echo", policy({.origins = {std::string(app)}, .any_header = true}).wrap(handler)));
  const auto port = *srv.bind("127.0.0.1", 0);

  const reply_head refused = exchange(loop, port, preflight("/strict", "http://evil.example"));
  CHECK(refused.status == 403);
  CHECK(refused.cors_headers() == 0);
  CHECK(exchange(loop, port, preflight("/strict", app)).status == 204);

  const reply_head echo = exchange(loop, port, preflight("/echo", app, "PUT", "x-a, x-b"));
  CHECK(echo.status == 204);
  CHECK(echo.value("Access-Control-Allow-Headers") == "x-a, x-b");
  CHECK(echo.value("Vary") == "Origin, Access-Control-Request-Headers");
  CHECK(echo.value("Access-Control-Allow-Methods") == "GET, HEAD, POST");  // the browser refuses the PUT

  // OPTIONS without Access-Control-Request-Method is no preflight: 204 with Allow, and the
  // reply headers; the handler (declared for other methods) never sees it.
  const reply_head plain = exchange(loop, port, "OPTIONS /echo HTTP/1.1\r\nHost: a\r\nOrigin: " + std::string(app) + "\r\n\r\n");
  CHECK(plain.status == 204);
  CHECK(plain.value("Allow") == "GET, HEAD, POST, OPTIONS");
  CHECK(plain.value("Access-Control-Allow-Origin") == app);
  CHECK(plain.count("Access-Control-Allow-Methods") == 0);
  CHECK(runs == 0);
}

TEMPLATE_TEST_CASE("cors: OPTIONS reaches a wrapped handler however it is routed; unwrapped routes keep refusing it", "[cors]",
                   TT_ENGINE_SERVERS) {
  tether::event_loop loop;
  const auto p = policy({.origins = {std::string(app)}});
  auto reply = [](auto& req) { (void)req.reply(200, "x"); };
  TestType srv{loop};
  // OPTIONS is refused (501, as libevent does) until a route that answers it is installed.
  REQUIRE_FALSE(srv.route("/plain", reply));
  CHECK_FALSE(srv.allowed_methods().contains(tether::method::options));
  const auto port = *srv.bind("127.0.0.1", 0);
  CHECK(exchange(loop, port, preflight("/plain", app)).status == 501);

  REQUIRE_FALSE(srv.route(tether::router{
      tether::get<"/static">(p.wrap(reply)),
      tether::post<"/static-plain">(reply),
  }));
  CHECK(srv.allowed_methods().contains(tether::method::options));
  REQUIRE_FALSE(srv.route("/any", p.wrap(reply)));
  REQUIRE_FALSE(srv.route("/get-only", tether::method::get, p.wrap(reply)));
  srv.fallback(p.wrap(reply));

  for (const char* path : {"/any", "/get-only", "/static", "/elsewhere"}) {
    INFO(path);
    const reply_head pre = exchange(loop, port, preflight(path, app));
    CHECK(pre.status == 204);
    CHECK(pre.value("Access-Control-Allow-Origin") == app);
    CHECK(exchange(loop, port, get(path, app)).value("Access-Control-Allow-Origin") == app);
  }
  // Methods a route does not declare still get 405, and its Allow lists OPTIONS.
  const reply_head post = exchange(loop, port, "POST /get-only HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  CHECK(post.status == 405);
  CHECK(post.value("Allow") == "GET, HEAD, OPTIONS");
  const reply_head static_post = exchange(loop, port, "POST /static HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  CHECK(static_post.status == 405);
  CHECK(static_post.value("Allow") == "GET, HEAD, OPTIONS");
  // An unwrapped route is unchanged: OPTIONS passes libevent now, and its route says 405.
  CHECK(exchange(loop, port, preflight("/static-plain", app)).status == 405);
}

TEMPLATE_TEST_CASE("cors: SSE, multipart and long-poll replies carry the policy's headers", "[cors]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  const auto p = policy({.origins = {std::string(app)}, .credentials = true});
  std::optional<typename TestType::sse_stream> events;
  std::optional<typename TestType::multipart_stream> frames;
  typename TestType::long_poll room{loop, 100ms};
  REQUIRE_FALSE(srv.route("/events", p.wrap([&](auto& req) { events.emplace(std::move(*tether::sse_stream::start(req))); })));
  REQUIRE_FALSE(srv.route("/frames", p.wrap([&](auto& req) { frames.emplace(std::move(*tether::multipart_stream::start(req))); })));
  REQUIRE_FALSE(srv.route("/poll", p.wrap([&](auto& req) { REQUIRE_FALSE(room.wait(req)); })));
  const auto port = *srv.bind("127.0.0.1", 0);

  tt::client sse(port);
  sse.send(get("/events", app));
  REQUIRE(sse.wait_for(loop, "\r\n\r\n"));
  REQUIRE_FALSE(events->send({.id = "1", .data = "tick"}));
  REQUIRE(sse.wait_for(loop, "data: tick"));
  const reply_head sse_head(sse.data());
  CHECK(sse_head.value("Content-Type") == "text/event-stream");
  CHECK(sse_head.value("Access-Control-Allow-Origin") == app);
  CHECK(sse_head.value("Access-Control-Allow-Credentials") == "true");

  tt::client mp(port);
  mp.send(get("/frames", app));
  REQUIRE(mp.wait_for(loop, "\r\n\r\n"));
  const reply_head mp_head(mp.data());
  CHECK(mp_head.value("Content-Type") == "multipart/x-mixed-replace;boundary=boundarydonotcross");
  CHECK(mp_head.value("Access-Control-Allow-Origin") == app);

  // A held request keeps the headers until it is answered: by a notify, or by the 204 at
  // its deadline.
  tt::client notified(port);
  notified.send(get("/poll", app));
  REQUIRE(tt::run_until(loop, [&] { return room.waiting() == 1; }));
  CHECK(room.notify_all(std::string_view("message")) == 1);
  REQUIRE(notified.wait_for(loop, "message"));
  CHECK(reply_head(notified.data()).value("Access-Control-Allow-Origin") == app);
  tt::client expired(port);
  expired.send(get("/poll", app));
  REQUIRE(expired.wait_for(loop, "\r\n\r\n"));
  const reply_head timeout(expired.data());
  CHECK(timeout.status == 204);
  CHECK(timeout.value("Access-Control-Allow-Origin") == app);
}

TEMPLATE_TEST_CASE("cors: send_error() replaces every header, the policy's too (use reply() for errors a page reads)", "[cors]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  TestType srv{loop};
  const auto p = policy({.origins = {std::string(app)}});
  REQUIRE_FALSE(srv.route("/error-page", p.wrap([](auto& req) { (void)req.send_error(503); })));
  REQUIRE_FALSE(srv.route("/error-reply", p.wrap([](auto& req) { (void)req.reply(503, "busy"); })));
  const auto port = *srv.bind("127.0.0.1", 0);
  const reply_head page = exchange(loop, port, get("/error-page", app));
  CHECK(page.status == 503);
  CHECK(page.cors_headers() == 0);
  const reply_head reply = exchange(loop, port, get("/error-reply", app));
  CHECK(reply.status == 503);
  CHECK(reply.value("Access-Control-Allow-Origin") == app);
}

TEMPLATE_TEST_CASE("cors: OPTIONS reaches a wrapped handler on runtime routes and the fallback; other methods get 405 with OPTIONS in Allow",
                   "[cors]", TT_ENGINE_SERVERS) {
  INFO("engine " << tt::engine_name<TestType>());
  tether::event_loop loop;
  const auto p = policy({.origins = {std::string(app)}});
  int runs = 0;
  auto reply = [&](auto& req) {
    ++runs;
    (void)req.reply(200, "x");
  };
  TestType srv{loop};
  REQUIRE_FALSE(srv.route("/any", p.wrap(reply)));
  REQUIRE_FALSE(srv.route("/get-only", tether::method::get, p.wrap(reply)));
  REQUIRE_FALSE(srv.route("/plain", tether::method::get, reply));
  srv.fallback(p.wrap(reply));
  const auto port = *srv.bind("127.0.0.1", 0);
  for (const char* path : {"/any", "/get-only", "/elsewhere"}) {
    INFO(path);
    const reply_head pre = exchange(loop, port, preflight(path, app, "GET", "X-Custom-Header-Long-Name"));
    CHECK(pre.status == 204);
    CHECK(pre.value("Access-Control-Allow-Origin") == app);
    CHECK(exchange(loop, port, get(path, app)).value("Access-Control-Allow-Origin") == app);
  }
  CHECK(runs == 3);  // the preflights never reached the handler
  const reply_head post = exchange(loop, port, "POST /get-only HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  CHECK(post.status == 405);
  CHECK(post.value("Allow") == "GET, HEAD, OPTIONS");
  // An unwrapped route with methods keeps refusing OPTIONS.
  CHECK(exchange(loop, port, preflight("/plain", app)).status == 405);
}
