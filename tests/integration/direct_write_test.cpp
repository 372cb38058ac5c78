// Direct writes (detail/direct_write.hpp): a streamed chunk for an idle plain socket goes
// to the socket at once; the rest of a partial write is queued in order; a socket that
// fails takes the one close path; HEAD and bounded streams keep their rules.
//
// Every case runs on both engines (issue 9), its body compiled once (TT_ENGINES_TEST_CASE):
// only the server and its stream (direct_server<Server>) are per engine, behind
// direct_fixture. What the cases assert is what a user sees: the bytes on the wire and
// their order, queued_bytes(), the close callback and on_end() once, on_writable() after a
// drain. The lean engine writes an idle socket directly too (lean_server's chunk(): one
// writev outside a handler with nothing queued), so the same assertions hold there; what
// is evhttp's own (the chunk left to the bufferevent when the socket takes nothing,
// evhttp's drain callback) is named in comments, not asserted.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;

namespace {
/// What the cases drive, on whichever engine and buffer policy: the stream the fallback
/// handler started, and what its close callback and on_end() heard. The loop is here, so
/// it outlives the server (direct_server's member).
struct direct_fixture {
  std::vector<tether::close_reason> closes;
  int ends = 0;
  int writable = 0;  // on_writable() calls, once count_writable() set it
  tether::event_loop loop;
  std::uint16_t port = 0;

  direct_fixture() = default;
  direct_fixture(const direct_fixture&) = delete;
  direct_fixture& operator=(const direct_fixture&) = delete;
  virtual ~direct_fixture() = default;

  virtual bool has_stream() const = 0;
  virtual std::error_code write(std::string_view bytes) = 0;
  virtual std::error_code write(std::string_view first, std::string_view second) = 0;  // one chunk
  virtual std::error_code write(const tether::shared_bytes& bytes) = 0;
  virtual std::error_code end() = 0;
  virtual std::size_t queued_bytes() const = 0;
  virtual std::error_code count_writable() = 0;  // on_writable(): ++writable
  virtual void destroy_server() = 0;

  /// Opens the stream and waits until its head reached the client: the output is empty.
  void open(tt::client& c, const char* request = "GET / HTTP/1.1\r\nHost: t\r\n\r\n") {
    c.send(request);
    REQUIRE(c.wait_for(loop, "\r\n\r\n"));
    REQUIRE(has_stream());
    REQUIRE(tt::run_until(loop, [&] { return queued_bytes() == 0; }));
  }
};

template <class Server>
struct direct_server final : direct_fixture {
  using stream_type = tether::basic_stream<typename Server::config>;
  std::optional<Server> srv{std::in_place, loop};
  std::optional<stream_type> stream;

  direct_server() {
    srv->fallback([this](typename Server::request& req) {
      (void)req.connection().on_close([this](const tether::close_event& e) { closes.push_back(e.reason); });
      auto s = stream_type::start(req);
      REQUIRE(s);
      stream.emplace(std::move(*s));
      REQUIRE_FALSE(stream->on_end([this](tether::close_reason, bool) { ++ends; }));
    });
    port = *srv->bind("127.0.0.1", 0);
  }
  bool has_stream() const override { return stream.has_value(); }
  std::error_code write(std::string_view bytes) override { return stream->write(bytes); }
  std::error_code write(std::string_view first, std::string_view second) override { return stream->write(first, second); }
  std::error_code write(const tether::shared_bytes& bytes) override { return stream->write(bytes); }
  std::error_code end() override { return stream->end(); }
  std::size_t queued_bytes() const override { return stream->queued_bytes(); }
  std::error_code count_writable() override {
    return stream->on_writable([this] { ++writable; });
  }
  void destroy_server() override { srv.reset(); }
};

/// A fixture on `engine` whose server keeps `BufferPolicy`.
template <class BufferPolicy = tether::copy_buffer>
std::unique_ptr<direct_fixture> direct_on(tt::engine_kind engine) {
  return tt::with_engine(engine, []<class Engine>(std::type_identity<Engine>) -> std::unique_ptr<direct_fixture> {
    return std::make_unique<direct_server<tt::server_on<Engine, BufferPolicy>>>();
  });
}

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

/// `n` bytes of a pattern that does not repeat in step with the chunk sizes; made once per
/// size (each case runs twice, once per engine, and 12 MiB take seconds under valgrind).
const std::string& filler(std::size_t n) {
  static std::map<std::size_t, std::string> made;
  auto [it, fresh] = made.try_emplace(n, n, '\0');
  if (fresh)
    for (std::size_t i = 0; i < n; ++i) it->second[i] = static_cast<char>('a' + (i * 7 + i / 4093) % 26);
  return it->second;
}
}  // namespace

