// The HTTP/1.1 request parser against RFC 9112 / 9110's grammar and examples, the
// request-smuggling shapes of docs/http1-parser.md and issue 8, at every split point.
#include <tether/http1/request_parser.hpp>

#include "../support/http1_oracle.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using tether::http1::parse_error;
using tether::http1::parse_event;
using tether::http1::parser_limits;
using tether::http1::request_parser;

namespace {

bool same(const oracle::outcome& a, const oracle::outcome& b) {
  return a.messages == b.messages && a.error == b.error && a.tether_error == b.tether_error && a.closed == b.closed;
}

// Parses `in` whole, then split at every single point, then one byte per read; every
// way must give the same messages, bodies and error. Returns the whole-input outcome.
oracle::outcome parse_every_split(std::string_view in, const parser_limits& limits = {}) {
  const auto whole = oracle::run_tether(in, {}, limits);
  for (std::size_t k = 1; k < in.size(); ++k) {
    const auto split = oracle::run_tether(in, {k}, limits);
    INFO("split at " << k << " of " << oracle::printable(in));
    INFO("whole: " << oracle::describe(whole));
    INFO("split: " << oracle::describe(split));
    REQUIRE(same(split, whole));
  }
  std::vector<std::size_t> bytes;
  for (std::size_t k = 1; k < in.size(); ++k) bytes.push_back(k);
  const auto one_by_one = oracle::run_tether(in, bytes, limits);
  INFO("byte by byte: " << oracle::printable(in));
  INFO("whole: " << oracle::describe(whole));
  INFO("bytes: " << oracle::describe(one_by_one));
  REQUIRE(same(one_by_one, whole));
  return whole;
}

parse_error error_of(std::string_view in, const parser_limits& limits = {}) {
  const auto o = parse_every_split(in, limits);
  return o.tether_error;
}

struct rejected {
  const char* what;
  std::string input;
  parse_error error;
};

}  // namespace

TEST_CASE("http1 parser: RFC 9112 request-target forms are parsed and classified", "[http1][parser]") {
  using tether::http1::target_form;
  struct form_case {
    std::string in;
    std::string target;
    target_form form;
  };
  const form_case cases[] = {
      {"GET /where?q=now HTTP/1.1\r\nHost: www.example.org\r\n\r\n", "/where?q=now", target_form::origin},
      {"GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\nHost: www.example.org\r\n\r\n",
       "http://www.example.org/pub/WWW/TheProject.html", target_form::absolute},
      {"CONNECT www.example.com:80 HTTP/1.1\r\nHost: www.example.com:80\r\n\r\n", "www.example.com:80",
       target_form::authority},
      {"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n", "[2001:db8::1]:443",
       target_form::authority},
      {"OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n", "*", target_form::asterisk},
  };
  for (const auto& c : cases) {
    INFO(c.in);
    request_parser p;
    const auto step = p.parse(c.in);
    REQUIRE(step.event == parse_event::head);
    CHECK(step.consumed == c.in.size());
    const auto v = p.view(c.in.data());
    CHECK(v.target() == c.target);
    CHECK(p.head().form == c.form);
    CHECK(parse_every_split(c.in).messages.size() == 1);
  }
}

TEST_CASE("http1 parser: RFC 9110's example request gives every field as a view", "[http1][parser]") {
  const std::string in =
      "GET /hello.txt HTTP/1.1\r\n"
      "User-Agent: curl/7.64.1\r\n"
      "Host: www.example.com\r\n"
      "Accept-Language: en, mi\r\n"
      "\r\n";
  request_parser p;
  const auto step = p.parse(in);
  REQUIRE(step.event == parse_event::head);
  CHECK(step.consumed == in.size());
  const auto& h = p.head();
  CHECK(h.size == in.size());
  CHECK(h.method() == tether::method::get);
  CHECK(h.version_minor == 1);
  CHECK(h.keep_alive);
  CHECK(h.framing == tether::http1::body_framing::none);
  CHECK_FALSE(h.has_body());
  const auto v = p.view(in.data());
  CHECK(v.method_text() == "GET");
  CHECK(v.target() == "/hello.txt");
  REQUIRE(v.field_count() == 3);
  CHECK(v.field(0).name == "User-Agent");
  CHECK(v.field(0).value == "curl/7.64.1");
  CHECK(v.host() == "www.example.com");
  CHECK(v.find("accept-language") == "en, mi");
  CHECK_FALSE(v.find("Accept").has_value());
  // The views point into the caller's buffer: nothing was copied.
  CHECK(v.field(2).value.data() == in.data() + in.find("en, mi"));
  // No body: the next step ends the message without consuming anything.
  const auto end = p.parse(in.data() + in.size(), 0);
  CHECK(end.event == parse_event::end);
  CHECK(end.consumed == 0);
  // head() survives the end step until the next call.
  CHECK(p.view(in.data()).target() == "/hello.txt");
}

