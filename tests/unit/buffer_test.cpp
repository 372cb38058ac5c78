#include <tether/buffer.hpp>

#include <catch2/catch.hpp>

TEST_CASE("buffer: append, prepend, find, read_line, drain, take", "[buffer]") {
  tether::buffer b;
  CHECK(b.empty());
  REQUIRE_FALSE(b.append("world\r\nline2\n"));
  REQUIRE_FALSE(b.prepend("hello "));
  CHECK(b.size() == 19);
  CHECK(b.find("line2") == 13u);
  CHECK_FALSE(b.find("absent"));
  CHECK(b.read_line() == "hello world");
  CHECK(b.read_line(tether::eol::lf) == "line2");
  CHECK_FALSE(b.read_line());
  REQUIRE_FALSE(b.append("abcdef"));
  b.drain(2);
  CHECK(b.linearize(2) == "cd");
  char out[3] = {};
  CHECK(b.copy_out(out) == 3);
  CHECK(std::string_view(out, 3) == "cde");
  CHECK(b.take_string() == "cdef");
  CHECK(b.empty());
}

TEST_CASE("buffer: append_buffer moves bytes without copying them twice", "[buffer]") {
  tether::buffer a("first;"), b("second");
  REQUIRE_FALSE(a.append_buffer(b.native()));
  CHECK(a.to_string() == "first;second");
  CHECK(b.empty());
  tether::buffer_ref view = a;
  view.clear();
  CHECK(a.empty());
}
