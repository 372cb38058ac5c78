// bounded<>: a client that stops reading costs at most the high-water mark; producers are
// told "would block" above it and "writable again" at the low-water mark; drop,
// coalesce and disconnect do what they say.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr std::size_t high = 64 * 1024;
constexpr std::size_t low = 16 * 1024;
const std::string chunk(8 * 1024, 'c');

// Shrinks the kernel's buffers on both ends so that a stalled reader backs the output
// up into the server's process within a few chunks.
void shrink_server_send_buffer(auto& req) {
  const int fd = tt::socket_of(req);
  const int size = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}
void shrink_client_receive_buffer(tt::client& c) {
  const int size = 4096;
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

template <class Policy, class Engine = tether::evhttp_engine>
struct flow_fixture {
  using server_type = tt::server_on<Engine, Policy>;
  std::vector<tether::close_reason> closes;
  tether::event_loop loop;
  std::optional<server_type> srv{std::in_place, loop};
  typename server_type::request_handle stream;
  tether::reply_hook hook;
  int writable_calls = 0;
  std::uint16_t port = 0;

  flow_fixture() {
    (void)srv->route("/stream", [this](typename server_type::request& req) {
      (void)req.connection().on_close([this](const tether::close_event& e) { closes.push_back(e.reason); });
      shrink_server_send_buffer(req);
      REQUIRE_FALSE(req.start(200));
      stream = req.hold();
      REQUIRE_FALSE(stream.attach(hook));
    });
    hook.on_writable([this] { ++writable_calls; });
    port = *srv->bind("127.0.0.1", 0);
  }

  // Offers chunks until the policy pushes back; returns the codes seen.
  std::vector<std::error_code> offer(int n, const std::string& body) {
    std::vector<std::error_code> codes;
    for (int i = 0; i < n; ++i) codes.push_back(stream.send_chunk(body));
    return codes;
  }
};

std::size_t count(const std::vector<std::error_code>& v, std::error_code what) {
  std::size_t n = 0;
  for (auto& e : v) n += e == what;
  return n;
}

}  // namespace

TEMPLATE_TEST_CASE("bounded<wait>: a stalled reader never grows the output past the high mark, and the producer resumes",
          "[flow][bounded]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  flow_fixture<tether::bounded<tether::copy_buffer, high, low>, TestType> f;
  tt::client c(f.port);
  shrink_client_receive_buffer(c);
  c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return bool(f.stream); }));

  // The producer keeps offering for a while; the client reads nothing.
  std::size_t accepted = 0, refused = 0, max_queued = 0;
  tether::timer producer{f.loop, [&] {
    for (int i = 0; i < 4; ++i) {
      const auto ec = f.stream.send_chunk(chunk);
      if (!ec) ++accepted;
      else if (ec == tether::errc::would_block) ++refused;
      max_queued = std::max(max_queued, f.stream.queued_bytes());
    }
  }};
  producer.start_periodic(2ms);
  REQUIRE(tt::run_until(f.loop, [&] { return refused >= 50; }));
  tt::run_for(f.loop, 100ms);
  producer.stop();
  CHECK(max_queued <= high + chunk.size());  // the bound
  CHECK(f.stream.queued_bytes() >= high);    // and it really was reached
  CHECK(f.writable_calls == 0);

  // The client starts reading: the output drains to the low mark and the producer is told.
  REQUIRE(tt::run_until(f.loop, [&] {
    c.pump();
    return f.writable_calls > 0;
  }));
  CHECK(f.stream.queued_bytes() <= low);
  CHECK_FALSE(f.stream.send_chunk(chunk));  // accepted again
  ++accepted;
  REQUIRE_FALSE(f.stream.end());
  REQUIRE(c.wait_for(f.loop, "0\r\n\r\n", 5000ms));
  // Every accepted chunk arrived, nothing refused did.
  CHECK(c.occurrences(chunk) == accepted);
}

TEMPLATE_TEST_CASE("bounded<drop>: chunks offered above the high mark are discarded and reported", "[flow][bounded]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  flow_fixture<tether::bounded<tether::copy_buffer, high, low, tether::slow_consumer::drop>, TestType> f;
  tt::client c(f.port);
  shrink_client_receive_buffer(c);
  c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return bool(f.stream); }));
  std::vector<std::error_code> codes;
  REQUIRE(tt::run_until(f.loop, [&] {
    auto more = f.offer(4, chunk);
    codes.insert(codes.end(), more.begin(), more.end());
    return count(codes, tether::errc::dropped) >= 20;
  }));
  CHECK(count(codes, tether::errc::would_block) == 0);
  CHECK(f.stream.queued_bytes() <= high + chunk.size());
  const std::size_t accepted = count(codes, std::error_code{});
  REQUIRE(tt::run_until(f.loop, [&] {
    c.pump();
    return f.writable_calls > 0;
  }));
  REQUIRE_FALSE(f.stream.end());
  REQUIRE(c.wait_for(f.loop, "0\r\n\r\n", 5000ms));
  CHECK(c.occurrences(chunk) == accepted);
}

