// tether/detail/http1_scan.hpp - octet classes of RFC 9110/9112 and the scanners the
// HTTP/1.1 parser runs over a request head.
//
// The scanners use SSE2 compare + movemask where the target has it (every x86-64) and a
// table loop elsewhere. Nothing here uses SSE4.2's PCMPESTRI: valgrind 3.19 cannot
// decode it, and the tests run under valgrind. No scanner reads outside [p, end).
#pragma once

#include <tether/config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#  include <emmintrin.h>
#endif

TETHER_BEGIN_NAMESPACE
namespace http1::detail {

// One table, one bit per class, so each test is a load and an AND.
enum octet_class : std::uint8_t {
  oc_tchar = 1,         // RFC 9110 5.6.2 token character
  oc_head_special = 2,  // ends the control scan of a head: CTLs other than HTAB, and DEL
  oc_target = 4,        // request-target octet: visible US-ASCII (%x21-7E)
  oc_hex = 8,           // HEXDIG
  oc_qdtext = 16,       // RFC 9110 5.6.4 qdtext: HTAB, SP, %x21, %x23-5B, %x5D-7E, obs-text
  oc_host = 32,         // octets of a Host value: reg-name, IP-literal and port characters
  oc_vchar_obs = 64,    // field-vchar (VCHAR / obs-text), plus SP and HTAB: a field value octet
};

struct octet_table {
  std::uint8_t cls[256] = {};
  constexpr octet_table() {
    auto add = [this](int c, std::uint8_t bit) { cls[c] = static_cast<std::uint8_t>(cls[c] | bit); };
    for (int c = '0'; c <= '9'; ++c) add(c, oc_tchar | oc_hex);
    for (int c = 'a'; c <= 'z'; ++c) add(c, oc_tchar), add(c - 'a' + 'A', oc_tchar);
    for (int c = 'a'; c <= 'f'; ++c) add(c, oc_hex), add(c - 'a' + 'A', oc_hex);
    for (const char c : std::string_view{"!#$%&'*+-.^_`|~"}) add(static_cast<unsigned char>(c), oc_tchar);
    for (int c = 0; c < 0x20; ++c)
      if (c != '\t') add(c, oc_head_special);
    add(0x7F, oc_head_special);
    for (int c = 0x21; c <= 0x7E; ++c) add(c, oc_target);
    add('\t', oc_qdtext), add(' ', oc_qdtext), add(0x21, oc_qdtext);
    for (int c = 0x23; c <= 0x5B; ++c) add(c, oc_qdtext);
    for (int c = 0x5D; c <= 0x7E; ++c) add(c, oc_qdtext);
    for (int c = 0x80; c <= 0xFF; ++c) add(c, oc_qdtext | oc_vchar_obs);
    for (int c = 0x20; c <= 0x7E; ++c) add(c, oc_vchar_obs);
    add('\t', oc_vchar_obs);
    // RFC 3986: unreserved / pct-encoded / sub-delims, ':' before a port, '[' ']' of an
    // IP-literal.
    for (int c = '0'; c <= '9'; ++c) add(c, oc_host);
    for (int c = 'a'; c <= 'z'; ++c) add(c, oc_host), add(c - 'a' + 'A', oc_host);
    for (const char c : std::string_view{"-._~%!$&'()*+,;=:[]"}) add(static_cast<unsigned char>(c), oc_host);
  }
};
inline constexpr octet_table octets{};

constexpr bool is(unsigned char c, octet_class k) noexcept { return (octets.cls[c] & k) != 0; }
constexpr bool is(char c, octet_class k) noexcept { return is(static_cast<unsigned char>(c), k); }
constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

/// The first octet in [p, end) that is a control character other than HTAB, or DEL; `end`
/// if there is none. In a request head these are CR and LF (line ends, checked by the
/// caller) and octets no head may contain.
inline const char* find_head_special(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  if (end - p >= 16) {
    const __m128i max_ctl = _mm_set1_epi8(0x1F);
    const __m128i tab = _mm_set1_epi8('\t');
    const __m128i del = _mm_set1_epi8(0x7F);
    auto special = [&](__m128i v) noexcept {
      const __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, max_ctl), v);  // v <= 0x1F
      return _mm_movemask_epi8(
          _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl), _mm_cmpeq_epi8(v, del)));
    };
    for (; end - p >= 16; p += 16) {
      const int m = special(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      if (m != 0) return p + __builtin_ctz(static_cast<unsigned>(m));
    }
    if (p == end) return end;
    // The tail: one more load that ends at `end`, overlapping bytes already scanned.
    const auto back = static_cast<unsigned>(16 - (end - p));
    const unsigned m = static_cast<unsigned>(special(_mm_loadu_si128(reinterpret_cast<const __m128i*>(end - 16)))) >> back;
    return m != 0 ? p + __builtin_ctz(m) : end;
  }
#endif
  while (p != end && !is(*p, oc_head_special)) ++p;
  return p;
}

/// The first octet in [p, end) that is not a request-target octet (visible US-ASCII).
inline const char* find_target_end(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  const __m128i below = _mm_set1_epi8(0x21);
  const __m128i above = _mm_set1_epi8(0x7E);
  for (; end - p >= 16; p += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed compares: octets >= 0x80 are negative, so they fall below 0x21 too.
    const __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, below), _mm_cmpgt_epi8(v, above));
    const int m = _mm_movemask_epi8(bad);
    if (m != 0) return p + __builtin_ctz(static_cast<unsigned>(m));
  }
#endif
  while (p != end && is(*p, oc_target)) ++p;
  return p;
}

/// The first octet in [p, end) that is not a tchar.
inline const char* find_token_end(const char* p, const char* end) noexcept {
  while (p != end && is(*p, oc_tchar)) ++p;
  return p;
}

/// `s` equals `lower` ignoring ASCII case, where `lower` holds only lower-case letters and
/// '-' and `s` holds only tchars (so OR-ing 0x20 cannot make a false match).
constexpr bool token_equals(std::string_view s, std::string_view lower) noexcept {
  if (s.size() != lower.size()) return false;
  for (std::size_t i = 0; i != s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) | 0x20) != static_cast<unsigned char>(lower[i])) return false;
  return true;
}

/// ASCII case-insensitive equality of two arbitrary strings.
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i != a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (static_cast<unsigned>(x - 'A') < 26u) x = static_cast<unsigned char>(x | 0x20);
    if (static_cast<unsigned>(y - 'A') < 26u) y = static_cast<unsigned char>(y | 0x20);
    if (x != y) return false;
  }
  return true;
}

/// `s` without leading and trailing SP / HTAB.
constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

/// Calls `f(element)` for each element of a comma-separated list (RFC 9110 5.6.1),
/// OWS-trimmed, empty elements included; stops early if `f` returns false.
template <class F>
constexpr void for_each_list_element(std::string_view list, F&& f) {
  for (;;) {
    const auto comma = list.find(',');
    if (!f(trim_ows(list.substr(0, comma)))) return;
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace http1::detail
TETHER_END_NAMESPACE