TEST_CASE("http1 parser: field values lose surrounding whitespace and keep obs-text", "[http1][parser]") {
  const std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t v a l \t \r\nX-Empty:\r\nX-Sp:   \r\nX-Obs: caf\xc3\xa9\r\n\r\n";
  const auto o = parse_every_split(in);
  REQUIRE(o.messages.size() == 1);
  const auto& f = o.messages[0].fields;
  REQUIRE(f.size() == 5);
  CHECK(f[1].second == "v a l");
  CHECK(f[2].second.empty());
  CHECK(f[3].second.empty());
  CHECK(f[4].second == "caf\xc3\xa9");
}

TEST_CASE("http1 parser: Content-Length bodies arrive as spans, whatever the split", "[http1][parser]") {
  const std::string in = "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world";
  const auto o = parse_every_split(in);
  REQUIRE(o.messages.size() == 1);
  CHECK(o.messages[0].body == "hello world");
  CHECK(o.messages[0].complete);

  request_parser p;
  auto step = p.parse(in);
  REQUIRE(step.event == parse_event::head);
  CHECK(p.head().framing == tether::http1::body_framing::content_length);
  CHECK(p.head().content_length == 11);
  const std::string_view body = std::string_view(in).substr(step.consumed);
  step = p.parse(body);
  CHECK(step.event == parse_event::body);
  CHECK(step.data_offset == 0);
  CHECK(step.data_size == 11);
  CHECK(step.consumed == 11);
  CHECK(p.parse(body.substr(11)).event == parse_event::end);

  CHECK(parse_every_split("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").messages.at(0).complete);
}

TEST_CASE("http1 parser: RFC 9112's chunked body, with extensions and trailers, is decoded", "[http1][parser]") {
  const std::string in =
      "POST /upload HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "Transfer-Encoding: chunked\r\n"
      "\r\n"
      "4\r\nWiki\r\n"
      "5;name=value;flag\r\npedia\r\n"
      "E ; q=\"quoted \\\" string\" ; x = y\r\n in\r\n\r\nchunks.\r\n"
      "000\r\n"
      "Expires: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
      "Content-Length: 99\r\n"
      "\r\n";
  const auto o = parse_every_split(in);
  REQUIRE(o.messages.size() == 1);
  CHECK(o.messages[0].body == "Wikipedia in\r\n\r\nchunks.");
  CHECK(o.messages[0].complete);
  CHECK(o.messages[0].keep_alive);
  // The trailer's Content-Length is parsed and discarded: it frames nothing.
  REQUIRE(o.messages[0].fields.size() == 2);

  request_parser p;
  const auto head = p.parse(in);
  REQUIRE(head.event == parse_event::head);
  CHECK(p.head().framing == tether::http1::body_framing::chunked);
  CHECK(p.in_body());
  std::string_view rest = std::string_view(in).substr(head.consumed);
  auto step = p.parse(rest);
  CHECK(step.event == parse_event::body);
  CHECK(rest.substr(step.data_offset, step.data_size) == "Wiki");
  CHECK(step.consumed == 7);
}

TEST_CASE("http1 parser: pipelined requests stop at each message boundary", "[http1][parser]") {
  const std::string a = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string b = "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
  const std::string c = "POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
  const std::string d = "GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  const std::string after = "GET /5 HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string in = a + b + c + d + after;
  const auto o = parse_every_split(in);
  REQUIRE(o.messages.size() == 4);
  CHECK(o.messages[0].target == "/1");
  CHECK(o.messages[1].body == "abc");
  CHECK(o.messages[2].body == "x");
  CHECK(o.messages[3].target == "/4");
  CHECK_FALSE(o.messages[3].keep_alive);
  CHECK(o.closed);  // nothing after `Connection: close` is parsed (RFC 9112 9.6)

  // Bytes consumed per step add up to each request.
  request_parser p;
  std::string_view rest = in;
  std::size_t total = 0;
  std::vector<std::size_t> ends;
  for (int i = 0; i < 100; ++i) {
    const auto step = p.parse(rest);
    if (step.event == parse_event::closed || step.event == parse_event::need_more) break;
    REQUIRE(step.event != parse_event::error);
    total += step.consumed;
    rest.remove_prefix(step.consumed);
    if (step.event == parse_event::end) ends.push_back(total);
  }
  CHECK(ends == std::vector<std::size_t>{a.size(), a.size() + b.size(), a.size() + b.size() + c.size(),
                                         a.size() + b.size() + c.size() + d.size()});
  CHECK(p.parse(rest).event == parse_event::closed);
}

