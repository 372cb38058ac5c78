// Tests of tether/uri.hpp: percent-encoding, query strings and URIs, hostile input included.
#include <tether/uri.hpp>

#include <tether/client.hpp>

#include <catch2/catch.hpp>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using namespace std::string_view_literals;

TEST_CASE("percent_decode: decodes escapes, keeps other bytes, refuses malformed escapes", "[uri]") {
  CHECK(*tether::percent_decode("a%20b%2Fc") == "a b/c");
  CHECK(*tether::percent_decode("%41%62%7e") == "Ab~");
  CHECK(*tether::percent_decode("a+b") == "a+b");
  CHECK(*tether::percent_decode("a+b", true) == "a b");
  CHECK(*tether::percent_decode("") == "");
  CHECK(*tether::percent_decode("%00") == "\0"s);
  CHECK(*tether::percent_decode("\xff\r\n") == "\xff\r\n");
  for (std::string_view bad : {"%"sv, "%4"sv, "abc%"sv, "%G1"sv, "%1G"sv, "%%41"sv, "a%2"sv, "%\0\0"sv})
    CHECK(tether::percent_decode(bad).error() == tether::errc::invalid_argument);
}

TEST_CASE("percent_encode: encodes all but unreserved bytes, as evhttp_uriencode does", "[uri]") {
  CHECK(tether::percent_encode("a b/é~") == "a%20b%2F%C3%A9~");
  CHECK(tether::percent_encode("a b", true) == "a+b");
  std::string every;
  for (int c = 0; c < 256; ++c) every.push_back(static_cast<char>(c));
  const std::string ours = tether::percent_encode(every);
  // libevent stops at a NUL when given a length, so compare byte by byte.
  for (int c = 1; c < 256; ++c) {
    const char one[2] = {static_cast<char>(c), 0};
    char* theirs = evhttp_uriencode(one, 1, 0);
    REQUIRE(theirs);
    CHECK(tether::percent_encode(std::string_view(one, 1)) == theirs);
    std::free(theirs);
  }
  CHECK(*tether::percent_decode(ours) == every);  // round trip, NUL included
}

TEST_CASE("query_params: keeps duplicates in order, decodes names and values", "[uri][query]") {
  auto q = tether::parse_query("a=1&b=x%20y+z&a=3&c%5B%5D=%26");
  REQUIRE(q);
  REQUIRE(q->size() == 4);
  CHECK(q->find("a") == "1");
  CHECK(q->find("b") == "x y z");
  CHECK(q->find("c[]") == "&");
  CHECK(q->count("a") == 2);
  CHECK(q->find_all("a") == std::vector<std::string_view>{"1", "3"});
  CHECK_FALSE(q->contains("z"));
  CHECK(q->find("A") == std::nullopt);  // names compare exactly

  std::vector<std::string> seen;
  for (auto [name, value] : *q) seen.push_back(std::string(name) + "=" + std::string(value));
  CHECK(seen == std::vector<std::string>{"a=1", "b=x y z", "a=3", "c[]=&"});
  CHECK((*q)[2].value == "3");
  CHECK(q->end() - q->begin() == 4);
}

TEST_CASE("query_params: parameters without '=', empty names and empty parts", "[uri][query]") {
  auto q = tether::parse_query("&&debug&=x&a==b&&");
  REQUIRE(q);
  REQUIRE(q->size() == 3);
  CHECK((*q)[0].name == "debug");
  CHECK((*q)[0].value == "");
  CHECK((*q)[1].name == "");
  CHECK((*q)[1].value == "x");
  CHECK((*q)[2].name == "a");
  CHECK((*q)[2].value == "=b");
  CHECK(tether::parse_query("")->empty());
  CHECK(tether::parse_query("&")->empty());
}

TEST_CASE("query_params: hostile input is refused or kept whole, never cut", "[uri][query]") {
  CHECK(tether::parse_query("a=%zz").error() == tether::errc::invalid_argument);
  CHECK(tether::parse_query("a=1&b=%").error() == tether::errc::invalid_argument);
  CHECK(tether::parse_query("%4=1").error() == tether::errc::invalid_argument);

  auto nul = tether::parse_query("k=a%00b&z=1");
  REQUIRE(nul);
  CHECK(nul->find("k") == "a\0b"sv);
  CHECK(nul->find("z") == "1");

  auto raw = tether::parse_query("\r\n=\x01\xff&x= ");
  REQUIRE(raw);
  CHECK(raw->find("\r\n") == "\x01\xff");
  CHECK(raw->find("x") == " ");

  std::string many;
  for (int i = 0; i < 100000; ++i) many += "p=" + std::to_string(i) + "&";
  auto big = tether::parse_query(many);
  REQUIRE(big);
  CHECK(big->size() == 100000);
  CHECK(big->find_all("p").back() == "99999");
}

