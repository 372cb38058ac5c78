// The HTTP client against tether's own server (same loop), against scripted raw
// sockets (for what a well-behaved server never does), and against a real nginx.
// Where the client talks to tether, the server runs on both engines (issue 9) and the
// test body, compiled once, runs twice (TT_ENGINES_TEST_CASE); cases against scripted
// sockets, or that never reach a server, run once.
#include "../support/engines.hpp"
#include "../support/loopback.hpp"
#include "../support/nginx.hpp"

#include <tether/client.hpp>
#include <tether/dns.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

/// What a completion callback saw.
struct outcome {
  int calls = 0;
  std::error_code ec;
  int status = 0;
  std::string reason;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  unsigned attempts = 0;
  clock_type::time_point at{};

  std::string header(std::string_view name) const {
    for (auto& [n, v] : headers)
      if (n == name) return v;
    return {};
  }
};

auto record(outcome& o) {
  return [&o](std::error_code ec, const tether::client_response& r) {
    ++o.calls;
    o.ec = ec;
    o.status = r.status();
    o.reason = std::string(r.reason());
    o.body = r.body().to_string();
    o.headers.clear();
    for (auto h : r.headers()) o.headers.emplace_back(std::string(h.name), std::string(h.value));
    o.attempts = r.attempts();
    o.at = clock_type::now();
  };
}

/// The close events a client reported.
struct closes {
  std::vector<tether::client_close_event> events;
  auto recorder() {
    return [this](const tether::client_close_event& e) {
      events.push_back(e);
      events.back().peer_address = {};  // borrowed: valid only during the callback
    };
  }
};

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 1000) % 26);
  return s;
}

/// A chunked reply sent one chunk every 2 ms by a timer (whose callback holds the handle).
struct streamer {
  int sent = 0;
  int total = 0;
  std::unique_ptr<tether::timer<std::function<void()>>> tick;
};

/// A held request on either engine, as the test bodies (compiled once) use it: only these
/// few members are compiled per engine.
class held_request {
 public:
  held_request() = default;
  template <class Handle>
  explicit held_request(Handle h) : h_(std::move(h)) {}
  /// Closes the connection from the server side (FIN).
  void close() noexcept {
    std::visit([](auto& h) { h.close(); }, h_);
  }
  bool peer_gone() const noexcept {
    return std::visit([](const auto& h) { return h.peer_gone(); }, h_);
  }
  /// Sets `closed` when the server sees the connection close.
  void watch_close(bool& closed) {
    std::visit([&](auto& h) {
      (void)h.connection().on_close([&closed](const tether::close_event&) noexcept { closed = true; });
    }, h_);
  }

 private:
  std::variant<tt::server_on<tether::evhttp_engine>::request_handle,
               tt::server_on<tether::lean_engine>::request_handle>
      h_;
};

/// A tether server on either engine, built in place (a server does not move).
using any_server =
    std::variant<std::monostate, tt::server_on<tether::evhttp_engine>, tt::server_on<tether::lean_engine>>;

/// tether's own server, on the engine asked for, with the routes the tests talk to. The
/// class and the test bodies are compiled once; only the routes' handlers, in add_routes(),
/// are compiled per engine.
class server_fixture {
 public:
  tether::event_loop loop;

 private:
  any_server srv_;  // after the loop, before the handles: destroyed after them, before the loop

 public:
  std::uint16_t port = 0;
  std::vector<held_request> held;
  std::vector<std::unique_ptr<streamer>> streams;
  int server_closes = 0;
  int requests = 0;

  explicit server_fixture(tt::engine_kind engine) : engine_(engine) {
    tt::with_engine(engine, [&]<class Engine>(std::type_identity<Engine>) {
      auto& srv = srv_.emplace<tt::server_on<Engine>>(loop);
      add_routes(srv);
      auto p = srv.bind("127.0.0.1", 0);
      REQUIRE(p);
      port = *p;
    });
  }

  /// The server's timeout for a connection (idle, or waiting for a request).
  void set_timeout(std::chrono::milliseconds t) {
    tt::with_engine(engine_, [&]<class Engine>(std::type_identity<Engine>) {
      std::get<tt::server_on<Engine>>(srv_).set_timeout(t);
    });
  }

  /// Closes every held request's connection from the server side (FIN).
  void hang_up_all() {
    for (auto& h : held) h.close();
    held.clear();
  }

  bool wait(const outcome& o, std::chrono::milliseconds limit = 5000ms) {
    return tt::run_until(loop, [&] { return o.calls > 0; }, limit);
  }

 private:
  tt::engine_kind engine_;

  template <class Server>
  void add_routes(Server& srv) {
    srv.allow_methods(tether::method_set::all());
    (void)srv.route("/hello", [this](auto& req) {
      ++requests;
      (void)req.output_headers().add("Content-Type", "text/plain");
      (void)req.output_headers().add("X-Test", "yes");
      (void)req.reply(200, "hello");
    });
    (void)srv.route("/echo", [this](auto& req) {
      ++requests;
      std::string out(to_string(req.method()));
      out += "|" + std::string(req.input_headers().find("Host").value_or("-"));
      out += "|" + std::string(req.input_headers().find("X-Probe").value_or("-"));
      out += "|" + std::string(req.input_headers().find("Content-Length").value_or("-"));
      out += "|" + req.body().to_string();
      (void)req.reply(200, out);
    });
    (void)srv.route("/query", [this](auto& req) {
      ++requests;
      auto q = req.query_params();
      if (!q) {
        (void)req.reply(400, q.error().message());
        return;
      }
      std::string out;
      for (auto [name, value] : *q) out += "[" + std::string(name) + "=" + std::string(value) + "]";
      (void)req.reply(200, out);
    });
    (void)srv.route("/big", [this](auto& req) {
      ++requests;
      (void)req.reply(200, pattern(4 << 20));
    });
    (void)srv.route("/stream", [this](auto& req) {
      ++requests;
      auto s = std::make_unique<streamer>();
      s->total = 20;
      streamer* raw = s.get();
      auto handle = req.hold();
      (void)handle.start(200);
      s->tick = std::make_unique<tether::timer<std::function<void()>>>(loop, [raw, handle]() mutable {
        if (raw->sent < raw->total) {
          (void)handle.send_chunk("chunk-" + std::to_string(raw->sent++) + "\n");
        } else {
          (void)handle.end();
          raw->tick->stop();
        }
      });
      s->tick->start_periodic(2ms);
      streams.push_back(std::move(s));
    });
    (void)srv.route("/hold", [this](auto& req) {
      ++requests;
      held.emplace_back(req.hold());
    });
    (void)srv.route("/hangup", [this](auto& req) {
      ++requests;
      (void)req.output_headers().add("Content-Length", "100");
      auto h = req.hold();
      (void)h.start(200);
      (void)h.send_chunk("partial");
      held.emplace_back(h);
    });
    (void)srv.route("/hangup-chunked", [this](auto& req) {
      ++requests;
      auto h = req.hold();
      (void)h.start(200);
      (void)h.send_chunk("first piece");
      held.emplace_back(h);
    });
    (void)srv.route("/close", [this](auto& req) {
      ++requests;
      (void)req.output_headers().add("Connection", "close");
      (void)req.reply(200, "bye");
    });
    (void)srv.route("/peer", [this](auto& req) {
      ++requests;
      (void)req.connection().on_close([this](const tether::close_event&) noexcept { ++server_closes; });
      (void)req.reply(200, std::string(req.connection().peer_address()) + ":" +
                               std::to_string(req.connection().peer_port()));
    });
  }
};

