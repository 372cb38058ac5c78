// Behind a real nginx, configured with the block of docs/deploy.md (read from the page
// itself, so that the documented configuration is the tested one): streams pass through
// unbuffered, a client that hangs up on nginx reaches tether's close callback exactly
// once and promptly (held and streaming), and a long-poll is answered through nginx.
// Every case runs on both engines (issue 9): tether behind nginx is what a deployment is.
// The test bodies are compiled once (TT_ENGINES_TEST_CASE); only the servers are compiled
// per engine (upstream_on).
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"
#include "../support/nginx.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// The ```nginx block under `<!-- deploy-test: nginx.conf -->` in docs/deploy.md, with the
/// test's ports in place of the documented ones.
/// `upstream_keepalive`, when given, replaces the block's upstream keepalive_timeout.
std::string deploy_config(const std::vector<std::uint16_t>& upstream_ports, std::uint16_t listen_port,
                          const std::string& upstream_keepalive) {
  const char* root = std::getenv("TETHER_SOURCE_ROOT");
  REQUIRE(root);
  std::ifstream in(std::string(root) + "/docs/deploy.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string page = ss.str();
  const auto marker = page.find("<!-- deploy-test: nginx.conf -->");
  REQUIRE(marker != std::string::npos);
  const auto open = page.find("```nginx\n", marker);
  REQUIRE(open != std::string::npos);
  const auto begin = open + 9;
  const auto end = page.find("```", begin);
  REQUIRE(end != std::string::npos);
  std::string conf = page.substr(begin, end - begin);
  auto replace = [&](const std::string& from, const std::string& to) {
    const auto at = conf.find(from);
    REQUIRE(at != std::string::npos);
    conf.replace(at, from.size(), to);
  };
  std::string servers;
  for (auto p : upstream_ports) servers += (servers.empty() ? "" : "\n    ") + ("server 127.0.0.1:" + std::to_string(p) + ";");
  replace("server 127.0.0.1:8080;", servers);
  replace("listen 80;", "listen 127.0.0.1:" + std::to_string(listen_port) + ";");
  if (!upstream_keepalive.empty()) replace("keepalive_timeout 60s;", "keepalive_timeout " + upstream_keepalive + ";");
  return conf;
}

struct close_count {
  int n = 0;
  int timeouts = 0;  // of them, ended by tether's idle timeout
  tether::close_reason reason = tether::close_reason::error;
  std::chrono::steady_clock::time_point when{};
};

/// The tether servers behind nginx, on either engine, as the test bodies (compiled once)
/// reach them: only the implementation of this interface is compiled per engine.
struct upstream_servers {
  virtual ~upstream_servers() = default;
  virtual void set_idle_timeout(std::chrono::milliseconds t) = 0;
  virtual bool has_sse() const = 0;
  virtual std::error_code sse_send(const tether::sse::event& e) = 0;
  virtual bool sse_peer_gone() const = 0;
  virtual bool has_raw() const = 0;
  virtual std::error_code raw_write(std::string_view chunk) = 0;
  virtual bool has_parts() const = 0;
  virtual std::error_code send_part(std::initializer_list<tether::part_header> headers, std::string_view body) = 0;
  virtual std::size_t polls_waiting() const = 0;
  virtual std::size_t polls_notify_all(std::string_view body) = 0;
};

/// A tether server on the test's loop with nginx in front of it, as docs/deploy.md says.
class behind_nginx {
 public:
  tether::event_loop loop;
  std::vector<std::uint16_t> hello_peers;  // nginx's source port for each /hello tether served
  close_count closes;
  std::string forwarded_for;
  tether::client_address client;          // client_address_of, trusting nginx (127.0.0.1)
  tether::client_address client_untrusted;  // client_address_of, trusting nobody
  std::uint16_t port = 0;
  std::uint16_t front = 0;
  int second_served = 0;  // by another tether server, on the upstream's second line
  std::unique_ptr<upstream_servers> servers;  // destroyed after nginx, before what they write to
  std::unique_ptr<tt::nginx_process> nginx;

  /// `upstream_keepalive`: nginx's upstream keepalive_timeout instead of the page's (60s).
  explicit behind_nginx(tt::engine_kind engine, bool two_upstreams = false, const std::string& upstream_keepalive = {});

  void set_idle_timeout(std::chrono::milliseconds t) { servers->set_idle_timeout(t); }
};

template <class Server>
struct upstream_on final : upstream_servers {
  Server srv;
  typename Server::long_poll polls;
  std::optional<typename Server::sse_stream> sse;
  std::optional<typename Server::stream> raw;
  std::optional<typename Server::multipart_stream> parts;
  std::optional<Server> second;

  upstream_on(behind_nginx& f, bool two_upstreams, std::vector<std::uint16_t>& upstreams)
      : srv(f.loop), polls(f.loop, 30s) {
    auto watch = [&f](auto& req) {
      (void)req.connection().on_close([c = &f.closes](const tether::close_event& e) noexcept {
        ++c->n;
        if (e.reason == tether::close_reason::timeout) ++c->timeouts;
        c->reason = e.reason;
        c->when = std::chrono::steady_clock::now();
      });
    };
    (void)srv.route("/events", [this, watch](auto& req) {
      watch(req);
      if (auto s = Server::sse_stream::start(req)) sse.emplace(std::move(*s));
    });
    (void)srv.route("/events/raw", [this, watch](auto& req) {
      watch(req);
      if (auto s = Server::stream::start(req)) raw.emplace(std::move(*s));
    });
    (void)srv.route("/poll", [this, &f, watch](auto& req) {
      watch(req);
      f.forwarded_for = std::string(req.input_headers().find("X-Forwarded-For").value_or(""));
      f.client = tether::client_address_of(req, tether::proxy_trust{.proxies = {"127.0.0.1"}});
      f.client_untrusted = tether::client_address_of(req, tether::proxy_trust{});
      (void)polls.wait(req);
    });
    (void)srv.route("/events/multipart", [this, watch](auto& req) {
      watch(req);
      if (auto s = Server::multipart_stream::start(req)) parts.emplace(std::move(*s));
    });
    (void)srv.route("/hello", [&f, watch](auto& req) {
      watch(req);
      f.hello_peers.push_back(req.connection().peer_port());
      (void)req.reply(200, "hello from A");
    });
    auto bound = srv.bind("127.0.0.1", 0);
    REQUIRE(bound);
    f.port = *bound;
    upstreams.push_back(f.port);
    if (two_upstreams) {
      second.emplace(f.loop);
      (void)second->route("/hello", [&f](auto& req) {
        ++f.second_served;
        (void)req.reply(200, "hello from B");
      });
      auto b2 = second->bind("127.0.0.1", 0);
      REQUIRE(b2);
      upstreams.push_back(*b2);
    }
  }

  void set_idle_timeout(std::chrono::milliseconds t) override { srv.set_idle_timeout(t); }
  bool has_sse() const override { return sse.has_value(); }
  std::error_code sse_send(const tether::sse::event& e) override { return sse->send(e); }
  bool sse_peer_gone() const override { return sse->peer_gone(); }
  bool has_raw() const override { return raw.has_value(); }
  std::error_code raw_write(std::string_view chunk) override { return raw->write(chunk); }
  bool has_parts() const override { return parts.has_value(); }
  std::error_code send_part(std::initializer_list<tether::part_header> headers, std::string_view body) override {
    return parts->send_part(headers, body);
  }
  std::size_t polls_waiting() const override { return polls.waiting(); }
  std::size_t polls_notify_all(std::string_view body) override { return polls.notify_all(body); }
};

behind_nginx::behind_nginx(tt::engine_kind engine, bool two_upstreams, const std::string& upstream_keepalive) {
  std::vector<std::uint16_t> upstreams;
  servers = tt::with_engine(engine, [&]<class Engine>(std::type_identity<Engine>) {
    return std::unique_ptr<upstream_servers>(new upstream_on<tt::server_on<Engine>>(*this, two_upstreams, upstreams));
  });
  front = tt::free_loopback_port();
  nginx = std::make_unique<tt::nginx_process>(std::vector<tt::nginx_process::file>{}, port,
                                                 deploy_config(upstreams, front, upstream_keepalive));
}

bool have_nginx() {
  if (tt::nginx_process::binary()) return true;
  WARN("nginx is not installed (scripts/install-deps installs it): deploy tests skipped");
  return false;
}

}  // namespace

