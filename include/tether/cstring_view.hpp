// tether/cstring_view.hpp - a borrowed, NUL-terminated string.
//
// libevent's C API takes `const char*`. A std::string_view need not be NUL-terminated,
// so passing one would force a copy on every call; cstring_view accepts only sources
// that are terminated (literals, C strings, std::string) and passes the pointer through.
#pragma once

#include <tether/config.hpp>

#include <cstring>
#include <string>
#include <string_view>

TETHER_BEGIN_NAMESPACE

class cstring_view {
 public:
  constexpr cstring_view(const char* s) noexcept : data_(s ? s : "") {}  // NOLINT: implicit by design
  cstring_view(const std::string& s) noexcept : data_(s.c_str()) {}      // NOLINT: implicit by design

  constexpr const char* c_str() const noexcept { return data_; }
  std::string_view view() const noexcept { return data_; }
  operator std::string_view() const noexcept { return data_; }  // NOLINT: implicit by design

 private:
  const char* data_;
};

TETHER_END_NAMESPACE