/// A listening socket the test scripts by hand: accept, read a request, write any bytes.
class raw_server {
 public:
  explicit raw_server(int backlog = 16) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    REQUIRE(::listen(listen_fd_, backlog) == 0);
  }
  raw_server(const raw_server&) = delete;
  raw_server& operator=(const raw_server&) = delete;
  ~raw_server() {
    if (conn_ >= 0) ::close(conn_);
    ::close(listen_fd_);
  }
  std::uint16_t port() const noexcept { return port_; }

  /// Accepts the next connection and reads its request head (pumping the loop).
  bool next_request(tether::event_loop& loop, std::chrono::milliseconds limit = 3000ms) {
    if (conn_ >= 0) ::close(conn_);
    conn_ = -1;
    got_.clear();
    const bool accepted = tt::run_until(loop, [&] {
      conn_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      return conn_ >= 0;
    }, limit);
    return accepted && read_head(loop, limit);
  }
  bool read_head(tether::event_loop& loop, std::chrono::milliseconds limit = 3000ms) {
    return tt::run_until(loop, [&] {
      char buf[4096];
      for (ssize_t n; (n = ::recv(conn_, buf, sizeof buf, 0)) > 0;) got_.append(buf, static_cast<std::size_t>(n));
      return got_.find("\r\n\r\n") != std::string::npos;
    }, limit);
  }
  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(conn_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EAGAIN) {
        pollfd p{conn_, POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      REQUIRE(n > 0);
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void close() {
    ::close(conn_);
    conn_ = -1;
  }
  void reset() {
    linger l{1, 0};
    ::setsockopt(conn_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  const std::string& request() const noexcept { return got_; }

 private:
  int listen_fd_ = -1;
  int conn_ = -1;
  std::uint16_t port_ = 0;
  std::string got_;
};

/// A port that refuses connections until listen() is called on the socket holding it.
struct refusing_port {
  int fd;
  std::uint16_t port;
  refusing_port() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
  }
  ~refusing_port() {
    if (fd >= 0) ::close(fd);
  }
};

tether::client_options fast_options() {
  tether::client_options o;
  o.connect_timeout = 2s;
  o.read_timeout = 5s;
  o.write_timeout = 5s;
  return o;
}

}  // namespace

// ----- talking to tether's own server -----------------------------------------------------

TT_ENGINES_TEST_CASE("client: a GET returns status, reason, headers and body", "[client]") {
  server_fixture f{engine};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  outcome o;
  auto id = conn.get("/hello", record(o));
  REQUIRE(id);
  REQUIRE(f.wait(o));
  CHECK(o.calls == 1);
  CHECK_FALSE(o.ec);
  CHECK(o.status == 200);
  CHECK(o.reason == "OK");
  CHECK(o.body == "hello");
  CHECK(o.header("X-Test") == "yes");
  CHECK(o.header("Content-Type") == "text/plain");
  CHECK(o.attempts == 1);
  CHECK(conn.outstanding() == 0);
  tt::run_for(f.loop, 20ms);
  CHECK(o.calls == 1);  // exactly once
}

TT_ENGINES_TEST_CASE("client: sends method, headers and body; adds Host and Content-Length", "[client]") {
  server_fixture f{engine};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  tether::client_request req{tether::method::put, "/echo"};
  REQUIRE_FALSE(req.headers().add("X-Probe", "probe value"));
  REQUIRE_FALSE(req.body().append("the body"));
  outcome o;
  REQUIRE(conn.request(std::move(req), record(o)));
  REQUIRE(f.wait(o));
  CHECK_FALSE(o.ec);
  CHECK(o.body == "PUT|127.0.0.1:" + std::to_string(f.port) + "|probe value|8|the body");

  // PATCH with a body: libevent itself adds Content-Length only for POST and PUT.
  tether::client_request patch{tether::method::patch, "/echo"};
  REQUIRE_FALSE(patch.headers().add("Host", "example.test"));
  REQUIRE_FALSE(patch.body().append("abc"));
  outcome p;
  REQUIRE(conn.request(std::move(patch), record(p)));
  REQUIRE(f.wait(p));
  CHECK(p.body == "PATCH|example.test|-|3|abc");
}

TT_ENGINES_TEST_CASE("client: the server reads the query with request::query_params", "[client][uri]") {
  server_fixture f{engine};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  outcome o, bad;
  REQUIRE(conn.get("/query?tag=a&tag=b+c&x=%26%3D&flag", record(o)));
  REQUIRE(conn.get("/query?broken=%zz", record(bad)));
  REQUIRE(tt::run_until(f.loop, [&] { return o.calls && bad.calls; }));
  CHECK(o.body == "[tag=a][tag=b c][x=&=][flag=]");
  CHECK(bad.status == 400);
}

TT_ENGINES_TEST_CASE("client: a 4 MiB body arrives whole", "[client]") {
  server_fixture f{engine};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  outcome o;
  REQUIRE(conn.get("/big", record(o)));
  REQUIRE(f.wait(o, 10000ms));
  CHECK_FALSE(o.ec);
  CHECK(o.body.size() == (4u << 20));
  CHECK(o.body == pattern(4 << 20));
}

TT_ENGINES_TEST_CASE("client: a chunked response streams to the chunk callback as it is sent", "[client][stream]") {
  server_fixture f{engine};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  std::vector<std::string> chunks;
  std::vector<int> sent_when_received;
  int status_seen = 0;
  std::string te;
  outcome o;
  auto on_chunk = [&](const tether::client_response& res, tether::buffer_ref data) {
    status_seen = res.status();
    te = std::string(res.header("Transfer-Encoding").value_or(""));
    chunks.push_back(data.to_string());
    sent_when_received.push_back(f.streams.empty() ? -1 : f.streams.back()->sent);
  };
  REQUIRE(conn.request(tether::client_request(tether::method::get, "/stream"), on_chunk, record(o)));
  REQUIRE(f.wait(o));
  CHECK_FALSE(o.ec);
  CHECK(o.status == 200);
  CHECK(o.body.empty());  // streamed, not collected
  CHECK(status_seen == 200);
  CHECK(te == "chunked");
  REQUIRE(chunks.size() == 20);
  for (int i = 0; i < 20; ++i) CHECK(chunks[static_cast<std::size_t>(i)] == "chunk-" + std::to_string(i) + "\n");
  // Received while the server was still producing: the first chunk arrived before the last was sent.
  CHECK(sent_when_received.front() < 20);
}

TT_ENGINES_TEST_CASE("client: a chunk callback may take just the bytes", "[client][stream]") {
  server_fixture f{engine};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  std::string all;
  outcome o;
  REQUIRE(conn.request(tether::client_request(tether::method::get, "/big"),
                       [&](tether::buffer_ref data) { all += data.take_string(); }, record(o)));
  REQUIRE(f.wait(o, 10000ms));
  CHECK_FALSE(o.ec);
  CHECK(all == pattern(4 << 20));
}

TT_ENGINES_TEST_CASE("client: keep-alive: consecutive requests reuse one TCP connection", "[client][keepalive]") {
  server_fixture f{engine};
  closes c;
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  conn.on_close(c.recorder());
  outcome a, b;
  REQUIRE(conn.get("/peer", record(a)));
  REQUIRE(f.wait(a));
  CHECK(conn.connected());
  const auto local = conn.local_port();
  CHECK(a.body == "127.0.0.1:" + std::to_string(local));
  REQUIRE(conn.get("/peer", record(b)));
  REQUIRE(f.wait(b));
  CHECK(b.body == a.body);
  CHECK(f.server_closes == 0);
  CHECK(c.events.empty());
}

TT_ENGINES_TEST_CASE("client: requests sent together are answered in order on one connection", "[client][keepalive]") {
  server_fixture f{engine};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  std::vector<int> order;
  std::vector<std::string> bodies(3);
  for (int i = 0; i < 3; ++i)
    REQUIRE(conn.get(i == 1 ? "/big" : "/peer", [&, i](std::error_code ec, const tether::client_response& r) {
      CHECK_FALSE(ec);
      order.push_back(i);
      bodies[static_cast<std::size_t>(i)] = r.body().to_string();
    }));
  CHECK(conn.outstanding() == 3);
  REQUIRE(tt::run_until(f.loop, [&] { return order.size() == 3; }, 10000ms));
  CHECK(order == std::vector<int>{0, 1, 2});
  CHECK(bodies[0] == bodies[2]);
  CHECK(bodies[1].size() == (4u << 20));
}

TT_ENGINES_TEST_CASE("client: close callback: the server closes after its reply (Connection: close)",
                     "[client][close]") {
  server_fixture f{engine};
  closes c;
  std::vector<std::string> order;
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  conn.on_close([&](const tether::client_close_event& e) {
    order.push_back("close");
    c.events.push_back(e);
  });
  outcome o;
  REQUIRE(conn.get("/close", [&](std::error_code ec, const tether::client_response& r) {
    order.push_back("done");
    record(o)(ec, r);
  }));
  REQUIRE(tt::run_until(f.loop, [&] { return !c.events.empty(); }));
  CHECK_FALSE(o.ec);
  CHECK(o.body == "bye");
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].reason == tether::client_close_reason::completed);
  CHECK_FALSE(c.events[0].aborted);
  CHECK(c.events[0].peer_port == f.port);
  CHECK(order == std::vector<std::string>{"done", "close"});  // the request's completion first
  CHECK_FALSE(conn.connected());

  // A later request makes a new connection.
  outcome again;
  REQUIRE(conn.get("/hello", record(again)));
  REQUIRE(f.wait(again));
  CHECK(again.body == "hello");
}