TEST_CASE("query_params: copies own their text", "[uri][query]") {
  tether::query_params copy;
  {
    auto q = tether::parse_query("name=first&name=second");
    REQUIRE(q);
    copy = *q;
  }
  CHECK(copy.find_all("name") == std::vector<std::string_view>{"first", "second"});
}

TEST_CASE("query_params: agrees with evhttp_parse_query_str where that loses nothing", "[uri][query]") {
  const char* text = "a=1&b=x%20y+z&a=3&e=";
  evkeyvalq theirs;
  REQUIRE(evhttp_parse_query_str(text, &theirs) == 0);
  auto ours = tether::parse_query(text);
  REQUIRE(ours);
  std::size_t i = 0;
  for (evkeyval* kv = theirs.tqh_first; kv; kv = kv->next.tqe_next, ++i) {
    REQUIRE(i < ours->size());
    CHECK((*ours)[i].name == kv->key);
    CHECK((*ours)[i].value == kv->value);
  }
  CHECK(i == ours->size());
  evhttp_clear_headers(&theirs);

  // Where libevent loses data, tether does not: a value cut at %00, a name left encoded,
  // a whole query refused for one parameter without '='.
  REQUIRE(evhttp_parse_query_str("k=a%00b&n%20m=1", &theirs) == 0);
  CHECK(std::string_view(evhttp_find_header(&theirs, "k")) == "a");
  CHECK(evhttp_find_header(&theirs, "n%20m") != nullptr);
  evhttp_clear_headers(&theirs);
  CHECK(evhttp_parse_query_str("debug&a=1", &theirs) == -1);
  auto ok = tether::parse_query("k=a%00b&n%20m=1&debug");
  REQUIRE(ok);
  CHECK(ok->find("k") == "a\0b"sv);
  CHECK(ok->find("n m") == "1");
  CHECK(ok->contains("debug"));
}

TEST_CASE("uri: parses every part of an absolute URI", "[uri]") {
  auto u = tether::uri::parse("http://user:pw@[::1]:8080/a%20b/c?x=1&y=2#top");
  REQUIRE(u);
  CHECK(u->scheme() == "http");
  CHECK(u->userinfo() == "user:pw");
  CHECK(u->host() == "[::1]");
  CHECK(u->hostname() == "::1");
  CHECK(u->port() == 8080);
  CHECK(u->path() == "/a%20b/c");
  CHECK(u->query() == "x=1&y=2");
  CHECK(u->fragment() == "top");
  CHECK(u->request_target() == "/a%20b/c?x=1&y=2");
  CHECK(*tether::percent_decode(u->path()) == "/a b/c");
  CHECK(*u->to_string() == "http://user:pw@[::1]:8080/a%20b/c?x=1&y=2#top");
}

TEST_CASE("uri: absent and empty parts stay different", "[uri]") {
  auto rel = tether::uri::parse("/a?");
  REQUIRE(rel);
  CHECK_FALSE(rel->scheme());
  CHECK_FALSE(rel->host());
  CHECK_FALSE(rel->port());
  CHECK(rel->query() == "");
  CHECK_FALSE(rel->fragment());
  auto bare = tether::uri::parse("http://example.com");
  REQUIRE(bare);
  CHECK(bare->path() == "");
  CHECK(bare->request_target() == "/");
  CHECK_FALSE(bare->query());
  auto mail = tether::uri::parse("mailto:someone@example.com");
  REQUIRE(mail);
  CHECK(mail->scheme() == "mailto");
  CHECK(mail->path() == "someone@example.com");
  auto file = tether::uri::parse("file:///etc/hosts");
  REQUIRE(file);
  CHECK(file->host() == "");
}