TEMPLATE_TEST_CASE("bounded<coalesce>: a slow client gets the latest frame, not a queue of old ones", "[flow][bounded]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  flow_fixture<tether::bounded<tether::copy_buffer, high, low, tether::slow_consumer::coalesce>, TestType> f;
  tt::client c(f.port);
  shrink_client_receive_buffer(c);
  c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return bool(f.stream); }));
  // Fill the output with filler, then offer numbered frames while it is full.
  REQUIRE(tt::run_until(f.loop, [&] {
    f.offer(4, chunk);
    return f.stream.queued_bytes() >= high;
  }));
  for (int frame = 1; frame <= 100; ++frame) {
    REQUIRE_FALSE(f.stream.send_chunk("<frame " + std::to_string(frame) + ">"));
  }
  CHECK(f.stream.queued_bytes() <= high + chunk.size());
  REQUIRE(tt::run_until(f.loop, [&] {
    c.pump();
    return c.data().find("<frame 100>") != std::string::npos;
  }, 5000ms));
  CHECK(c.occurrences("<frame ") == 1);  // frames 1..99 were replaced, never sent
  REQUIRE_FALSE(f.stream.end());
  CHECK(c.wait_for(f.loop, "0\r\n\r\n"));
}

TEMPLATE_TEST_CASE("bounded<disconnect>: a client that stays slow past the deadline is closed as slow_consumer",
          "[flow][bounded]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  flow_fixture<tether::bounded<tether::copy_buffer, high, low, tether::slow_consumer::disconnect<150>>, TestType> f;
  std::vector<std::pair<tether::close_reason, bool>> ends;
  f.hook.on_end([&](tether::close_reason r, bool aborted) { ends.emplace_back(r, aborted); });
  tt::client c(f.port);
  shrink_client_receive_buffer(c);
  c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return bool(f.stream); }));
  REQUIRE(tt::run_until(f.loop, [&] { return count(f.offer(4, chunk), tether::errc::would_block) > 0; }));
  const auto refused_at = std::chrono::steady_clock::now();
  REQUIRE(tt::run_until(f.loop, [&] { return !f.closes.empty(); }, 2000ms));
  const auto waited = std::chrono::steady_clock::now() - refused_at;
  CHECK(waited >= 140ms);
  CHECK(f.closes == std::vector<tether::close_reason>{tether::close_reason::slow_consumer});
  REQUIRE(ends.size() == 1);
  CHECK(ends[0] == std::make_pair(tether::close_reason::slow_consumer, true));
  CHECK_FALSE(f.hook.attached());
  CHECK(f.stream.send_chunk(chunk) == tether::errc::peer_gone);
}

TEMPLATE_TEST_CASE("reply_hook: hears the end of the exchange once, completed or aborted", "[flow][hook]", TT_ENGINES) {
  INFO("engine " << TestType::name);
  flow_fixture<tether::copy_buffer, TestType> f;
  std::vector<std::pair<tether::close_reason, bool>> ends;
  f.hook.on_end([&](tether::close_reason r, bool aborted) { ends.emplace_back(r, aborted); });
  tt::client a(f.port);
  a.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return bool(f.stream); }));
  REQUIRE_FALSE(f.stream.end());
  REQUIRE(a.wait_for(f.loop, "0\r\n\r\n"));
  REQUIRE(ends.size() == 1);
  CHECK(ends[0] == std::make_pair(tether::close_reason::completed, false));

  f.stream.reset();
  tt::client b(f.port);
  b.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return bool(f.stream); }));
  b.reset();
  REQUIRE(tt::run_until(f.loop, [&] { return ends.size() == 2; }));
  CHECK(ends[1] == std::make_pair(tether::close_reason::peer_reset, true));
  tt::run_for(f.loop, 20ms);
  CHECK(ends.size() == 2);
  f.srv.reset();  // and not a third time when the server goes
  CHECK(ends.size() == 2);
  CHECK(f.closes.size() == 2);
}