TT_ENGINES_TEST_CASE("client: close callback: the server times out an idle keep-alive connection", "[client][close]") {
  server_fixture f{engine};
  f.set_timeout(100ms);
  closes c;
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  conn.on_close(c.recorder());
  outcome o;
  REQUIRE(conn.get("/hello", record(o)));
  REQUIRE(f.wait(o));
  const auto t0 = clock_type::now();
  REQUIRE(tt::run_until(f.loop, [&] { return !c.events.empty(); }, 3000ms));
  CHECK(clock_type::now() - t0 < 2s);
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].reason == tether::client_close_reason::peer_closed);
  CHECK_FALSE(c.events[0].aborted);
  tt::run_for(f.loop, 50ms);
  CHECK(c.events.size() == 1);  // once
}

TT_ENGINES_TEST_CASE("client: the server hangs up in the middle of the response", "[client][close]") {
  server_fixture f{engine};
  closes c;
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  conn.on_close(c.recorder());

  SECTION("a body with Content-Length: incomplete_response, with the bytes that came") {
    outcome o;
    REQUIRE(conn.get("/hangup", record(o)));
    REQUIRE(tt::run_until(f.loop, [&] { return f.held.size() == 1; }));
    tt::run_for(f.loop, 20ms);  // let "partial" reach the client
    f.hang_up_all();
    REQUIRE(f.wait(o));
    CHECK(o.calls == 1);
    CHECK(o.ec == tether::errc::incomplete_response);
    CHECK(o.ec == std::errc::connection_reset);
    CHECK(o.status == 200);
    CHECK(o.body == "partial");
    CHECK(o.headers.empty());
  }
  SECTION("a chunked body, streamed: incomplete_response after the first chunk") {
    std::string got;
    outcome o;
    REQUIRE(conn.request(tether::client_request(tether::method::get, "/hangup-chunked"),
                         [&](tether::buffer_ref d) { got += d.to_string(); }, record(o)));
    REQUIRE(tt::run_until(f.loop, [&] { return !got.empty(); }));
    f.hang_up_all();
    REQUIRE(f.wait(o));
    CHECK(o.ec == tether::errc::incomplete_response);
    CHECK(got == "first piece");
  }
  SECTION("before any response: no_response") {
    outcome o;
    REQUIRE(conn.get("/hold", record(o)));
    REQUIRE(tt::run_until(f.loop, [&] { return f.held.size() == 1; }));
    f.hang_up_all();
    REQUIRE(f.wait(o));
    CHECK(o.ec == tether::errc::no_response);
    CHECK(o.status == 0);
  }
  REQUIRE(tt::run_until(f.loop, [&] { return !c.events.empty(); }));
  CHECK(c.events[0].reason == tether::client_close_reason::peer_closed);
  CHECK(c.events[0].aborted);
  CHECK(c.events[0].error);
}

