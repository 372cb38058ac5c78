// Direct writes (detail/direct_write.hpp): a streamed chunk for an idle plain socket goes
// to the socket at once; the rest of a partial write is queued in order; a socket that
// fails takes the one close path; HEAD and bounded streams keep their rules.
#include <tether/tether.hpp>

#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {
template <class Server = tether::server>
struct fixture {
  using stream_type = tether::basic_stream<typename Server::config>;
  std::vector<tether::close_reason> closes;
  int ends = 0;
  tether::event_loop loop;
  std::optional<Server> srv{std::in_place, loop};
  std::optional<stream_type> stream;
  std::uint16_t port = 0;

  fixture() {
    srv->fallback([this](typename Server::request& req) {
      (void)req.connection().on_close([this](const tether::close_event& e) { closes.push_back(e.reason); });
      auto s = stream_type::start(req);
      REQUIRE(s);
      stream.emplace(std::move(*s));
      REQUIRE_FALSE(stream->on_end([this](tether::close_reason, bool) { ++ends; }));
    });
    port = *srv->bind("127.0.0.1", 0);
  }
  /// Opens the stream and waits until its head reached the client: the output is empty.
  void open(tt::client& c, const char* request = "GET / HTTP/1.1\r\nHost: t\r\n\r\n") {
    c.send(request);
    REQUIRE(c.wait_for(loop, "\r\n\r\n"));
    REQUIRE(stream.has_value());
    REQUIRE(tt::run_until(loop, [&] { return stream->queued_bytes() == 0; }));
  }
};

/// The body of a chunked reply in `wire` (after its head), decoded; "!" if malformed.
std::string strict_dechunk(const std::string& wire) {
  auto at = wire.find("\r\n\r\n");
  if (at == std::string::npos) return "!";
  at += 4;
  std::string body;
  for (;;) {
    const auto eol = wire.find("\r\n", at);
    if (eol == std::string::npos) return "!";
    const std::size_t n = std::stoul(wire.substr(at, eol - at), nullptr, 16);
    at = eol + 2;
    if (n == 0) return body;
    if (wire.size() < at + n + 2 || wire.compare(at + n, 2, "\r\n") != 0) return "!";
    body.append(wire, at, n);
    at += n + 2;
  }
}

/// Pumps until what `c` received ends with `tail` (not a search: the replies here are
/// 12 MiB, and searching them on every iteration is what takes time under valgrind).
bool read_to_end(tether::event_loop& loop, tt::client& c, std::string_view tail) {
  return tt::run_until(loop, [&] {
    c.pump();
    return c.data().ends_with(tail);
  }, 10000ms);
}

std::string filler(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 4093) % 26);
  return s;
}
}  // namespace