TEST_CASE("http1 parser: keep-alive follows the version and Connection's tokens", "[http1][parser]") {
  struct ka {
    std::string in;
    bool keep_alive;
  };
  const ka cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: te,close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n", false},
  };
  for (const auto& c : cases) {
    INFO(oracle::printable(c.in));
    const auto o = parse_every_split(c.in);
    REQUIRE(o.messages.size() == 1);
    CHECK(o.messages[0].keep_alive == c.keep_alive);
  }
  request_parser p;
  REQUIRE(p.parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"s).event ==
          parse_event::head);
  CHECK(p.head().connection_upgrade);
}

TEST_CASE("http1 parser: Expect: 100-continue is reported for HTTP/1.1 only", "[http1][parser]") {
  request_parser p;
  REQUIRE(p.parse("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n"s).event ==
          parse_event::head);
  CHECK(p.head().expect_continue);
  CHECK_FALSE(p.head().expect_unsupported);
  request_parser q;
  REQUIRE(q.parse("PUT /f HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"s).event ==
          parse_event::head);
  CHECK_FALSE(q.head().expect_continue);  // RFC 9110 10.1.1: ignored in HTTP/1.0
  request_parser r;
  REQUIRE(r.parse("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"s).event == parse_event::head);
  CHECK(r.head().expect_unsupported);
}

TEST_CASE("http1 parser: HEAD, unknown methods and versions 1.0 to 1.9", "[http1][parser]") {
  request_parser p;
  REQUIRE(p.parse("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"s).event == parse_event::head);
  CHECK(p.head().is_head());
  CHECK(p.head().method() == tether::method::head);

  request_parser q;
  const std::string ext = "PROPFIND /x HTTP/1.1\r\nHost: a\r\n\r\n";
  REQUIRE(q.parse(ext).event == parse_event::head);
  CHECK_FALSE(q.head().method().has_value());  // a valid token tether has no name for
  CHECK(q.view(ext.data()).method_text() == "PROPFIND");
  request_parser lower;
  REQUIRE(lower.parse("get / HTTP/1.1\r\nHost: a\r\n\r\n"s).event == parse_event::head);
  CHECK_FALSE(lower.head().method().has_value());  // methods are case-sensitive

  // RFC 9110 2.5: a higher minor version is processed as the highest one implemented.
  request_parser v;
  REQUIRE(v.parse("GET / HTTP/1.7\r\nHost: a\r\n\r\n"s).event == parse_event::head);
  CHECK(v.head().version_minor == 1);
  CHECK(v.head().declared_minor == 7);
  CHECK(v.head().keep_alive);
  request_parser v0;
  REQUIRE(v0.parse("GET / HTTP/1.0\r\n\r\n"s).event == parse_event::head);  // no Host needed
  CHECK(v0.head().version_minor == 0);
  CHECK(v0.head().host_field == -1);
}