TEST_CASE("client: a reset in the middle of the response", "[client][close]") {
  tether::event_loop loop;
  raw_server raw;
  closes c;
  tether::client_connection conn{loop, "127.0.0.1", raw.port(), fast_options()};
  conn.on_close(c.recorder());
  outcome o;
  REQUIRE(conn.get("/", record(o)));
  REQUIRE(raw.next_request(loop));
  CHECK(raw.request().rfind("GET / HTTP/1.1\r\n", 0) == 0);
  CHECK(raw.request().find("Host: 127.0.0.1:" + std::to_string(raw.port()) + "\r\n") != std::string::npos);
  raw.send("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nsome");
  tt::run_for(loop, 20ms);
  raw.reset();
  REQUIRE(tt::run_until(loop, [&] { return o.calls > 0; }));
  CHECK(o.ec == tether::errc::incomplete_response);
  CHECK(o.body == "some");
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].reason == tether::client_close_reason::peer_reset);
  CHECK(c.events[0].aborted);
}

TEST_CASE("client: malformed responses fail with bad_response, never crash", "[client][hostile]") {
  const std::vector<std::string> replies = {
      "HTTP/1.1 abc OK\r\n\r\n",
      "garbage\r\n\r\n",
      "HTTP/9.9 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
  };
  for (const auto& reply : replies) {
    INFO(reply);
    tether::event_loop loop;
    raw_server raw;
    tether::client_connection conn{loop, "127.0.0.1", raw.port(), fast_options()};
    outcome o;
    REQUIRE(conn.get("/", record(o)));
    REQUIRE(raw.next_request(loop));
    raw.send(reply);
    REQUIRE(tt::run_until(loop, [&] { return o.calls > 0; }));
    CHECK(o.ec == tether::errc::bad_response);
    CHECK(o.calls == 1);
  }
}

TEST_CASE("client: headers over max_header_size fail the request", "[client][limits]") {
  tether::event_loop loop;
  raw_server raw;
  auto opts = fast_options();
  opts.max_header_size = 256;
  tether::client_connection conn{loop, "127.0.0.1", raw.port(), opts};
  outcome o;
  REQUIRE(conn.get("/", record(o)));
  REQUIRE(raw.next_request(loop));
  raw.send("HTTP/1.1 200 OK\r\nX-Big: " + std::string(1000, 'x') + "\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(tt::run_until(loop, [&] { return o.calls > 0; }));
  CHECK(o.ec == tether::errc::bad_response);
}

TT_ENGINES_TEST_CASE("client: a body over max_body_size fails with response_too_large", "[client][limits]") {
  server_fixture f{engine};
  auto opts = fast_options();
  opts.max_body_size = 1000;
  closes c;
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, opts};
  conn.on_close(c.recorder());

  SECTION("announced by Content-Length: refused before the body") {
    outcome o;
    REQUIRE(conn.get("/big", record(o)));
    REQUIRE(f.wait(o));
    CHECK(o.ec == tether::errc::response_too_large);
    CHECK(o.status == 200);
    CHECK(o.body.empty());
  }
  SECTION("chunked: refused once the chunks add up past the limit") {
    std::size_t streamed = 0;
    outcome o;
    f.streams.clear();
    REQUIRE(conn.request(tether::client_request(tether::method::get, "/stream"),
                         [&](tether::buffer_ref d) { streamed += d.size(); }, record(o)));
    auto small = fast_options();
    small.max_body_size = 50;
    tether::client_connection tiny{f.loop, "127.0.0.1", f.port, small};
    outcome t;
    REQUIRE(tiny.get("/stream", record(t)));
    REQUIRE(f.wait(o));
    CHECK_FALSE(o.ec);  // 20 chunks of 8-9 bytes fit in 1000
    REQUIRE(tt::run_until(f.loop, [&] { return t.calls > 0; }));
    CHECK(t.ec == tether::errc::response_too_large);
    CHECK(t.body.size() <= 50);
  }
  // The connection is usable again afterwards.
  outcome next;
  REQUIRE(conn.get("/hello", record(next)));
  REQUIRE(f.wait(next));
  CHECK(next.body == "hello");
}

TEST_CASE("client: connection refused", "[client][connect]") {
  tether::event_loop loop;
  refusing_port closed;
  closes c;
  tether::client_connection conn{loop, "127.0.0.1", closed.port, fast_options()};
  conn.on_close(c.recorder());
  outcome o;
  REQUIRE(conn.get("/", record(o)));
  REQUIRE(tt::run_until(loop, [&] { return o.calls > 0; }));
  CHECK(o.ec == std::errc::connection_refused);
  CHECK(o.status == 0);
  CHECK(o.attempts == 1);
  CHECK(c.events.empty());  // never connected, so never closed
}

TEST_CASE("client: connect timeout against a listener that never accepts", "[client][connect][timeout]") {
  tether::event_loop loop;
  raw_server full(0);  // backlog 0: the first connection fills the queue, later SYNs are dropped
  tt::client filler(full.port());
  auto opts = fast_options();
  opts.connect_timeout = 200ms;
  tether::client_connection conn{loop, "127.0.0.1", full.port(), opts};
  outcome o;
  const auto t0 = clock_type::now();
  REQUIRE(conn.get("/", record(o)));
  REQUIRE(tt::run_until(loop, [&] { return o.calls > 0; }, 3000ms));
  CHECK(o.ec == tether::errc::connect_timeout);
  CHECK(o.ec == std::errc::timed_out);
  CHECK(o.at - t0 >= 180ms);
  CHECK(o.at - t0 < 1500ms);
}

TT_ENGINES_TEST_CASE("client: response timeout against a server that never answers", "[client][timeout]") {
  server_fixture f{engine};
  auto opts = fast_options();
  opts.read_timeout = 200ms;
  closes c;
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, opts};
  conn.on_close(c.recorder());
  outcome o;
  const auto t0 = clock_type::now();
  REQUIRE(conn.get("/hold", record(o)));
  REQUIRE(f.wait(o, 3000ms));
  CHECK(o.ec == tether::errc::response_timeout);
  CHECK(o.at - t0 >= 180ms);
  CHECK(o.at - t0 < 1500ms);
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].reason == tether::client_close_reason::timeout);
  CHECK(c.events[0].aborted);
  CHECK(c.events[0].error == tether::errc::response_timeout);
}

