#include <tether/fixed_string.hpp>

#include <catch2/catch.hpp>

#include <string_view>
#include <type_traits>

namespace {
template <tether::fixed_string S>
struct tagged {
  static constexpr auto value = S;
};
}  // namespace

TEST_CASE("fixed_string: takes its size from a literal and stays NUL-terminated", "[fixed_string]") {
  constexpr tether::fixed_string s = "/items";
  STATIC_REQUIRE(std::is_same_v<decltype(s), const tether::fixed_string<6>>);
  STATIC_REQUIRE(s.size() == 6);
  STATIC_REQUIRE(s.view() == "/items");
  STATIC_REQUIRE(s.c_str()[6] == '\0');
  STATIC_REQUIRE(std::string_view(s) == "/items");
  STATIC_REQUIRE(tether::fixed_string("").empty());
}

TEST_CASE("fixed_string: is a template argument; equal strings name one specialisation", "[fixed_string]") {
  STATIC_REQUIRE(std::is_same_v<tagged<"/a">, tagged<"/a">>);
  STATIC_REQUIRE_FALSE(std::is_same_v<tagged<"/a">, tagged<"/b">>);
  STATIC_REQUIRE(tagged<"/abc">::value.view() == "/abc");
}

TEST_CASE("fixed_string: compares by content, across sizes", "[fixed_string]") {
  STATIC_REQUIRE(tether::fixed_string("/a") == tether::fixed_string("/a"));
  STATIC_REQUIRE_FALSE(tether::fixed_string("/a") == tether::fixed_string("/ab"));
  STATIC_REQUIRE(tether::fixed_string("/a") != tether::fixed_string("/b"));
}

TEST_CASE("fixed_string: is built from a constant string_view of known size", "[fixed_string]") {
  constexpr std::string_view source = "/from/view";
  constexpr auto s = tether::fixed_string<source.size()>(source);
  STATIC_REQUIRE(s.view() == source);
  STATIC_REQUIRE(s.c_str()[source.size()] == '\0');
}