TT_ENGINES_TEST_CASE("direct write: a chunk for a client that keeps up goes to the socket at once", "[direct_write]") {
  SECTION("chunked, copied") {
    const auto fp = direct_on(engine);
    auto& f = *fp;
    tt::client c(f.port);
    f.open(c);
    REQUIRE_FALSE(f.write("hello, ", "world"));
    // Nothing waits in the server's output: evhttp's own path would hold all 19 bytes in
    // the bufferevent here until the loop's next write event.
    CHECK(f.queued_bytes() == 0);
    REQUIRE(c.wait_for(f.loop, "c\r\nhello, world\r\n"));
    REQUIRE_FALSE(f.end());
    REQUIRE(c.wait_for(f.loop, "0\r\n\r\n"));
    CHECK(strict_dechunk(c.data()) == "hello, world");
  }
  SECTION("chunked, by reference (a shared payload in two chains)") {
    const auto fp = direct_on<tether::reference_buffer>(engine);
    auto& f = *fp;
    tt::client c(f.port);
    f.open(c);
    const tether::shared_bytes big{filler(5000)};
    REQUIRE_FALSE(f.write(big));
    CHECK(f.queued_bytes() == 0);
    REQUIRE_FALSE(f.end());
    REQUIRE(c.wait_for(f.loop, "\r\n0\r\n\r\n"));
    CHECK(strict_dechunk(c.data()) == filler(5000));
  }
  SECTION("HTTP/1.0, close-delimited: no framing") {
    const auto fp = direct_on(engine);
    auto& f = *fp;
    tt::client c(f.port);
    f.open(c, "GET / HTTP/1.0\r\n\r\n");
    REQUIRE_FALSE(f.write("raw bytes"));
    CHECK(f.queued_bytes() == 0);
    REQUIRE_FALSE(f.end());
    REQUIRE(c.wait_eof(f.loop));
    CHECK(c.data().substr(c.data().size() - 9) == "raw bytes");
    REQUIRE(f.closes.size() == 1);
    CHECK(f.closes[0] == tether::close_reason::completed);
  }
  SECTION("HEAD: the body is dropped, on the direct path too") {
    const auto fp = direct_on(engine);
    auto& f = *fp;
    tt::client c(f.port);
    f.open(c, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    (void)f.write("no body for HEAD");
    (void)f.end();
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");  // the next reply follows the head at once
    REQUIRE(c.wait_for(f.loop, "HTTP/1.1 200 OK", 3000ms));
    CHECK(c.data().find("no body") == std::string::npos);
  }
}

TT_ENGINES_TEST_CASE("direct write: the rest of a partial write is queued, and later chunks follow it in order",
                     "[direct_write]") {
  const auto fp = direct_on(engine);
  auto& f = *fp;
  tt::client c(f.port);
  f.open(c);
  // More than loopback's send buffer (4 MiB at most) and a receive buffer that nobody
  // reads from hold together: the kernel takes a part. (Below max_pending_output.)
  const std::string& big = filler(12u << 20);
  REQUIRE_FALSE(f.write(big));
  const std::size_t queued = f.queued_bytes();
  CHECK(queued > 0);
  CHECK(queued < big.size());  // a queue-first path (evhttp's own) would queue all of it
  // The client reads a part without the server's loop running: the server's socket has
  // room again while its output still holds the rest. A chunk written now must wait.
  for (int i = 0; i < 1000 && c.data().size() < (1u << 20); ++i) {
    c.pump();
    ::usleep(100);
  }
  REQUIRE(c.data().size() >= (1u << 20));
  REQUIRE_FALSE(f.write("second;"));
  REQUIRE_FALSE(f.write("third"));
  REQUIRE_FALSE(f.end());
  REQUIRE(read_to_end(f.loop, c, "third\r\n0\r\n\r\n"));
  CHECK(strict_dechunk(c.data()) == big + "second;third");
  CHECK(f.closes.empty());  // keep-alive: the reply completed, the connection stays
}

TT_ENGINES_TEST_CASE("direct write: a client that resets is closed once, whether the direct write or libevent meets it",
                     "[direct_write]") {
  // On evhttp the failed direct write leaves the chunk to the bufferevent and libevent
  // meets the reset; the lean engine closes in write() itself. Either way: one close.
  SECTION("reset before the write: the direct write fails, the connection closes once") {
    const auto fp = direct_on(engine);
    auto& f = *fp;
    tt::client c(f.port);
    f.open(c);
    c.reset();  // the RST reaches the server's socket before the loop runs again
    (void)f.write("into a reset socket");
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
    tt::run_for(f.loop, 50ms);
    CHECK(f.closes.size() == 1);
    CHECK(f.ends == 1);
    CHECK(f.write("late") == tether::errc::peer_gone);
  }
  SECTION("reset while the rest of a partial write waits") {
    const auto fp = direct_on(engine);
    auto& f = *fp;
    tt::client c(f.port);
    f.open(c);
    REQUIRE_FALSE(f.write(filler(12u << 20)));
    REQUIRE(f.queued_bytes() > 0);
    c.reset();
    (void)f.write("behind the rest");
    REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }));
    tt::run_for(f.loop, 50ms);
    CHECK(f.closes.size() == 1);
    CHECK(f.ends == 1);
    f.destroy_server();  // no second close at teardown
    CHECK(f.closes.size() == 1);
  }
}