TT_ENGINES_TEST_CASE("client: the read timeout also applies after libevent reconnects by itself", "[client][timeout]") {
  // Two requests sent together to a server that closes after each reply: libevent
  // reconnects for the second inside its own callback, where tether must still put its
  // connect hook (and so its read timeout) in place. Without it the read timeout would be
  // the 10 s connect timeout.
  server_fixture f{engine};
  auto opts = fast_options();
  opts.connect_timeout = 10s;
  opts.read_timeout = 200ms;
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, opts};
  outcome first, second;
  REQUIRE(conn.get("/close", record(first)));
  REQUIRE(conn.get("/hold", record(second)));
  REQUIRE(tt::run_until(f.loop, [&] { return second.calls > 0; }, 3000ms));
  CHECK_FALSE(first.ec);
  CHECK(second.ec == tether::errc::response_timeout);
  CHECK(second.at - first.at < 1500ms);
}

TT_ENGINES_TEST_CASE("client: retries with back-off until the server listens", "[client][retry]") {
  tether::event_loop loop;
  refusing_port later;
  auto opts = fast_options();
  opts.retries = 3;
  // Every delay is stretched like the test's windows (10x under valgrind), or the window
  // below would outlast all the retries on a slow run.
  opts.initial_retry_delay = tt::scaled(60ms);
  tether::client_connection conn{loop, "127.0.0.1", later.port, opts};
  outcome o;
  const auto t0 = clock_type::now();
  REQUIRE(conn.get("/hello", record(o)));
  // Refused at 0 and after 60 ms; listening from ~100 ms; the third attempt (at 60 + 120 ms) succeeds.
  tt::run_for(loop, 100ms);  // scaled too
  CHECK(o.calls == 0);
  any_server srv;
  tt::with_engine(engine, [&]<class Engine>(std::type_identity<Engine>) {
    auto& s = srv.emplace<tt::server_on<Engine>>(loop);
    s.fallback([](auto& req) { (void)req.reply(200, "finally"); });
    REQUIRE(::listen(later.fd, 16) == 0);
    REQUIRE(s.accept(later.fd));
  });
  later.fd = -1;  // the server owns it now
  REQUIRE(tt::run_until(loop, [&] { return o.calls > 0; }, 3000ms));
  CHECK_FALSE(o.ec);
  CHECK(o.body == "finally");
  CHECK(o.attempts == 3);
  CHECK(o.at - t0 >= tt::scaled(170ms));  // 60 + 120 ms, less libevent's cached-time slack
}

TEST_CASE("client: retries give up after the last attempt", "[client][retry]") {
  tether::event_loop loop;
  refusing_port closed;
  auto opts = fast_options();
  opts.retries = 2;
  opts.initial_retry_delay = 30ms;
  tether::client_connection conn{loop, "127.0.0.1", closed.port, opts};
  outcome o;
  const auto t0 = clock_type::now();
  REQUIRE(conn.get("/", record(o)));
  CHECK(conn.outstanding() == 1);
  REQUIRE(tt::run_until(loop, [&] { return o.calls > 0; }, 3000ms));
  CHECK(o.ec == std::errc::connection_refused);
  CHECK(o.attempts == 3);
  CHECK(o.at - t0 >= 80ms);  // 30 + 60 ms, less libevent's cached-time slack
  CHECK(conn.outstanding() == 0);
}

TT_ENGINES_TEST_CASE("client: binds its local address and port", "[client][local]") {
  server_fixture f{engine};
  auto opts = fast_options();
  opts.local_address = "127.0.0.2";
  opts.local_port = tt::free_loopback_port();
  REQUIRE(opts.local_port != 0);
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, opts};
  outcome o;
  REQUIRE(conn.get("/peer", record(o)));
  REQUIRE(f.wait(o));
  CHECK_FALSE(o.ec);
  CHECK(o.body == "127.0.0.2:" + std::to_string(opts.local_port));
  CHECK(conn.local_port() == opts.local_port);
  CHECK(conn.peer_address() == "127.0.0.1");
  CHECK(conn.peer_port() == f.port);
}

TEST_CASE("client: a local address that cannot be bound fails request(), with no callback", "[client][local]") {
  // Client-only: the client fails before it connects, so the server's engine does not matter.
  server_fixture f{tt::engine_kind::evhttp};
  auto opts = fast_options();
  opts.local_address = "192.0.2.1";  // TEST-NET-1: not an address of this machine
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, opts};
  outcome o;
  auto r = conn.get("/hello", record(o));
  REQUIRE_FALSE(r);
  CHECK(r.error() == std::errc::address_not_available);
  tt::run_for(f.loop, 20ms);
  CHECK(o.calls == 0);
  CHECK(conn.outstanding() == 0);

  auto bad = fast_options();
  bad.local_address = "not-an-ip";
  tether::client_connection conn2{f.loop, "127.0.0.1", f.port, bad};
  CHECK(conn2.get("/", record(o)).error() == tether::errc::invalid_address);
  tether::client_connection conn3{f.loop, "127.0.0.1", 0};
  CHECK(conn3.get("/", record(o)).error() == tether::errc::invalid_argument);
}

TEST_CASE("client: a queued request whose reconnect cannot bind fails instead of waiting forever", "[client][local]") {
  // The client closes first (it asked for Connection: close), so its fixed local port
  // sits in TIME_WAIT; libevent's reconnect for the next request cannot bind it, and
  // libevent leaves that request queued with nothing pending.
  tether::event_loop loop;
  raw_server raw;
  auto opts = fast_options();
  opts.local_address = "127.0.0.1";
  opts.local_port = tt::free_loopback_port();
  tether::client_connection conn{loop, "127.0.0.1", raw.port(), opts};
  tether::client_request first{tether::method::get, "/1"};
  REQUIRE_FALSE(first.headers().add("Connection", "close"));
  outcome a, b;
  REQUIRE(conn.request(std::move(first), record(a)));
  REQUIRE(conn.get("/2", record(b)));
  REQUIRE(raw.next_request(loop));
  raw.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");  // and keep the socket open
  REQUIRE(tt::run_until(loop, [&] { return a.calls && b.calls; }, 3000ms));
  CHECK_FALSE(a.ec);
  CHECK(b.ec == tether::errc::connect_failed);
}

