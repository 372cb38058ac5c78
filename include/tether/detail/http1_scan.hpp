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
  oc_reg_name = 128,    // reg-name / IPv4address octets: unreserved, pct-encoded, sub-delims
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
    for (int c = 0; c < 256; ++c)
      if ((cls[c] & oc_host) != 0 && c != ':' && c != '[' && c != ']') add(c, oc_reg_name);
  }
};
inline constexpr octet_table octets{};

constexpr bool is(unsigned char c, octet_class k) noexcept { return (octets.cls[c] & k) != 0; }
constexpr bool is(char c, octet_class k) noexcept { return is(static_cast<unsigned char>(c), k); }
constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

#if defined(__SSE2__)
/// A bit for each of the 16 octets at `p` that is a control character other than HTAB,
/// or DEL. In a request head these are CR and LF (line ends, checked by the caller) and
/// octets no head may hold.
inline unsigned head_special_mask16(const char* p) noexcept {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);  // v <= 0x1F
  const __m128i special = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t')), ctl),
                                       _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7F)));
  return static_cast<unsigned>(_mm_movemask_epi8(special));
}
#endif

/// head_special_mask16 for the fewer than 16 octets of [p, end). [lo, p) must be
/// readable: with 16 octets in [lo, end) one load ends at `end` and starts before `p`.
inline unsigned head_special_mask_tail(const char* lo, const char* p, const char* end) noexcept {
  const auto left = static_cast<unsigned>(end - p);
#if defined(__SSE2__)
  if (end - lo >= 16) return head_special_mask16(end - 16) >> (16 - left);
#else
  (void)lo;
#endif
  unsigned m = 0;
  for (unsigned i = 0; i != left; ++i)
    if (is(p[i], oc_head_special)) m |= 1u << i;
  return m;
}

/// The first octet in [p, end) that is not a request-target octet (visible US-ASCII),
/// or is '#': no request-target has a fragment (RFC 9112 3.2).
inline const char* find_target_end(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  const __m128i below = _mm_set1_epi8(0x21);
  const __m128i above = _mm_set1_epi8(0x7E);
  const __m128i hash = _mm_set1_epi8('#');
  for (; end - p >= 16; p += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed compares: octets >= 0x80 are negative, so they fall below 0x21 too.
    const __m128i bad =
        _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, below), _mm_cmpgt_epi8(v, above)), _mm_cmpeq_epi8(v, hash));
    const int m = _mm_movemask_epi8(bad);
    if (m != 0) return p + __builtin_ctz(static_cast<unsigned>(m));
  }
#endif
  while (p != end && is(*p, oc_target) && *p != '#') ++p;
  return p;
}

/// The first octet in [p, end) that is not a tchar.
inline const char* find_token_end(const char* p, const char* end) noexcept {
  while (p != end && is(*p, oc_tchar)) ++p;
  return p;
}

/// The first octet from `p` on that is not a tchar, where one is known to come before
/// `limit` (the CR that ends a head line), and [p, limit) is readable. Field names are
/// letters, digits and '-' nearly always: 16 octets are tested for those at once, and
/// the table decides only at the first other octet.
inline const char* skip_token(const char* p, const char* limit) noexcept {
#if defined(__SSE2__)
  const __m128i lower = _mm_set1_epi8(0x20);
  for (; limit - p >= 16;) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // (x + (0x80 - lo)) < (0x80 - lo + n) as signed octets: x - lo < n unsigned.
    const __m128i letter = _mm_cmplt_epi8(_mm_add_epi8(_mm_or_si128(v, lower), _mm_set1_epi8(static_cast<char>(0x80 - 'a'))),
                                          _mm_set1_epi8(static_cast<char>(-128 + 26)));
    const __m128i digit = _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8(static_cast<char>(0x80 - '0'))),
                                         _mm_set1_epi8(static_cast<char>(-128 + 10)));
    const __m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
    const auto m = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), dash))) ^ 0xFFFFu;
    if (m == 0) {
      p += 16;
      continue;
    }
    p += __builtin_ctz(m);
    if (!is(*p, oc_tchar)) return p;
    ++p;  // another tchar ('_', '.', ...): go on after it
  }
#else
  (void)limit;
#endif
  while (is(*p, oc_tchar)) ++p;
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
  const char* p = list.data();
  const char* const end = p + list.size();
  for (;;) {
    const char* e = p;
    while (e != end && *e != ',') ++e;
    if (!f(trim_ows(std::string_view(p, static_cast<std::size_t>(e - p))))) return;
    if (e == end) return;
    p = e + 1;
  }
}

}  // namespace http1::detail
TETHER_END_NAMESPACE
