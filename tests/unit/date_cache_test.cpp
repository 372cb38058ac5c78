#include <tether/server.hpp>

#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <ctime>
#include <string>

using namespace std::chrono_literals;

namespace {

std::string rfc1123(time_t t) {
  char out[32];
  REQUIRE(tether::detail::date_cache::format(t, out));
  return out;
}

// The reply's header block, up to the blank line.
std::string head_of(const std::string& s) { return s.substr(0, s.find("\r\n\r\n") + 2); }

std::size_t count_of(const std::string& s, std::string_view needle) {
  std::size_t n = 0;
  for (auto p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("date_cache: formats RFC 1123 dates like libevent does", "[date]") {
  CHECK(rfc1123(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(rfc1123(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");   // RFC 9110's example
  CHECK(rfc1123(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");   // leap day
  CHECK(rfc1123(2147483648) == "Tue, 19 Jan 2038 03:14:08 GMT");  // past 32-bit time_t
  CHECK(rfc1123(253402300799) == "Fri, 31 Dec 9999 23:59:59 GMT");
  char out[32] = "unchanged";
  CHECK_FALSE(tether::detail::date_cache::format(253402300800, out));  // year 10000
  CHECK(std::string(out) == "unchanged");

  // Against the C library's own formatting, a day's worth of seconds apart.
  for (time_t t = 1700000000; t < 1700000000 + 86400 * 40; t += 86400 + 3607) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char expected[64];
    std::strftime(expected, sizeof expected, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    CHECK(rfc1123(t) == expected);
  }
}

TEST_CASE("server: cache_date_header stamps HTTP/1.1 replies, as libevent would", "[server][date]") {
  tether::event_loop loop;
  tether::server srv{loop};
  srv.cache_date_header();
  (void)srv.route("/own", [](tether::request& r) {
    (void)r.output_headers().add("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
    (void)r.reply(200, "own");
  });
  (void)srv.route("/stream", [](tether::request& r) {
    (void)r.start(200);
    (void)r.send_chunk("s");
    (void)r.end();
  });
  (void)srv.route("/error", [](tether::request& r) { (void)r.send_error(404); });
  srv.fallback([](tether::request& r) { (void)r.reply(200, "hi"); });
  const auto port = *srv.bind("127.0.0.1", 0);

  const auto before = std::time(nullptr);
  tt::client c(port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "hi"));
  const auto after = std::time(nullptr);
  const std::string head = head_of(c.data());
  INFO(head);
  CHECK(count_of(head, "\r\nDate: ") == 1);
  bool current = false;
  // The loop's cached clock is libevent's coarse monotonic clock plus an offset refreshed
  // every few seconds: it may lag the wall clock by a tick (milliseconds), so across a
  // second boundary the stamped second can be the one before `before`.
  for (auto t = before - 1; t <= after; ++t) current = current || head.find("Date: " + rfc1123(t) + "\r\n") != std::string::npos;
  CHECK(current);

  SECTION("a reply's own Date is kept") {
    c.clear();
    c.send("GET /own HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_for(loop, "own"));
    CHECK(count_of(c.data(), "\r\nDate: ") == 1);
    CHECK(c.data().find("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n") != std::string::npos);
  }
  SECTION("streams and error replies are stamped too") {
    c.clear();
    c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_for(loop, "0\r\n\r\n"));
    CHECK(count_of(c.data(), "\r\nDate: ") == 1);
    c.clear();
    c.send("GET /error HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_for(loop, "</HTML>"));
    CHECK(count_of(c.data(), "\r\nDate: ") == 1);
  }
  SECTION("HTTP/1.0 replies get none, as with libevent alone") {
    tt::client old(port);
    old.send("GET / HTTP/1.0\r\n\r\n");
    REQUIRE(old.wait_eof(loop));
    CHECK(old.data().find("hi") != std::string::npos);
    CHECK(count_of(old.data(), "Date: ") == 0);
  }
}

TEST_CASE("server: without cache_date_header libevent formats the Date itself", "[server][date]") {
  tether::event_loop loop;
  tether::server srv{loop};
  srv.fallback([](tether::request& r) { (void)r.reply(200, "hi"); });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(loop, "hi"));
  CHECK(count_of(head_of(c.data()), "\r\nDate: ") == 1);
}