TEST_CASE("client: targets and headers that could split the request are refused", "[client][hostile]") {
  // Client-only: the client refuses before it sends, so the server's engine does not matter.
  server_fixture f{tt::engine_kind::evhttp};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  outcome o;
  const std::vector<std::string> targets = {"", "/a b", "/a\r\nX-Injected: 1", "/\x01", "/caf\xc3\xa9", std::string("/a\0b", 4)};
  for (const std::string& target : targets)
    CHECK(conn.get(target, record(o)).error() == tether::errc::invalid_argument);
  tether::client_request req{tether::method::get, "/hello"};
  CHECK(req.headers().add("X-Evil", "a\r\nInjected: 1") == tether::errc::invalid_argument);
  CHECK(req.headers().add("Bad Name", "v") == tether::errc::invalid_argument);
  CHECK(conn.request(tether::client_request(static_cast<tether::method>(3), "/"), record(o)).error() ==
        tether::errc::invalid_argument);
  tt::run_for(f.loop, 20ms);
  CHECK(o.calls == 0);
  CHECK(f.requests == 0);
}

TT_ENGINES_TEST_CASE("client: cancel() completes a request once with errc::cancelled", "[client][cancel]") {
  server_fixture f{engine};
  closes c;
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  conn.on_close(c.recorder());
  outcome in_flight, queued, after;
  auto a = conn.get("/hold", record(in_flight));
  auto b = conn.get("/hello", record(queued));
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(tt::run_until(f.loop, [&] { return f.held.size() == 1; }));

  CHECK(conn.cancel(*b));  // queued behind: just removed
  CHECK(queued.calls == 1);
  CHECK(queued.ec == tether::errc::cancelled);
  CHECK(c.events.empty());

  CHECK(conn.cancel(*a));  // in flight: the connection closes
  CHECK(in_flight.calls == 1);
  CHECK(in_flight.ec == tether::errc::cancelled);
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].reason == tether::client_close_reason::closed_by_client);
  CHECK_FALSE(conn.cancel(*a));  // not outstanding any more

  REQUIRE(conn.get("/hello", record(after)));
  REQUIRE(f.wait(after));
  CHECK(after.body == "hello");
  tt::run_for(f.loop, 20ms);
  CHECK(in_flight.calls == 1);
  CHECK(queued.calls == 1);
}

TT_ENGINES_TEST_CASE("client: cancel() from the request's own chunk callback stops it at once", "[client][cancel]") {
  server_fixture f{engine};
  closes c;
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  conn.on_close(c.recorder());
  int chunks = 0;
  outcome o;
  tether::client_connection::request_id id = 0;
  auto sent = conn.request(tether::client_request(tether::method::get, "/stream"), [&](tether::buffer_ref) {
    ++chunks;
    CHECK(conn.cancel(id));
    CHECK(o.calls == 1);  // completed inside cancel()
  }, record(o));
  REQUIRE(sent);
  id = *sent;
  REQUIRE(f.wait(o));
  tt::run_for(f.loop, 50ms);
  CHECK(chunks == 1);
  CHECK(o.calls == 1);
  CHECK(o.ec == tether::errc::cancelled);
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].reason == tether::client_close_reason::closed_by_client);
}

TEST_CASE("client: cancelling a queued request inside a failed connect's completion", "[client][cancel]") {
  // libevent calls back every queued request of a failed connect from a private list;
  // the request cancelled here is in that list and must not be cancelled through libevent.
  tether::event_loop loop;
  refusing_port closed;
  tether::client_connection conn{loop, "127.0.0.1", closed.port, fast_options()};
  outcome first, second, third, later;
  tether::client_connection::request_id last_id = 0;
  REQUIRE(conn.get("/1", [&](std::error_code ec, const tether::client_response& r) {
    record(first)(ec, r);
    CHECK(conn.cancel(last_id));  // the last of libevent's private list
  }));
  REQUIRE(conn.get("/2", record(second)));
  auto s = conn.get("/3", record(third));
  REQUIRE(s);
  last_id = *s;
  REQUIRE(tt::run_until(loop, [&] { return first.calls && second.calls && third.calls; }));
  CHECK(first.ec == std::errc::connection_refused);
  CHECK(second.ec == std::errc::connection_refused);
  CHECK(third.ec == tether::errc::cancelled);
  // The connection's queue is intact: it still sends and fails requests normally.
  REQUIRE(conn.get("/4", record(later)));
  REQUIRE(tt::run_until(loop, [&] { return later.calls > 0; }));
  CHECK(later.ec == std::errc::connection_refused);
  tt::run_for(loop, 20ms);
  CHECK(first.calls + second.calls + third.calls + later.calls == 4);
}

TT_ENGINES_TEST_CASE("client: destroying the client mid-request completes it once and closes the connection",
                     "[client][lifetime]") {
  server_fixture f{engine};
  outcome in_flight, queued;
  closes c;
  held_request server_side;
  bool server_saw_close = false;
  {
    tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
    conn.on_close(c.recorder());
    REQUIRE(conn.get("/hold", record(in_flight)));
    REQUIRE(conn.get("/hello", record(queued)));
    REQUIRE(tt::run_until(f.loop, [&] { return f.held.size() == 1; }));
    server_side = f.held.front();
    server_side.watch_close(server_saw_close);
  }
  CHECK(in_flight.calls == 1);
  CHECK(in_flight.ec == tether::errc::cancelled);
  CHECK(queued.calls == 1);
  CHECK(queued.ec == tether::errc::cancelled);
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].reason == tether::client_close_reason::closed_by_client);
  CHECK(c.events[0].aborted);
  REQUIRE(tt::run_until(f.loop, [&] { return server_saw_close; }));
  CHECK(server_side.peer_gone());
}