TEST_CASE("http1 parser: one empty line before the request line is skipped, not two", "[http1][parser]") {
  const auto o = parse_every_split("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(o.messages.size() == 1);
  CHECK(o.messages[0].target == "/");
  // Also between pipelined requests (a client's stray CRLF after a body).
  const auto two = parse_every_split(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(two.messages.size() == 2);
  CHECK(two.messages[1].target == "/2");
  CHECK(error_of("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") == parse_error::bad_request_line);
}

TEST_CASE("http1 parser: every smuggling and malformed shape is rejected with its status", "[http1][parser]") {
  const std::string h = "Host: a\r\n";
  const std::string post = "POST / HTTP/1.1\r\n" + h;
  const std::string chunked = post + "Transfer-Encoding: chunked\r\n\r\n";
  const rejected cases[] = {
      // Issue 8, defect 8: what evhttp accepts.
      {"two different Content-Lengths", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
       parse_error::duplicate_content_length},
      {"Content-Length with Transfer-Encoding", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       parse_error::content_length_with_transfer_encoding},
      {"Transfer-Encoding with Content-Length", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
       parse_error::content_length_with_transfer_encoding},
      {"HTTP/1.99999999999999999999", "GET / HTTP/1.99999999999999999999\r\n" + h + "\r\n", parse_error::bad_version},
      {"HTTP/0.0", "GET / HTTP/0.0\r\n" + h + "\r\n", parse_error::unsupported_version},
      {"NUL in a header value", "GET / HTTP/1.1\r\n" + h + "X: a\0b\r\n\r\n"s, parse_error::control_character},
      // Content-Length (RFC 9112 6.2, 6.3).
      {"identical duplicate Content-Length", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
       parse_error::duplicate_content_length},
      {"Content-Length list", post + "Content-Length: 5, 5\r\n\r\nhello", parse_error::bad_content_length},
      {"Content-Length with a sign", post + "Content-Length: +5\r\n\r\nhello", parse_error::bad_content_length},
      {"negative Content-Length", post + "Content-Length: -1\r\n\r\n", parse_error::bad_content_length},
      {"hex Content-Length", post + "Content-Length: 0x5\r\n\r\nhello", parse_error::bad_content_length},
      {"Content-Length with inner space", post + "Content-Length: 1 0\r\n\r\n", parse_error::bad_content_length},
      {"empty Content-Length", post + "Content-Length:\r\n\r\n", parse_error::bad_content_length},
      {"Content-Length over 64 bits", post + "Content-Length: 18446744073709551616\r\n\r\n",
       parse_error::bad_content_length},
      {"Content-Length above the body limit", post + "Content-Length: 9223372036854775807\r\n\r\n",
       parse_error::body_too_large},
      // Transfer-Encoding (RFC 9112 6.1, 6.3).
      {"TE not ending in chunked", post + "Transfer-Encoding: gzip\r\n\r\n", parse_error::chunked_not_final},
      {"TE chunked, gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n", parse_error::chunked_not_final},
      {"TE chunked twice", post + "Transfer-Encoding: chunked, chunked\r\n\r\n", parse_error::chunked_not_final},
      {"TE empty element", post + "Transfer-Encoding: , chunked\r\n\r\n", parse_error::chunked_not_final},
      {"TE chunked with a parameter", post + "Transfer-Encoding: chunked;a=b\r\n\r\n", parse_error::chunked_not_final},
      {"TE xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n", parse_error::chunked_not_final},
      {"TE empty", post + "Transfer-Encoding:\r\n\r\n", parse_error::chunked_not_final},
      {"TE gzip, chunked (501)", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       parse_error::unsupported_transfer_coding},
      {"second TE line", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       parse_error::duplicate_transfer_encoding},
      {"TE split over two lines", post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
       parse_error::duplicate_transfer_encoding},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       parse_error::transfer_encoding_in_http10},
      {"TE obfuscated by obs-fold", post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", parse_error::obs_fold},
      {"TE with a space before the colon", post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
       parse_error::whitespace_before_colon},
      {"CL obfuscated by a leading space (CVE-2024-27982)", "POST / HTTP/1.1\r\n Content-Length: 5\r\n" + h + "\r\n",
       parse_error::obs_fold},
      // Chunked bodies (RFC 9112 7.1).
      {"chunk size of 17 hex digits", chunked + "00000000000000005\r\nhello\r\n0\r\n\r\n", parse_error::chunk_size_overflow},
      {"chunk size past the body limit", chunked + "ffffffffffffffff\r\n", parse_error::body_too_large},
      {"chunk size not hex", chunked + "g\r\n", parse_error::bad_chunk_size},
      {"chunk size with a sign", chunked + "+5\r\nhello\r\n0\r\n\r\n", parse_error::bad_chunk_size},
      {"chunk size followed by whitespace only", chunked + "5 \r\nhello\r\n0\r\n\r\n", parse_error::bad_chunk_extension},
      {"empty chunk size", chunked + "\r\n", parse_error::bad_chunk_size},
      {"chunk line ends in a bare LF", chunked + "5\nhello\r\n0\r\n\r\n", parse_error::bare_lf},
      {"chunk line with a bare CR", chunked + "5\rhello\r\n0\r\n\r\n", parse_error::bare_cr},
      {"chunk data not followed by CRLF", chunked + "5\r\nhelloXX0\r\n\r\n", parse_error::bad_chunk_end},
      {"chunk data followed by LF only", chunked + "5\r\nhello\n0\r\n\r\n", parse_error::bad_chunk_end},
      {"chunk data followed by CR only", chunked + "5\r\nhello\r0\r\n\r\n", parse_error::bad_chunk_end},
      {"chunk data followed by X LF", chunked + "5\r\nhelloX\n0\r\n\r\n", parse_error::bad_chunk_end},
      {"chunk data followed by LF LF", chunked + "5\r\nhello\n\n0\r\n\r\n", parse_error::bad_chunk_end},
      {"last chunk followed by a bare LF", chunked + "0\r\n\n", parse_error::bare_lf},
      {"chunk extension name missing", chunked + "5;\r\nhello\r\n0\r\n\r\n", parse_error::bad_chunk_extension},
      {"chunk extension with '=' and no value", chunked + "5;a=\r\nhello\r\n0\r\n\r\n", parse_error::bad_chunk_extension},
      {"chunk extension with a control", chunked + "5;a\x01\r\nhello\r\n0\r\n\r\n", parse_error::bad_chunk_extension},
      {"chunk extension with a bare LF", chunked + "5;a=b\nhello\r\n0\r\n\r\n", parse_error::bare_lf},
      {"chunk extension quoted and unterminated", chunked + "5;a=\"b\r\nhello\r\n0\r\n\r\n", parse_error::bad_chunk_extension},
      {"chunk extension trailing whitespace", chunked + "5;a=b \r\nhello\r\n0\r\n\r\n", parse_error::bad_chunk_extension},
      {"chunk extension too long", chunked + "5;a=" + std::string(5000, 'b') + "\r\nhello\r\n0\r\n\r\n",
       parse_error::chunk_extension_too_long},
      {"trailer with obs-fold", chunked + "0\r\nA: b\r\n c\r\n\r\n", parse_error::obs_fold},
      {"trailer with a space before the colon", chunked + "0\r\nA : b\r\n\r\n", parse_error::whitespace_before_colon},
      {"trailer with NUL", chunked + "0\r\nA: b\0c\r\n\r\n"s, parse_error::control_character},
      {"trailer without a colon", chunked + "0\r\nAb\r\n\r\n", parse_error::bad_trailer},
      {"trailer ending in a bare LF", chunked + "0\r\nA: b\n\r\n", parse_error::bare_lf},
      {"trailer section too large", chunked + "0\r\nA: " + std::string(9000, 'b') + "\r\n\r\n",
       parse_error::trailer_too_large},
      // Line structure (RFC 9112 2.2).
      {"bare LF in the head", "GET / HTTP/1.1\n" + h + "\r\n", parse_error::bare_lf},
      {"bare LF ending the head", "GET / HTTP/1.1\r\n" + h + "\n", parse_error::bare_lf},
      {"bare CR in the head", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", parse_error::bare_cr},
      {"CR CR LF", "GET / HTTP/1.1\r\r\n" + h + "\r\n", parse_error::bare_cr},
      {"DEL in a value", "GET / HTTP/1.1\r\n" + h + "X: a\x7f\r\n\r\n", parse_error::control_character},
      {"control in a value", "GET / HTTP/1.1\r\n" + h + "X: a\x01\r\n\r\n", parse_error::control_character},
      {"ESC in a target", "GET /\x1b HTTP/1.1\r\n" + h + "\r\n", parse_error::control_character},
      // Field lines (RFC 9112 5).
      {"obs-fold", "GET / HTTP/1.1\r\n" + h + "X: a\r\n b\r\n\r\n", parse_error::obs_fold},
      {"obs-fold with HTAB", "GET / HTTP/1.1\r\n" + h + "X: a\r\n\tb\r\n\r\n", parse_error::obs_fold},
      {"whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", parse_error::obs_fold},
      {"space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", parse_error::whitespace_before_colon},
      {"tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", parse_error::whitespace_before_colon},
      {"empty field name", "GET / HTTP/1.1\r\n" + h + ": b\r\n\r\n", parse_error::bad_field_name},
      {"field name with a separator", "GET / HTTP/1.1\r\n" + h + "X(y): b\r\n\r\n", parse_error::bad_field_name},
      {"field line without a colon", "GET / HTTP/1.1\r\n" + h + "X\r\n\r\n", parse_error::bad_field_name},
      {"field name with obs-text", "GET / HTTP/1.1\r\n" + h + "X\xc3\xa9: b\r\n\r\n", parse_error::bad_field_name},
      // Host (RFC 9112 3.2).
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", parse_error::missing_host},
      {"two Host lines", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", parse_error::duplicate_host},
      {"two Host lines in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", parse_error::duplicate_host},
      {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", parse_error::bad_host},
      {"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", parse_error::bad_host},
      {"Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", parse_error::bad_host},
      {"Host with a bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", parse_error::bad_host},
      {"Host with two ports", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", parse_error::bad_host},
      {"Host with an unclosed IP-literal", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", parse_error::bad_host},
      {"Host as a list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", parse_error::bad_host},
      // The request line (RFC 9112 3).
      {"two spaces after the method", "GET  / HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_request_line},
      {"two spaces before the version", "GET /  HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_request_line},
      {"tab as separator", "GET\t/ HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_request_line},
      {"trailing space after the version", "GET / HTTP/1.1 \r\n" + h + "\r\n", parse_error::bad_version},
      {"leading space", " GET / HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_request_line},
      {"no version (HTTP/0.9)", "GET /\r\n\r\n", parse_error::bad_request_line},
      {"method only", "GET\r\n\r\n", parse_error::bad_request_line},
      {"method not a token", "G(T / HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_method},
      {"method with obs-text", "G\xc3\xa9T / HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_method},
      {"target with obs-text", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"target in no form", "GET index.html HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"asterisk for GET", "GET * HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"CONNECT in origin-form", "CONNECT / HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"CONNECT without a port", "CONNECT example.com HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"CONNECT with an empty port", "CONNECT example.com: HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"CONNECT to an IP-literal without a port", "CONNECT [::1] HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"CONNECT with userinfo", "CONNECT u@example.com:443 HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"CONNECT with a stray bracket", "CONNECT a]b:443 HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"absolute-form without an authority", "GET http:/x HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"absolute-form with userinfo", "GET http://u@a/ HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"absolute-form with an empty authority", "GET http:///x HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"a fragment in the target", "GET /a#b HTTP/1.1\r\n" + h + "\r\n", parse_error::bad_target},
      {"lower-case version", "GET / http/1.1\r\n" + h + "\r\n", parse_error::bad_version},
      {"HTTP/1.10", "GET / HTTP/1.10\r\n" + h + "\r\n", parse_error::bad_version},
      {"HTTP/11", "GET / HTTP/11\r\n" + h + "\r\n", parse_error::bad_version},
      {"HTTP/1.x", "GET / HTTP/1.x\r\n" + h + "\r\n", parse_error::bad_version},
      {"HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", parse_error::unsupported_version},
      {"HTTP/0.9 named", "GET / HTTP/0.9\r\n" + h + "\r\n", parse_error::unsupported_version},
      {"HTTP/9.9", "GET / HTTP/9.9\r\n" + h + "\r\n", parse_error::unsupported_version},
  };
  for (const auto& c : cases) {
    INFO(c.what << ": " << oracle::printable(c.input));
    const auto e = error_of(c.input);
    CHECK(e == c.error);
    CHECK(tether::http1::status_of(e) == tether::http1::status_of(c.error));
  }
}

TEST_CASE("http1 parser: each error maps to its status and a message", "[http1][parser]") {
  using tether::http1::status_of;
  CHECK(status_of(parse_error::none) == 0);
  CHECK(status_of(parse_error::bad_request_line) == 400);
  CHECK(status_of(parse_error::duplicate_content_length) == 400);
  CHECK(status_of(parse_error::unsupported_version) == 505);
  CHECK(status_of(parse_error::request_line_too_long) == 414);
  CHECK(status_of(parse_error::head_too_large) == 431);
  CHECK(status_of(parse_error::too_many_fields) == 431);
  CHECK(status_of(parse_error::trailer_too_large) == 431);
  CHECK(status_of(parse_error::body_too_large) == 413);
  CHECK(status_of(parse_error::unsupported_transfer_coding) == 501);
  for (int e = 1; e <= static_cast<int>(parse_error::trailer_too_large); ++e) {
    const auto pe = static_cast<parse_error>(e);
    CHECK(tether::http1::message_of(pe) != "unknown parse error");
    const std::error_code ec = pe;
    CHECK(ec.category().name() == std::string("tether.http1"));
    CHECK(ec.message() == tether::http1::message_of(pe));
  }
}

TEST_CASE("http1 parser: limits answer 414, 431 and 413 at their exact bounds", "[http1][parser]") {
  parser_limits lim;
  lim.max_head_bytes = 64;
  lim.max_fields = 3;
  lim.max_body_bytes = 10;
  lim.max_chunk_ext_bytes = 8;

  // A head of exactly 64 bytes passes; 65 does not.
  std::string head64 = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(64 - 32, 'v') + "\r\n\r\n";
  REQUIRE(head64.size() == 64);
  CHECK(parse_every_split(head64, lim).messages.size() == 1);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(33, 'v') + "\r\n\r\n", lim) ==
        parse_error::head_too_large);
  CHECK(error_of("GET /" + std::string(100, 'p') + " HTTP/1.1\r\n\r\n", lim) == parse_error::request_line_too_long);
  // Found while the head is still arriving: no need to wait for its end.
  request_parser early(lim);
  const std::string endless = "GET / HTTP/1.1\r\nX: " + std::string(200, 'v');
  CHECK(early.parse(endless).event == parse_event::error);
  CHECK(early.error() == parse_error::head_too_large);

  CHECK(parse_every_split("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", lim).messages.size() == 1);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", lim) == parse_error::too_many_fields);

  CHECK(parse_every_split("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", lim)
            .messages.at(0)
            .complete);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", lim) == parse_error::body_too_large);
  const std::string te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  lim.max_head_bytes = 200;
  CHECK(parse_every_split(te + "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", lim).messages.at(0).body == "0123456789");
  CHECK(error_of(te + "5\r\n01234\r\n6\r\n", lim) == parse_error::body_too_large);
  // Extension bytes count across the message: 8 in all.
  CHECK(parse_every_split(te + "1;abc\r\nx\r\n1;d=e\r\ny\r\n0\r\n\r\n", lim).messages.at(0).body == "xy");
  CHECK(error_of(te + "1;abc\r\nx\r\n1;d=ef\r\ny\r\n0\r\n\r\n", lim) == parse_error::chunk_extension_too_long);

  // Unlimited body.
  lim.max_body_bytes = parser_limits::unlimited;
  request_parser big(lim);
  REQUIRE(big.parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n"s).event ==
          parse_event::head);
  CHECK(big.head().content_length == 18446744073709551615ull);
  // The parser cannot hold more fields than it has room for, whatever the limits say.
  lim.max_fields = 1000;
  tether::http1::basic_request_parser<2> small(lim);
  CHECK(small.limits().max_fields == 2);
  CHECK(small.parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"s).event == parse_event::error);
  CHECK(small.error() == parse_error::too_many_fields);
}

TEST_CASE("http1 parser: after an error or a close it parses nothing more until reset", "[http1][parser]") {
  request_parser p;
  CHECK(p.parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n"s).event == parse_event::error);
  CHECK(p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n"s).event == parse_event::error);
  CHECK(p.error() == parse_error::whitespace_before_colon);
  p.reset();
  CHECK(p.error() == parse_error::none);
  const std::string ok = "GET / HTTP/1.0\r\n\r\n";
  CHECK(p.parse(ok).event == parse_event::head);
  CHECK(p.parse(ok.data(), 0).event == parse_event::end);
  CHECK(p.parse(ok).event == parse_event::closed);  // HTTP/1.0 without keep-alive
}

TEST_CASE("http1 parser: a head is validated line by line while it arrives", "[http1][parser]") {
  // An error in the request line is reported before the head is complete.
  request_parser p;
  CHECK(p.parse("GET  / HTTP/1.1\r\nHost: a\r\n"s).event == parse_event::error);
  request_parser q;
  CHECK(q.parse("GET / HTTP/1.1\r\nHost: a\r\nX: a\0"s).event == parse_event::error);
  CHECK(q.error() == parse_error::control_character);
  CHECK(q.error_offset() == 29);
  // Incomplete input consumes nothing and asks for more.
  request_parser r;
  const auto step = r.parse("GET / HTTP/1.1\r\nHost: a\r\n\r"s);
  CHECK(step.event == parse_event::need_more);
  CHECK(step.consumed == 0);
}