TEST_CASE("uri: strict parsing refuses what RFC 3986 does not allow; nonconformant reads it", "[uri]") {
  for (std::string_view bad : {"http://h/a b"sv, "http://h/a\r\nHost: x"sv, "http://h:99999/"sv, "http://[::1/"sv,
                               "http://h/\xff"sv, "http://h/a#b#c"sv, "http://h/a\0b"sv, "http://us er@h/"sv,
                               "http://h:12a/"sv, "http://h:-1/"sv, "http://[zz::1]/"sv, "1http://h/"sv})
    CHECK(tether::uri::parse(bad).error() == tether::errc::invalid_uri);
  auto lax = tether::uri::parse("http://h/a b?q=<x>#f g", tether::uri_syntax::nonconformant);
  REQUIRE(lax);
  CHECK(lax->path() == "/a b");
  CHECK(lax->query() == "q=<x>");
  CHECK(lax->fragment() == "f g");
  // Nonconformant still checks the authority, and never accepts a NUL.
  CHECK(tether::uri::parse("http://h h/", tether::uri_syntax::nonconformant).error() == tether::errc::invalid_uri);
  CHECK(tether::uri::parse("/a\0b"sv, tether::uri_syntax::nonconformant).error() == tether::errc::invalid_uri);

  std::string long_path = "http://h/" + std::string(1 << 20, 'a');
  auto big = tether::uri::parse(long_path);
  REQUIRE(big);
  CHECK(big->path().size() == (1u << 20) + 1);
}

TEST_CASE("uri: setters check their part and build a URI", "[uri]") {
  tether::uri u;
  CHECK(u.path() == "");
  CHECK_FALSE(u.set_scheme("http"));
  CHECK_FALSE(u.set_host("example.com"));
  CHECK_FALSE(u.set_port(8080));
  CHECK_FALSE(u.set_path("/x/y"));
  CHECK_FALSE(u.set_query("a=1"));
  CHECK(*u.to_string() == "http://example.com:8080/x/y?a=1");

  CHECK(u.set_scheme("1http") == tether::errc::invalid_uri);
  CHECK(u.set_host("bad host") == tether::errc::invalid_uri);
  CHECK(u.set_host("[not-v6]") == tether::errc::invalid_uri);
  CHECK(u.set_path("/a b") == tether::errc::invalid_uri);
  CHECK(u.set_query("a\nb") == tether::errc::invalid_uri);
  CHECK(u.set_fragment("a#b") == tether::errc::invalid_uri);
  CHECK(u.set_path("/a\0b"sv) == tether::errc::invalid_uri);
  CHECK(*u.to_string() == "http://example.com:8080/x/y?a=1");  // unchanged by the failures

  CHECK_FALSE(u.set_port(std::nullopt));
  CHECK_FALSE(u.set_query(std::nullopt));
  CHECK_FALSE(u.set_fragment("sec"));
  CHECK(*u.to_string() == "http://example.com/x/y#sec");

  CHECK_FALSE(u.set_path("relative"));  // a valid path, but not after a host
  CHECK(u.to_string().error() == tether::errc::invalid_uri);

  tether::uri copy = *tether::uri::parse("http://h/p?q#f");
  tether::uri second = copy;
  CHECK_FALSE(copy.set_path("/other"));
  CHECK(*second.to_string() == "http://h/p?q#f");
  CHECK(*copy.to_string() == "http://h/other?q#f");
}

TEST_CASE("parse_http_url: host, port and request target of an http URL", "[uri][client]") {
  auto a = tether::parse_http_url("http://127.0.0.1:8080/a/b?c=d#frag");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 8080);
  CHECK(a->target == "/a/b?c=d");
  auto b = tether::parse_http_url("HTTP://[::1]");
  REQUIRE(b);
  CHECK(b->host == "::1");
  CHECK(b->port == 80);
  CHECK(b->target == "/");
  CHECK(tether::parse_http_url("https://example.com/").error() == tether::errc::unsupported_scheme);
  CHECK(tether::parse_http_url("ftp://example.com/").error() == tether::errc::unsupported_scheme);
  CHECK(tether::parse_http_url("/just/a/path").error() == tether::errc::invalid_uri);
  CHECK(tether::parse_http_url("http:///nohost").error() == tether::errc::invalid_uri);
  CHECK(tether::parse_http_url("http://h:0/").error() == tether::errc::invalid_uri);
  CHECK(tether::parse_http_url("http://h/a b").error() == tether::errc::invalid_uri);
  CHECK(tether::parse_http_url("not a url").error() == tether::errc::invalid_uri);
}