TT_ENGINES_TEST_CASE("client: destroying the client inside its own callbacks is safe", "[client][lifetime]") {
  server_fixture f{engine};
  auto conn = std::make_unique<tether::client_connection>(f.loop, "127.0.0.1", f.port, fast_options());
  outcome queued, other;
  int chunks = 0;

  SECTION("inside a chunk callback, with a request queued behind") {
    REQUIRE(conn->request(tether::client_request(tether::method::get, "/stream"), [&](tether::buffer_ref) {
      ++chunks;
      conn.reset();
    }, record(other)));
    REQUIRE(conn->get("/hello", record(queued)));
    REQUIRE(tt::run_until(f.loop, [&] { return !conn; }));
    CHECK(chunks == 1);
    CHECK(other.ec == tether::errc::cancelled);
  }
  SECTION("inside a completion callback, with a request queued behind") {
    REQUIRE(conn->get("/hello", [&](std::error_code ec, const tether::client_response& r) {
      record(other)(ec, r);
      conn.reset();
    }));
    REQUIRE(conn->get("/hello", record(queued)));
    REQUIRE(tt::run_until(f.loop, [&] { return !conn; }));
    CHECK_FALSE(other.ec);
    CHECK(other.body == "hello");
  }
  SECTION("inside a failed connect's completion, with a request queued behind") {
    refusing_port closed;
    conn = std::make_unique<tether::client_connection>(f.loop, "127.0.0.1", closed.port, fast_options());
    REQUIRE(conn->get("/", [&](std::error_code ec, const tether::client_response& r) {
      record(other)(ec, r);
      conn.reset();
    }));
    REQUIRE(conn->get("/", record(queued)));
    REQUIRE(tt::run_until(f.loop, [&] { return !conn; }));
    CHECK(other.ec == std::errc::connection_refused);
  }
  SECTION("inside the close callback of an idle connection") {
    f.set_timeout(50ms);
    conn->on_close([&](const tether::client_close_event&) { conn.reset(); });
    REQUIRE(conn->get("/hello", record(other)));
    REQUIRE(tt::run_until(f.loop, [&] { return !conn; }, 3000ms));
    CHECK_FALSE(other.ec);
    queued.calls = 1;  // nothing was queued
    queued.ec = tether::errc::cancelled;
  }
  CHECK(queued.calls == 1);
  CHECK(queued.ec == tether::errc::cancelled);
  tt::run_for(f.loop, 30ms);  // the deferred free runs; ASan and valgrind watch the rest
  CHECK(other.calls == 1);
}

TT_ENGINES_TEST_CASE("client: a completion callback may send the next request", "[client]") {
  server_fixture f{engine};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  int done = 0;
  std::function<void(std::error_code, const tether::client_response&)> again;
  again = [&](std::error_code ec, const tether::client_response& r) {
    CHECK_FALSE(ec);
    CHECK(r.body().to_string() == "bye");
    if (++done < 5) REQUIRE(conn.get("/close", [&](std::error_code e, const tether::client_response& rr) { again(e, rr); }));
  };
  REQUIRE(conn.get("/close", [&](std::error_code e, const tether::client_response& rr) { again(e, rr); }));
  REQUIRE(tt::run_until(f.loop, [&] { return done == 5; }));
}

TT_ENGINES_TEST_CASE("client: an exception from a callback is reported, not propagated", "[client]") {
  server_fixture f{engine};
  tether::client_connection conn{f.loop, "127.0.0.1", f.port, fast_options()};
  int calls = 0;
  REQUIRE(conn.get("/hello", [&](std::error_code, const tether::client_response&) {
    ++calls;
    throw std::runtime_error("from a test callback");
  }));
  REQUIRE(tt::run_until(f.loop, [&] { return calls == 1; }));
  outcome o;
  REQUIRE(conn.get("/hello", record(o)));
  REQUIRE(f.wait(o));
  CHECK(o.body == "hello");
}

TT_ENGINES_TEST_CASE("client: resolves names through a dns_resolver", "[client][dns]") {
  server_fixture f{engine};
  char path[] = "/tmp/tether-hosts-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  const std::string hosts = "127.0.0.1 tether-test.example\n";
  REQUIRE(::write(fd, hosts.data(), hosts.size()) == static_cast<ssize_t>(hosts.size()));
  ::close(fd);
  tether::dns_resolver dns{f.loop, tether::dns_setup::empty};
  REQUIRE_FALSE(dns.load_hosts(path));
  ::unlink(path);
  // Unknown names go to a nameserver on a closed port and fail after one short timeout.
  REQUIRE_FALSE(dns.add_nameserver("127.0.0.1:" + std::to_string(refusing_port{}.port)));
  REQUIRE_FALSE(dns.set_option("timeout:", "0.2"));
  REQUIRE_FALSE(dns.set_option("attempts:", "1"));
  auto opts = fast_options();
  opts.dns = dns.native();
  outcome known, unknown;
  {
    tether::client_connection a{f.loop, "tether-test.example", f.port, opts};
    tether::client_connection b{f.loop, "no-such-host.invalid", f.port, opts};
    REQUIRE(a.get("/hello", record(known)));
    REQUIRE(b.get("/hello", record(unknown)));
    REQUIRE(tt::run_until(f.loop, [&] { return known.calls && unknown.calls; }, 5000ms));
  }
  CHECK_FALSE(known.ec);
  CHECK(known.body == "hello");
  CHECK(unknown.ec == tether::errc::resolve_failed);
}

TT_ENGINES_TEST_CASE("client: a moved-from client reports empty_handle", "[client]") {
  server_fixture f{engine};
  tether::client_connection a{f.loop, "127.0.0.1", f.port, fast_options()};
  tether::client_connection b = std::move(a);
  outcome o;
  CHECK(a.get("/", record(o)).error() == tether::errc::empty_handle);  // NOLINT: use after move is the test
  REQUIRE(b.get("/hello", record(o)));
  REQUIRE(f.wait(o));
  CHECK(o.body == "hello");
}

// ----- against a real nginx ------------------------------------------------------------------

