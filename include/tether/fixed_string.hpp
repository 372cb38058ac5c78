// tether/fixed_string.hpp - a string literal that can be a template argument.
//
// C++20 accepts objects of "structural" class type as non-type template arguments, so
// `tether::route<"/items", ...>` can carry its path in its type: the compiler then sees
// every route of a router at once, rejects duplicates and builds each path's Allow
// header before the program runs. A structural type may have no private members, which
// is why `chars` is public.
/// @file
/// tether::fixed_string: a string literal usable as a template argument (the path of a
/// static route).
#pragma once

#include <tether/config.hpp>

#include <cstddef>
#include <string_view>

TETHER_BEGIN_NAMESPACE

/// `N` characters stored in place and NUL-terminated, usable as a template argument.
///
///     template <tether::fixed_string Path> struct page {};
///     page<"/index.html"> p;                   // fixed_string<11>, deduced from the literal
///     static_assert(tether::fixed_string("/a").view() == "/a");
///
/// c_str() is what libevent's C API takes; view() is what C++ compares.
template <std::size_t N>
struct fixed_string {
  /// The characters and a terminating NUL. Public only because a template argument's type
  /// may have no private members: read it through view() or c_str().
  char chars[N + 1] = {};

  constexpr fixed_string() noexcept = default;
  /// From a string literal (or any array of N characters plus the terminating NUL).
  constexpr fixed_string(const char (&s)[N + 1]) noexcept {  // NOLINT: implicit by design
    for (std::size_t i = 0; i < N; ++i) chars[i] = s[i];
  }
  /// From the first N characters of `s` (a constant-expression helper: the size is a
  /// template argument, so it must be known first).
  constexpr explicit fixed_string(std::string_view s) noexcept {
    for (std::size_t i = 0; i < N && i < s.size(); ++i) chars[i] = s[i];
  }

  /// The number of characters, without the NUL.
  static constexpr std::size_t size() noexcept { return N; }
  /// True for the empty string.
  static constexpr bool empty() noexcept { return N == 0; }
  /// The NUL-terminated characters, for libevent's C API.
  constexpr const char* c_str() const noexcept { return chars; }
  /// The characters, without the NUL.
  constexpr std::string_view view() const noexcept { return std::string_view(chars, N); }
  /// Same as view().
  constexpr operator std::string_view() const noexcept { return view(); }  // NOLINT: implicit by design

  template <std::size_t M>
  friend constexpr bool operator==(const fixed_string& a, const fixed_string<M>& b) noexcept {
    return a.view() == b.view();
  }
};

template <std::size_t M>
fixed_string(const char (&)[M]) -> fixed_string<M - 1>;

TETHER_END_NAMESPACE