TT_ENGINES_TEST_CASE("deploy: through nginx, SSE events and stream chunks arrive while the stream is open",
                     "[deploy][nginx]") {
  if (!have_nginx()) return;
  behind_nginx f{engine};
  INFO(f.nginx->error_log());
  tt::client sse{f.front};
  sse.send("GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.servers->has_sse(); }));
  REQUIRE_FALSE(f.servers->sse_send({.id = "1", .data = "first"}));
  CHECK(sse.wait_for(f.loop, "id: 1\ndata: first\n\n", 2000ms));
  REQUIRE_FALSE(f.servers->sse_send({.id = "2", .data = "second"}));
  CHECK(sse.wait_for(f.loop, "id: 2\ndata: second\n\n", 2000ms));
  CHECK_FALSE(sse.eof());

  // A plain chunked stream has no X-Accel-Buffering header: only proxy_buffering off
  // lets its small chunks through before a buffer fills.
  tt::client raw{f.front};
  raw.send("GET /events/raw HTTP/1.1\r\nHost: localhost\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.servers->has_raw(); }));
  REQUIRE_FALSE(f.servers->raw_write(std::string_view("chunk one\n")));
  CHECK(raw.wait_for(f.loop, "chunk one\n", 2000ms));
  CHECK_FALSE(raw.eof());
}

TT_ENGINES_TEST_CASE("deploy: a client that hangs up on nginx reaches tether's close callback once, promptly",
                     "[deploy][nginx]") {
  if (!have_nginx()) return;
  const bool held = GENERATE(true, false);
  behind_nginx f{engine};
  INFO(f.nginx->error_log());
  INFO((held ? "held long-poll" : "SSE stream"));
  tt::client c{f.front};
  if (held) {
    c.send("GET /poll HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return f.servers->polls_waiting() == 1; }));
  } else {
    c.send("GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return f.servers->has_sse(); }));
    REQUIRE_FALSE(f.servers->sse_send({.data = "hi"}));
    REQUIRE(c.wait_for(f.loop, "data: hi\n\n"));
  }
  CHECK(f.closes.n == 0);
  const auto left = std::chrono::steady_clock::now();
  c.close();  // the browser leaves: FIN to nginx
  REQUIRE(tt::run_until(f.loop, [&] { return f.closes.n > 0; }, 3000ms));
  CHECK(f.closes.when - left < tt::scaled(1000ms));
  CHECK(f.closes.reason == tether::close_reason::peer_closed);
  tt::run_for(f.loop, 200ms);
  CHECK(f.closes.n == 1);  // exactly once
  if (held) CHECK(f.servers->polls_waiting() == 0);  // the slot is freed at once
  else CHECK(f.servers->sse_peer_gone());
}

TT_ENGINES_TEST_CASE("deploy: a long-poll is answered through nginx, which says who the client is", "[deploy][nginx]") {
  if (!have_nginx()) return;
  behind_nginx f{engine};
  INFO(f.nginx->error_log());
  tt::client c{f.front};
  c.send("GET /poll HTTP/1.1\r\nHost: localhost\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.servers->polls_waiting() == 1; }));
  CHECK(f.forwarded_for == "127.0.0.1");
  CHECK(f.servers->polls_notify_all(std::string_view("news\n")) == 1);
  CHECK(c.wait_for(f.loop, "\r\n\r\nnews\n"));
  CHECK(c.data().rfind("HTTP/1.1 200", 0) == 0);
  CHECK_FALSE(c.eof());  // nginx keeps the client's connection
}

TT_ENGINES_TEST_CASE("deploy: client_address_of gives the address nginx saw, not the one the client wrote",
                     "[deploy][nginx]") {
  if (!have_nginx()) return;
  behind_nginx f{engine};
  INFO(f.nginx->error_log());
  tt::client c{f.front};
  // A forged entry: nginx appends the address it saw ($proxy_add_x_forwarded_for).
  c.send("GET /poll HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.66\r\n"
         "Forwarded: for=203.0.113.67\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.servers->polls_waiting() == 1; }));
  CHECK(f.forwarded_for == "203.0.113.66, 127.0.0.1");
  CHECK(f.client.address == "127.0.0.1");
  CHECK(f.client.source == tether::address_source::header);
  CHECK(f.client_untrusted.address == "127.0.0.1");  // nginx itself, the socket peer
  CHECK(f.client_untrusted.source == tether::address_source::socket_peer);
}

TT_ENGINES_TEST_CASE("deploy: a client that leaves while idle leaves tether's connection in nginx's pool",
                     "[deploy][nginx]") {
  if (!have_nginx()) return;
  behind_nginx f{engine};
  INFO(f.nginx->error_log());
  f.set_idle_timeout(tt::scaled(1000ms));  // run_for below scales too
  {
    tt::client c{f.front};
    c.send("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(c.wait_for(f.loop, "hello from A"));
    c.close();  // the browser leaves between requests: its keep-alive connection was idle
  }
  const auto left = std::chrono::steady_clock::now();
  tt::run_for(f.loop, 300ms);
  // The upstream connection belonged to no request: nginx keeps it for the next one.
  INFO("close reason " << static_cast<int>(f.closes.reason) << " after "
                       << std::chrono::duration_cast<std::chrono::milliseconds>(f.closes.when - left).count() << " ms");
  CHECK(f.closes.n == 0);
  tt::client d{f.front};
  d.send("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
  REQUIRE(d.wait_for(f.loop, "hello from A"));
  REQUIRE(f.hello_peers.size() == 2);
  CHECK(f.hello_peers[1] == f.hello_peers[0]);  // the same upstream connection, reused
  CHECK(f.closes.n == 0);
  // It ends when tether's idle timeout (or nginx's keepalive_timeout) ends it: once.
  REQUIRE(tt::run_until(f.loop, [&] { return f.closes.n > 0; }, 3000ms));
  CHECK(f.closes.reason == tether::close_reason::timeout);
  tt::run_for(f.loop, 100ms);
  CHECK(f.closes.n == 1);
}

TT_ENGINES_TEST_CASE("deploy: a multipart/x-mixed-replace stream passes through nginx part by part",
                     "[deploy][nginx]") {
  if (!have_nginx()) return;
  behind_nginx f{engine};
  INFO(f.nginx->error_log());
  tt::client c{f.front};
  c.send("GET /events/multipart HTTP/1.1\r\nHost: localhost\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return f.servers->has_parts(); }));
  REQUIRE_FALSE(f.servers->send_part({{"Content-Type", "text/plain"}}, std::string_view("frame one")));
  CHECK(c.wait_for(f.loop, "frame one", 2000ms));
  CHECK(c.data().find("multipart/x-mixed-replace") != std::string::npos);
  REQUIRE_FALSE(f.servers->send_part({{"Content-Type", "text/plain"}}, std::string_view("frame two")));
  CHECK(c.wait_for(f.loop, "frame two", 2000ms));
  CHECK_FALSE(c.eof());
}

TT_ENGINES_TEST_CASE("deploy: nginx's upstream pool and tether's idle timeout do not race into 502s",
                     "[deploy][nginx]") {
  if (!have_nginx()) return;
  behind_nginx f{engine};
  INFO(f.nginx->error_log());
  f.set_idle_timeout(tt::scaled(300ms));  // the gaps below scale too
  tt::client c{f.front};
  int ok = 0, bad = 0;
  const std::chrono::milliseconds gaps[] = {250ms, 290ms, 295ms, 300ms, 305ms, 310ms, 350ms};
  constexpr int rounds = 21;
  for (int i = 0; i < rounds; ++i) {
    c.clear();
    c.send("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    if (c.wait_for(f.loop, "hello from A", 3000ms)) ++ok;
    else {
      ++bad;
      UNSCOPED_INFO("request " << i << ": " << c.data());
    }
    tt::run_for(f.loop, gaps[i % std::size(gaps)]);
  }
  CHECK(bad == 0);
  CHECK(ok == rounds);
  // The race was on: tether did close idle upstream connections between requests.
  CHECK(f.closes.n > 0);
  // nginx may still log "upstream prematurely closed": a request it wrote while tether's
  // close was on its way (a window of a few microseconds on an idle machine, wider under
  // load: seen once in CI at a load average of 8). It then retries the GET on a fresh
  // connection, so the client gets its 200 (checked above); the documented order, nginx's
  // timeout below tether's, closes even that window (next case).
}

TT_ENGINES_TEST_CASE("deploy: with nginx's keepalive_timeout below tether's idle timeout, nginx closes first",
                     "[deploy][nginx]") {
  if (!have_nginx()) return;
  // The page's order (60 s against 75 s), scaled down: nginx drops a pooled connection
  // after 100 ms idle, tether would after 1 s; requests come 150 to 250 ms apart.
  behind_nginx f{engine, false, std::to_string(tt::scaled(100ms).count()) + "ms"};
  INFO(f.nginx->error_log());
  f.set_idle_timeout(tt::scaled(1000ms));
  tt::client c{f.front};
  int ok = 0;
  constexpr int rounds = 7;
  for (int i = 0; i < rounds; ++i) {
    c.clear();
    c.send("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    if (c.wait_for(f.loop, "hello from A", 3000ms)) ++ok;
    else UNSCOPED_INFO("request " << i << ": " << c.data());
    tt::run_for(f.loop, 150ms + 20ms * i);  // scaled by run_for
  }
  CHECK(ok == rounds);
  CHECK(f.closes.n > 0);          // nginx did close its idle pooled connections...
  CHECK(f.closes.timeouts == 0);  // ...always before tether's timeout could
  CHECK(f.nginx->error_log().find("upstream prematurely closed") == std::string::npos);
}

TT_ENGINES_TEST_CASE("deploy: two tether servers behind one nginx upstream both serve", "[deploy][nginx]") {
  if (!have_nginx()) return;
  behind_nginx f{engine, true};
  INFO(f.nginx->error_log());
  int from_a = 0, from_b = 0;
  for (int i = 0; i < 8; ++i) {
    tt::client c{f.front};
    c.send("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] {
      c.pump();
      return c.data().find("hello from ") != std::string::npos;
    }));
    if (c.data().find("hello from A") != std::string::npos) ++from_a;
    if (c.data().find("hello from B") != std::string::npos) ++from_b;
  }
  CHECK(from_a + from_b == 8);
  CHECK(from_a > 0);
  CHECK(from_b > 0);
  CHECK(f.second_served == from_b);
}
