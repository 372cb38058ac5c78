#include <tether/close_callback.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <type_traits>

TEST_CASE("close_function: stores a small callable in place and calls it", "[close_callback]") {
  int calls = 0;
  tether::close_function<> f = [&calls](const tether::close_event& e) {
    calls += e.reason == tether::close_reason::peer_reset ? 10 : 1;
  };
  REQUIRE(f);
  f(tether::close_event{tether::close_reason::peer_reset, true, "127.0.0.1", 1});
  CHECK(calls == 10);
  tether::close_function<> g = std::move(f);
  CHECK_FALSE(f);
  g(tether::close_event{tether::close_reason::completed, false, "", 0});
  CHECK(calls == 11);
}

TEST_CASE("close_function: destroys what it holds exactly once", "[close_callback]") {
  auto token = std::make_shared<int>(0);
  {
    tether::close_function<> f = [token](const tether::close_event&) {};
    CHECK(token.use_count() == 2);
    tether::close_function<> g = std::move(f);
    CHECK(token.use_count() == 2);
    g = tether::close_function<>{};
    CHECK(token.use_count() == 1);
  }
  CHECK(token.use_count() == 1);
}

TEST_CASE("close_callback: the concept accepts callables of close_event and rejects others", "[close_callback][concepts]") {
  auto good = [](const tether::close_event&) noexcept {};
  auto wrong_arg = [](int) {};
  STATIC_REQUIRE(tether::close_callback<decltype(good)>);
  STATIC_REQUIRE(tether::close_callback<tether::close_function<>>);
  STATIC_REQUIRE(tether::close_callback<tether::no_close_callback>);
  STATIC_REQUIRE_FALSE(tether::close_callback<decltype(wrong_arg)>);
  STATIC_REQUIRE(std::is_empty_v<decltype(good)>);
}