TEST_CASE("direct write: a chunk for a client that keeps up goes to the socket at once", "[direct_write]") {
  SECTION("chunked, copied") {
    fixture f;
    tt::client c(f.port);
    f.open(c);
    REQUIRE_FALSE(f.stream->write("hello, ", "world"));
    // Nothing waits in the bufferevent: evhttp's path would hold all 19 bytes here until
    // the loop's next write event.
    CHECK(f.stream->queued_bytes() == 0);
    REQUIRE(c.wait_for(f.loop, "c\r\nhello, world\r\n"));
    REQUIRE_FALSE(f.stream->end());
    REQUIRE(c.wait_for(f.loop, "0\r\n\r\n"));
    CHECK(strict_dechunk(c.data()) == "hello, world");
  }
  SECTION("chunked, by reference (a shared payload in two chains)") {
    fixture<tether::basic_server<tether::eager_close<>, tether::reference_buffer>> f;
    tt::client c(f.port);
    f.open(c);
    const tether::shared_bytes big{filler(5000)};
    REQUIRE_FALSE(f.stream->write(big));
    CHECK(f.stream->queued_bytes() == 0);
    REQUIRE_FALSE(f.stream->end());
    REQUIRE(c.wait_for(f.loop, "\r\n0\r\n\r\n"));
    CHECK(strict_dechunk(c.data()) == filler(5000));
  }
  SECTION("HTTP/1.0, close-delimited: no framing") {
    fixture f;
    tt::client c(f.port);
    f.open(c, "GET / HTTP/1.0\r\n\r\n");
    REQUIRE_FALSE(f.stream->write("raw bytes"));
    CHECK(f.stream->queued_bytes() == 0);
    REQUIRE_FALSE(f.stream->end());
    REQUIRE(c.wait_eof(f.loop));
    CHECK(c.data().substr(c.data().size() - 9) == "raw bytes");
    REQUIRE(f.closes.size() == 1);
    CHECK(f.closes[0] == tether::close_reason::completed);
  }
  SECTION("HEAD: evhttp drops the body, and so does the direct path") {
    fixture f;
    tt::client c(f.port);
    f.open(c, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    (void)f.stream->write("no body for HEAD");
    (void)f.stream->end();
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");  // the next reply follows the head at once
    REQUIRE(c.wait_for(f.loop, "HTTP/1.1 200 OK", 3000ms));
    CHECK(c.data().find("no body") == std::string::npos);
  }
}

TEST_CASE("direct write: the rest of a partial write is queued, and later chunks follow it in order",
          "[direct_write]") {
  fixture f;
  tt::client c(f.port);
  f.open(c);
  // More than loopback's send buffer (4 MiB at most) and a receive buffer that nobody
  // reads from hold together: the kernel takes a part. (Below max_pending_output.)
  const std::string big = filler(12u << 20);
  REQUIRE_FALSE(f.stream->write(big));
  const std::size_t queued = f.stream->queued_bytes();
  CHECK(queued > 0);
  CHECK(queued < big.size());  // evhttp's path would queue all of it
  // The client reads a part without the server's loop running: the server's socket has
  // room again while its output still holds the rest. A chunk written now must wait.
  for (int i = 0; i < 1000 && c.data().size() < (1u << 20); ++i) {
    c.pump();
    ::usleep(100);
  }
  REQUIRE(c.data().size() >= (1u << 20));
  REQUIRE_FALSE(f.stream->write("second;"));
  REQUIRE_FALSE(f.stream->write("third"));
  REQUIRE_FALSE(f.stream->end());
  REQUIRE(read_to_end(f.loop, c, "third\r\n0\r\n\r\n"));
  CHECK(strict_dechunk(c.data()) == big + "second;third");
  CHECK(f.closes.empty());  // keep-alive: the reply completed, the connection stays
}

TEST_CASE("direct write: a client that resets is closed once, whether the direct write or libevent meets it",
          "[direct_write]") {
  SECTION("reset before the write: the direct write fails, libevent closes") {
    fixture f;
    tt::client c(f.port);
    f.open(c);
    c.reset();  // the RST reaches the server's socket before the loop runs again
    (void)f.stream->write("into a reset socket");
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
    tt::run_for(f.loop, 50ms);
    CHECK(f.closes.size() == 1);
    CHECK(f.ends == 1);
    CHECK(f.stream->write("late") == tether::errc::peer_gone);
  }
  SECTION("reset while the rest of a partial write waits") {
    fixture f;
    tt::client c(f.port);
    f.open(c);
    REQUIRE_FALSE(f.stream->write(filler(12u << 20)));
    REQUIRE(f.stream->queued_bytes() > 0);
    c.reset();
    (void)f.stream->write("behind the rest");
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
    tt::run_for(f.loop, 50ms);
    CHECK(f.closes.size() == 1);
    CHECK(f.ends == 1);
    f.srv.reset();  // no second close at teardown
    CHECK(f.closes.size() == 1);
  }
}

TEST_CASE("direct write: a bounded stream still hears that its output drained after a partial write",
          "[direct_write][flow]") {
  using bounded_server = tether::basic_server<tether::eager_close<>, tether::bounded<tether::copy_buffer, 1u << 20, 1u << 16>>;
  fixture<bounded_server> f;
  int writable = 0;
  tt::client c(f.port);
  f.open(c);
  REQUIRE_FALSE(f.stream->on_writable([&] { ++writable; }));
  REQUIRE_FALSE(f.stream->write("first"));  // through evhttp: it now holds the drain callback
  REQUIRE(c.wait_for(f.loop, "first"));
  REQUIRE(tt::run_until(f.loop, [&] { return f.stream->queued_bytes() == 0; }));
  const std::string big = filler(12u << 20);
  REQUIRE_FALSE(f.stream->write(big));
  CHECK(f.stream->queued_bytes() > 0);
  CHECK(f.stream->queued_bytes() < big.size());  // direct, in part
  CHECK(f.stream->write("refused") == tether::errc::would_block);  // above the high-water mark
  REQUIRE(tt::run_until(f.loop, [&] {
    c.pump();
    return writable > 0;
  }, 10000ms));
  REQUIRE_FALSE(f.stream->write("after"));
  REQUIRE_FALSE(f.stream->end());
  REQUIRE(read_to_end(f.loop, c, "after\r\n0\r\n\r\n"));
  CHECK(strict_dechunk(c.data()) == "first" + big + "after");
}
