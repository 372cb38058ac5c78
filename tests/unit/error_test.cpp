#include <tether/error.hpp>

#include <catch2/catch.hpp>

#include <string>

TEST_CASE("errc: converts to std::error_code in the tether category with a readable message", "[error]") {
  const std::error_code ec = tether::errc::peer_gone;
  CHECK(ec.category().name() == std::string("tether"));
  CHECK(ec.message().find("hung up") != std::string::npos);
  CHECK(ec == tether::errc::peer_gone);
  CHECK(ec != tether::errc::reply_finished);
}

TEST_CASE("errc: maps onto portable conditions where one exists", "[error]") {
  CHECK(std::error_code(tether::errc::invalid_argument) == std::errc::invalid_argument);
  CHECK(std::error_code(tether::errc::would_block) == std::errc::operation_would_block);
  CHECK(std::error_code(tether::errc::peer_gone) == std::errc::connection_reset);
}

TEST_CASE("errc: client errors have their own messages and portable conditions", "[error][client]") {
  CHECK(std::error_code(tether::errc::connect_timeout) == std::errc::timed_out);
  CHECK(std::error_code(tether::errc::response_timeout) == std::errc::timed_out);
  CHECK(std::error_code(tether::errc::incomplete_response) == std::errc::connection_reset);
  CHECK(std::error_code(tether::errc::no_response) == std::errc::connection_reset);
  CHECK(std::error_code(tether::errc::cancelled) == std::errc::operation_canceled);
  CHECK(std::error_code(tether::errc::response_too_large) == std::errc::message_size);
  CHECK(std::error_code(tether::errc::bad_response) == std::errc::bad_message);
  CHECK(std::error_code(tether::errc::invalid_uri) == std::errc::invalid_argument);
  CHECK(std::error_code(tether::errc::unsupported_scheme) == std::errc::protocol_not_supported);
  for (int e = static_cast<int>(tether::errc::invalid_uri); e <= static_cast<int>(tether::errc::bad_response); ++e)
    CHECK(std::error_code(static_cast<tether::errc>(e)).message() != "unknown tether error");
}

TEST_CASE("result: holds a value or an error, never both", "[error][result]") {
  tether::result<int> ok = 7;
  REQUIRE(ok);
  CHECK(*ok == 7);
  CHECK(!ok.error());
  tether::result<int> bad = tether::errc::invalid_address;
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == tether::errc::invalid_address);
  CHECK(bad.value_or(3) == 3);
  CHECK_THROWS_AS(bad.value(), std::system_error);
}

TEST_CASE("result: copies and moves non-trivial values", "[error][result]") {
  tether::result<std::string> a = std::string(100, 'x');
  tether::result<std::string> b = a;
  tether::result<std::string> c = std::move(a);
  CHECK(*b == std::string(100, 'x'));
  CHECK(*c == std::string(100, 'x'));
  b = tether::errc::empty_handle;
  CHECK_FALSE(b);
  b = c;
  CHECK(b->size() == 100);
}
