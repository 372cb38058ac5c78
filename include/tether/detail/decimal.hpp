// tether/detail/decimal.hpp - an integer's decimal text, without <charconv>.
//
// The push helpers write a few numbers into headers and fields (Content-Length, an SSE
// retry); <charconv> would cost each program that includes them more compile time than
// the conversion is worth (docs/performance.md, "Compile time").
#pragma once

#include <tether/config.hpp>

#include <cstdint>
#include <string_view>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// The decimal text of `value` (with '-' when negative), written at the end of `buffer`,
/// NUL-terminated: the view's data() is a C string.
inline std::string_view to_decimal(std::int64_t value, char (&buffer)[24]) noexcept {
  char* const end = buffer + sizeof buffer - 1;
  char* p = end;
  *p = '\0';
  // The magnitude as unsigned, so that the most negative value has one too.
  std::uint64_t v = value < 0 ? 0 - static_cast<std::uint64_t>(value) : static_cast<std::uint64_t>(value);
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  if (value < 0) *--p = '-';
  return std::string_view(p, static_cast<std::size_t>(end - p));
}

/// The decimal text of an unsigned `value`, as above.
inline std::string_view to_decimal(std::uint64_t value, char (&buffer)[24]) noexcept {
  char* const end = buffer + sizeof buffer - 1;
  char* p = end;
  *p = '\0';
  do {
    *--p = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  return std::string_view(p, static_cast<std::size_t>(end - p));
}

}  // namespace detail
TETHER_END_NAMESPACE