TT_ENGINES_TEST_CASE("direct write: a bounded stream still hears that its output drained after a partial write",
                     "[direct_write][flow]") {
  // Written for evhttp, whose drain callback the first write installs and a direct write
  // must not lose; on the lean engine the same sequence checks its own low-water report.
  // The watermarks of streams_test's bounded server (compiled in the same unity
  // translation unit, so its servers are instantiated once): a 12 MiB write is far above
  // either.
  const auto fp = direct_on<tether::bounded<tether::copy_buffer, 32 * 1024, 8 * 1024>>(engine);
  auto& f = *fp;
  tt::client c(f.port);
  f.open(c);
  REQUIRE_FALSE(f.count_writable());
  REQUIRE_FALSE(f.write("first"));  // on evhttp, the bufferevent now holds the drain callback
  REQUIRE(c.wait_for(f.loop, "first"));
  REQUIRE(tt::run_until(f.loop, [&] { return f.queued_bytes() == 0; }));
  const std::string& big = filler(12u << 20);
  REQUIRE_FALSE(f.write(big));
  CHECK(f.queued_bytes() > 0);
  CHECK(f.queued_bytes() < big.size());  // direct, in part
  CHECK(f.write("refused") == tether::errc::would_block);  // above the high-water mark
  REQUIRE(tt::run_until(f.loop, [&] {
    c.pump();
    return f.writable > 0;
  }, 10000ms));
  REQUIRE_FALSE(f.write("after"));
  REQUIRE_FALSE(f.end());
  REQUIRE(read_to_end(f.loop, c, "after\r\n0\r\n\r\n"));
  CHECK(strict_dechunk(c.data()) == "first" + big + "after");
}
