// tether/cstring_view.hpp - a borrowed, NUL-terminated string.
//
// libevent's C API takes `const char*`. A std::string_view need not be NUL-terminated,
// so passing one would force a copy on every call; cstring_view accepts only sources
// that are terminated (literals, C strings, std::string) and passes the pointer through.
/// @file
/// tether::cstring_view: a borrowed string that is known to be NUL-terminated, passed to
/// libevent's C API without a copy.
#pragma once

#include <tether/config.hpp>

#include <cstring>
#include <string>
#include <string_view>

TETHER_BEGIN_NAMESPACE

/// A borrowed string known to end with a NUL: what tether's functions take where libevent
/// needs a `const char*` ("/path", a header name), so a literal or std::string passes
/// through without a copy. It does not own the characters: the source must outlive it (pass
/// it on at once, do not store it). A std::string_view cannot convert to it, since it need
/// not be NUL-terminated; use std::string(view) there.
class cstring_view {
 public:
  /// Views `s` (a literal or any C string); null is taken as "".
  constexpr cstring_view(const char* s) noexcept : data_(s ? s : "") {}  // NOLINT: implicit by design
  /// Views `s`'s characters; valid until `s` changes or dies.
  cstring_view(const std::string& s) noexcept : data_(s.c_str()) {}      // NOLINT: implicit by design

  /// The NUL-terminated characters.
  constexpr const char* c_str() const noexcept { return data_; }
  /// The characters, without the NUL (computes the length).
  std::string_view view() const noexcept { return data_; }
  /// Same as view().
  operator std::string_view() const noexcept { return data_; }  // NOLINT: implicit by design

 private:
  const char* data_;
};

TETHER_END_NAMESPACE
