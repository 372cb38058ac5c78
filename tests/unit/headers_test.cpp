#include <tether/headers.hpp>

#include <catch2/catch.hpp>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <string>
#include <vector>

namespace {
struct header_list {
  evkeyvalq q;
  header_list() {
    q.tqh_first = nullptr;
    q.tqh_last = &q.tqh_first;
  }
  ~header_list() { evhttp_clear_headers(&q); }
  tether::headers_ref ref() { return tether::headers_ref(&q); }
};
}  // namespace

TEST_CASE("headers: add, find (case-insensitive), remove, clear, iterate", "[headers]") {
  header_list l;
  auto h = l.ref();
  REQUIRE_FALSE(h.add("Content-Type", "text/plain"));
  REQUIRE_FALSE(h.add("Set-Cookie", "a=1"));
  REQUIRE_FALSE(h.add("Set-Cookie", "b=2"));
  CHECK(h.find("content-type") == "text/plain");
  CHECK(h.contains("SET-COOKIE"));
  CHECK(h.size() == 3);
  std::vector<std::string> names;
  for (auto f : h) names.emplace_back(f.name);
  CHECK(names == std::vector<std::string>{"Content-Type", "Set-Cookie", "Set-Cookie"});
  CHECK(h.remove("set-cookie"));
  CHECK(h.find("Set-Cookie") == "b=2");
  REQUIRE_FALSE(h.set("Set-Cookie", "c=3"));
  CHECK(h.find("Set-Cookie") == "c=3");
  CHECK(h.size() == 2);
  CHECK_FALSE(h.remove("X-Missing"));
  CHECK_FALSE(h.find("X-Missing"));
  h.clear();
  CHECK(h.empty());
}

TEST_CASE("headers: refuses names that are not tokens and values with CR or LF", "[headers]") {
  header_list l;
  auto h = l.ref();
  CHECK(h.add("", "v") == tether::errc::invalid_argument);
  CHECK(h.add("Bad Name", "v") == tether::errc::invalid_argument);
  CHECK(h.add("Bad:Name", "v") == tether::errc::invalid_argument);
  CHECK(h.add("X", "a\r\nInjected: 1") == tether::errc::invalid_argument);
  CHECK(h.add("X", "a\nb") == tether::errc::invalid_argument);
  CHECK(h.set("X", "a\rb") == tether::errc::invalid_argument);
  CHECK(h.empty());
  CHECK_FALSE(h.add("X-Token_~!#$%&'*+-.^`|", "tab\tand obs-text \xe9 are fine"));
}