TT_ENGINES_TEST_CASE("client: against nginx: static file, HEAD, 404, keep-alive and a proxied chunked stream",
                     "[client][nginx]") {
  if (!tt::nginx_process::binary()) {
    WARN("nginx is not installed (scripts/install-deps installs it): nginx tests skipped");
    return;
  }
  server_fixture f{engine};  // nginx proxies /proxy/ to it
  const std::string file = pattern(300000);
  tt::nginx_process nginx({{"file.txt", file}, {"small.txt", "small file\n"}}, f.port,
                          "  keepalive_timeout 300ms;\n");
  closes c;
  tether::client_connection conn{f.loop, "127.0.0.1", nginx.port(), fast_options()};
  conn.on_close(c.recorder());

  outcome got;
  REQUIRE(conn.get("/file.txt", record(got)));
  REQUIRE(f.wait(got));
  INFO(nginx.error_log());
  CHECK_FALSE(got.ec);
  CHECK(got.status == 200);
  CHECK(got.body == file);
  CHECK(got.header("Content-Length") == std::to_string(file.size()));
  CHECK(got.header("Server").rfind("nginx", 0) == 0);
  const auto first_port = conn.local_port();

  outcome head;
  REQUIRE(conn.request(tether::client_request(tether::method::head, "/small.txt"), record(head)));
  REQUIRE(f.wait(head));
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.header("Content-Length") == "11");

  outcome missing;
  REQUIRE(conn.get("/missing", record(missing)));
  REQUIRE(f.wait(missing));
  CHECK_FALSE(missing.ec);
  CHECK(missing.status == 404);
  CHECK(conn.local_port() == first_port);  // all three on one kept-alive connection
  CHECK(c.events.empty());

  std::vector<std::string> pieces;
  std::string te;
  outcome streamed;
  REQUIRE(conn.request(
      tether::client_request(tether::method::get, "/proxy/stream"),
      [&](const tether::client_response& r, tether::buffer_ref d) {
        te = std::string(r.header("Transfer-Encoding").value_or(""));
        pieces.push_back(d.to_string());
      },
      record(streamed)));
  REQUIRE(f.wait(streamed));
  CHECK_FALSE(streamed.ec);
  CHECK(streamed.status == 200);
  CHECK(te == "chunked");
  std::string joined;
  for (auto& p : pieces) joined += p;
  std::string expected;
  for (int i = 0; i < 20; ++i) expected += "chunk-" + std::to_string(i) + "\n";
  CHECK(joined == expected);
  CHECK(pieces.size() > 1);  // it arrived in pieces, not at the end

  // nginx closes the idle connection after keepalive_timeout.
  REQUIRE(tt::run_until(f.loop, [&] { return !c.events.empty(); }, 3000ms));
  CHECK(c.events[0].reason == tether::client_close_reason::peer_closed);
  CHECK_FALSE(c.events[0].aborted);
}

TT_ENGINES_TEST_CASE("client: against nginx: the upstream hangs up mid-stream", "[client][nginx]") {
  if (!tt::nginx_process::binary()) {
    WARN("nginx is not installed (scripts/install-deps installs it): nginx tests skipped");
    return;
  }
  server_fixture f{engine};
  tt::nginx_process nginx({}, f.port);
  tether::client_connection conn{f.loop, "127.0.0.1", nginx.port(), fast_options()};
  std::string got;
  outcome o;
  REQUIRE(conn.request(tether::client_request(tether::method::get, "/proxy/hangup-chunked"),
                       [&](tether::buffer_ref d) { got += d.to_string(); }, record(o)));
  REQUIRE(tt::run_until(f.loop, [&] { return !got.empty(); }));
  f.hang_up_all();
  REQUIRE(f.wait(o));
  INFO(nginx.error_log());
  CHECK(got == "first piece");
  CHECK(o.ec == tether::errc::incomplete_response);
}

// ----- examples/client, run as a user would --------------------------------------------------

namespace {

struct example_run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs examples/client with `args` while `loop` keeps serving; at most `limit`.
example_run run_client_example(tether::event_loop& loop, std::vector<std::string> args,
                               std::chrono::milliseconds limit = 5000ms) {
  const char* path = std::getenv("TETHER_EXAMPLE_CLIENT");
  REQUIRE(path);
  int out[2], err[2];
  REQUIRE(::pipe2(out, O_CLOEXEC | O_NONBLOCK) == 0);
  REQUIRE(::pipe2(err, O_CLOEXEC | O_NONBLOCK) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    std::vector<char*> argv{const_cast<char*>(path)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(path, argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  example_run r;
  auto drain = [&] {
    char buf[4096];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) r.out.append(buf, static_cast<std::size_t>(n));
    for (ssize_t n; (n = ::read(err[0], buf, sizeof buf)) > 0;) r.err.append(buf, static_cast<std::size_t>(n));
  };
  int status = 0;
  const bool exited = tt::run_until(loop, [&] {
    drain();
    return ::waitpid(pid, &status, WNOHANG) == pid;
  }, limit);
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  drain();
  ::close(out[0]);
  ::close(err[0]);
  r.exit_code = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool example_available() {
  if (std::getenv("TETHER_EXAMPLE_CLIENT")) return true;
  WARN("TETHER_EXAMPLE_CLIENT is not set (meson sets it when examples are built): skipped");
  return false;
}

}  // namespace

TT_ENGINES_TEST_CASE("example client: a 2xx response: status on stderr, body on stdout, exit 0", "[example]") {
  if (!example_available()) return;
  server_fixture f{engine};
  const std::string base = "http://127.0.0.1:" + std::to_string(f.port);
  auto ok = run_client_example(f.loop, {base + "/hello"});
  CHECK(ok.exit_code == 0);
  CHECK(ok.out == "hello");
  CHECK(ok.err == "200 OK\n");
  auto streamed = run_client_example(f.loop, {"--stream", base + "/stream"});
  CHECK(streamed.exit_code == 0);
  CHECK(streamed.out.rfind("chunk-0\nchunk-1\n", 0) == 0);
  CHECK(streamed.out.find("chunk-19\n") != std::string::npos);
  auto query = run_client_example(f.loop, {base + "/query?a=1&b=x%20y"});
  CHECK(query.out == "[a=1][b=x y]");
}

TT_ENGINES_TEST_CASE("example client: a non-2xx response exits 3, with status and body written", "[example]") {
  if (!example_available()) return;
  server_fixture f{engine};
  auto r = run_client_example(f.loop, {"http://127.0.0.1:" + std::to_string(f.port) + "/missing"});
  CHECK(r.exit_code == 3);
  CHECK(r.err.rfind("404 ", 0) == 0);
  CHECK(r.out.find("Not Found") != std::string::npos);
}

TT_ENGINES_TEST_CASE("example client: no response exits 2 with the reason", "[example]") {
  if (!example_available()) return;
  server_fixture f{engine};
  refusing_port closed;
  auto refused = run_client_example(f.loop, {"http://127.0.0.1:" + std::to_string(closed.port) + "/"});
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("Connection refused") != std::string::npos);
  CHECK(refused.out.empty());
  auto slow = run_client_example(f.loop, {"--timeout-ms", "200", "http://127.0.0.1:" + std::to_string(f.port) + "/hold"});
  CHECK(slow.exit_code == 2);
  CHECK(slow.err.find("did not respond") != std::string::npos);
}

TEST_CASE("example client: a bad URL or usage exits 1", "[example]") {
  if (!example_available()) return;
  tether::event_loop loop;
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {}, {"not a url"}, {"https://example.com/"}, {"http://h:0/"}, {"--retries"}, {"--bogus", "http://h/"}}) {
    auto r = run_client_example(loop, args);
    CHECK(r.exit_code == 1);
    CHECK_FALSE(r.err.empty());
  }
}
