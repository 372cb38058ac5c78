// The HTTP/1.1 response building blocks, byte for byte.
#include <tether/http1/response_writer.hpp>

#include <tether/detail/date_cache.hpp>

#include <catch2/catch.hpp>

#include <event2/event.h>

#include <cstdint>
#include <string>
#include <string_view>

using namespace std::string_view_literals;
namespace h1 = tether::http1;

TEST_CASE("http1 writer: status lines come from a compile-time table", "[http1][writer]") {
  STATIC_REQUIRE(h1::status_line(200) == "HTTP/1.1 200 OK\r\n"sv);
  CHECK(h1::status_line(100) == "HTTP/1.1 100 Continue\r\n");
  CHECK(h1::status_line(204) == "HTTP/1.1 204 No Content\r\n");
  CHECK(h1::status_line(404) == "HTTP/1.1 404 Not Found\r\n");
  CHECK(h1::status_line(413) == "HTTP/1.1 413 Content Too Large\r\n");
  CHECK(h1::status_line(431) == "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  CHECK(h1::status_line(505) == "HTTP/1.1 505 HTTP Version Not Supported\r\n");
  // A code RFC 9110 does not name: an empty reason (RFC 9112 4).
  CHECK(h1::status_line(299) == "HTTP/1.1 299 \r\n");
  CHECK(h1::status_line(599) == "HTTP/1.1 599 \r\n");
  CHECK(h1::status_line(99).empty());
  CHECK(h1::status_line(600).empty());
  CHECK(h1::status_line(-1).empty());
  for (int c = 100; c <= 599; ++c) {
    const auto l = h1::status_line(c);
    REQUIRE(l.substr(0, 9) == "HTTP/1.1 ");
    REQUIRE(l.substr(9, 3) == std::to_string(c));
    REQUIRE(l.substr(l.size() - 2) == "\r\n");
    REQUIRE(l.substr(13, l.size() - 15) == h1::reason_phrase(c));
  }
}

TEST_CASE("http1 writer: a head is written exactly, without printf", "[http1][writer]") {
  char buf[256];
  h1::head_writer w{buf};
  w.status(200).field("Content-Type", "text/plain").content_length(5).date("Sun, 06 Nov 1994 08:49:37 GMT");
  w.line(h1::connection_line(false, 1));
  CHECK(w.finish() ==
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: 5\r\n"
        "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        "Connection: close\r\n"
        "\r\n");
  CHECK_FALSE(w.failed());

  char b2[128];
  h1::head_writer big{b2};
  CHECK(big.status(204).content_length(UINT64_MAX).finish() ==
        "HTTP/1.1 204 No Content\r\nContent-Length: 18446744073709551615\r\n\r\n");
  char b3[128];
  h1::head_writer zero{b3};
  CHECK(zero.status(304).content_length(0).line(h1::transfer_encoding_chunked).date("").finish() ==
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST_CASE("http1 writer: a head that does not fit, or a bad status, gives nothing", "[http1][writer]") {
  char small[20];
  h1::head_writer w{small};
  CHECK(w.status(200).field("Content-Type", "text/plain").finish().empty());
  CHECK(w.failed());
  // Exactly full is fine; one byte short is not.
  const std::string_view want = "HTTP/1.1 200 OK\r\n\r\n";
  char exact[19];
  static_assert(sizeof exact == 19);
  h1::head_writer e{exact};
  CHECK(e.status(200).finish() == want);
  char short_by_one[18];
  h1::head_writer s{short_by_one};
  CHECK(s.status(200).finish().empty());
  char b[64];
  h1::head_writer bad{b};
  CHECK(bad.status(600).finish().empty());
  // Numbers that do not fit stop the writer too.
  char n[20];
  h1::head_writer num{n};
  CHECK(num.content_length(123456789).finish().empty());
}

TEST_CASE("http1 writer: keep-alive lines follow the request's version", "[http1][writer]") {
  CHECK(h1::connection_line(true, 1).empty());
  CHECK(h1::connection_line(false, 1) == "Connection: close\r\n");
  CHECK(h1::connection_line(true, 0) == "Connection: keep-alive\r\n");
  CHECK(h1::connection_line(false, 0).empty());
  CHECK(h1::continue_response == "HTTP/1.1 100 Continue\r\n\r\n");
}

TEST_CASE("http1 writer: which responses carry content and Content-Length", "[http1][writer]") {
  CHECK(h1::response_has_content(200, false));
  CHECK_FALSE(h1::response_has_content(200, true));  // HEAD
  CHECK_FALSE(h1::response_has_content(101, false));
  CHECK_FALSE(h1::response_has_content(204, false));
  CHECK_FALSE(h1::response_has_content(304, false));
  CHECK(h1::response_has_content(404, false));
  CHECK(h1::content_length_allowed(200));
  CHECK(h1::content_length_allowed(304));
  CHECK_FALSE(h1::content_length_allowed(204));
  CHECK_FALSE(h1::content_length_allowed(100));
}

TEST_CASE("http1 writer: chunk framing in lower-case hex", "[http1][writer]") {
  STATIC_REQUIRE(h1::chunk_header(26).view() == "1a\r\n"sv);
  CHECK(h1::chunk_header(1).view() == "1\r\n");
  CHECK(h1::chunk_header(0).view() == "0\r\n");
  CHECK(h1::chunk_header(4096).view() == "1000\r\n");
  CHECK(h1::chunk_header(UINT64_MAX).view() == "ffffffffffffffff\r\n");
  CHECK(h1::chunk_header(255, true).view() == "\r\nff\r\n");
  CHECK(h1::chunk_header(UINT64_MAX, true).view() == "\r\nffffffffffffffff\r\n");
  CHECK(h1::chunk_end == "\r\n");
  CHECK(h1::last_chunk == "0\r\n\r\n");
  CHECK(h1::end_of_chunks == "\r\n0\r\n\r\n");
}

TEST_CASE("http1 writer: an iovec list survives short writes", "[http1][writer]") {
  h1::iovec_list<4> io;
  const std::string head = "HEAD", body = "body!", tail = "xy";
  CHECK(io.push(head));
  CHECK(io.push(""));  // skipped
  CHECK(io.push(body));
  CHECK(io.push(tail));
  CHECK(io.count() == 3);
  CHECK(io.bytes() == 11);
  auto rest = [&io] {
    std::string s;
    for (int i = 0; i < io.count(); ++i) s.append(static_cast<const char*>(io.data()[i].iov_base), io.data()[i].iov_len);
    return s;
  };
  io.consume(2);
  CHECK(rest() == "ADbody!xy");
  CHECK(io.count() == 3);
  io.consume(2);  // exactly the first range
  CHECK(rest() == "body!xy");
  CHECK(io.count() == 2);
  io.consume(6);
  CHECK(rest() == "y");
  CHECK(io.bytes() == 1);
  io.consume(1);
  CHECK(io.empty());
  CHECK(io.count() == 0);
  io.clear();
  h1::iovec_list<1> one;
  CHECK(one.push("a"));
  CHECK_FALSE(one.push("b"));
}

TEST_CASE("http1 writer: the Date comes from the date cache evhttp uses", "[http1][writer][date]") {
  event_base* base = event_base_new();
  REQUIRE(base != nullptr);
  tether::detail::date_cache dates;
  const auto view = dates.view(base);
  CHECK(view.size() == 29);
  CHECK(view.substr(25) == " GMT");
  CHECK(std::string_view(dates.now(base)) == view);  // the same text both engines stamp
  char buf[128];
  h1::head_writer w{buf};
  CHECK(w.status(200).date(view).finish() == "HTTP/1.1 200 OK\r\nDate: " + std::string(view) + "\r\n\r\n");
  event_base_free(base);
}
