// tether/uri.hpp - URIs, percent-encoding and query strings as owning, checked types.
/// @file
/// URIs (tether::uri over libevent's evhttp_uri), percent-encoding, and query strings
/// (tether::query_params). See docs/uri.md.
//
// `uri` owns a libevent evhttp_uri: parsing and building go through libevent's RFC 3986
// parser (evhttp_uri_parse_with_flags, evhttp_uri_set_*, evhttp_uri_join), so a URI
// tether accepts is one libevent accepts, and the parts come back as string views
// instead of nullable C strings.
//
// `query_params` is a parsed query string (`a=1&b=two&a=3`): decoded names and values,
// duplicates kept in order. It does not use evhttp_parse_query_str, because that function
// loses data: it cuts a value at a decoded %00, leaves names percent-encoded, and rejects
// the whole query for one parameter without '='. See docs/uri.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/libevent_use.hpp>
#include <tether/detail/owner.hpp>
#include <tether/error.hpp>

#include <event2/http.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

TETHER_BEGIN_NAMESPACE

namespace detail {
constexpr int hex_digit_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Appends the decoding of `text` to `out`; false on a '%' without two hex digits.
inline bool append_percent_decoded(std::string& out, std::string_view text, bool plus_as_space) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return false;
      const int hi = hex_digit_value(text[i + 1]);
      const int lo = hex_digit_value(text[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

constexpr bool is_unreserved(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

constexpr bool contains_nul(std::string_view s) noexcept { return s.find('\0') != std::string_view::npos; }

inline std::optional<std::string_view> optional_str(const char* s) noexcept {
  if (!s) return std::nullopt;
  return std::string_view(s);
}
}  // namespace detail

/// Decodes `%XX` escapes, and `+` as a space when `plus_as_space` (form encoding).
/// Every other byte is kept as it is; a decoded `%00` is kept as a NUL byte.
/// Errors: errc::invalid_argument for a `%` not followed by two hex digits.
inline result<std::string> percent_decode(std::string_view text, bool plus_as_space = false) {
  std::string out;
  out.reserve(text.size());
  if (!detail::append_percent_decoded(out, text, plus_as_space)) return errc::invalid_argument;
  return out;
}

/// Encodes every byte except RFC 3986's unreserved characters (ASCII letters, digits,
/// and the four marks dash, dot, underscore, tilde) as `%XX`, and a space as `+` when
/// `space_as_plus` (the same bytes as libevent's evhttp_uriencode).
inline std::string percent_encode(std::string_view text, bool space_as_plus = false) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (detail::is_unreserved(c)) {
      out.push_back(c);
    } else if (c == ' ' && space_as_plus) {
      out.push_back('+');
    } else {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(digits[b >> 4]);
      out.push_back(digits[b & 0xF]);
    }
  }
  return out;
}

/// One parameter of a query string, decoded; views into its query_params.
struct query_param {
  std::string_view name;   ///< decoded
  std::string_view value;  ///< decoded; empty for a parameter without `=`
};

/// A parsed query string: its parameters in order, names and values decoded.
///
/// Parsing follows application/x-www-form-urlencoded (what browsers send and what
/// URLSearchParams reads), strictly on escapes:
///   * parameters are separated by `&`; empty ones (`a=1&&b=2`) are skipped;
///   * a parameter splits at its first `=`; one without `=` (`?debug`) has an empty value;
///   * names and values are percent-decoded, with `+` as a space;
///   * a `%` not followed by two hex digits makes the whole query invalid.
/// Duplicate names are kept in the order they came (`find` returns the first,
/// `find_all` every one). Nothing is lost: a decoded `%00` stays in the value.
///
/// Copyable and movable; the views it returns live as long as it does. Memory is one
/// string for the decoded text plus one small record per parameter.
///
///     auto q = tether::parse_query("tag=a&tag=b&page=2");
///     if (!q) return q.error();
///     for (auto [name, value] : *q) ...;          // tag=a, tag=b, page=2
///     q->find("page");                             // "2"
class query_params {
  struct entry {
    std::size_t name_at, name_size, value_at, value_size;
  };

 public:
  /// A random-access iterator over the parameters; dereferences to a query_param by value.
  class iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;  ///< random access
    using value_type = query_param;                              ///< a name and a value
    using difference_type = std::ptrdiff_t;                      ///< distance between two
    using pointer = void;                                        ///< none: values, not objects
    using reference = query_param;                               ///< by value

    /// A singular iterator.
    iterator() = default;
    /// The current parameter.
    query_param operator*() const noexcept { return (*owner_)[index_]; }
    /// The parameter `n` places away.
    query_param operator[](difference_type n) const noexcept {
      return (*owner_)[static_cast<std::size_t>(static_cast<difference_type>(index_) + n)];
    }
    /// Next parameter.
    iterator& operator++() noexcept {
      ++index_;
      return *this;
    }
    /// Next parameter (postfix).
    iterator operator++(int) noexcept {
      auto old = *this;
      ++index_;
      return old;
    }
    /// Previous parameter.
    iterator& operator--() noexcept {
      --index_;
      return *this;
    }
    /// Previous parameter (postfix).
    iterator operator--(int) noexcept {
      auto old = *this;
      --index_;
      return old;
    }
    /// Moves `n` parameters on.
    iterator& operator+=(difference_type n) noexcept {
      index_ = static_cast<std::size_t>(static_cast<difference_type>(index_) + n);
      return *this;
    }
    /// Moves `n` parameters back.
    iterator& operator-=(difference_type n) noexcept { return *this += -n; }
    friend iterator operator+(iterator it, difference_type n) noexcept { return it += n; }
    friend iterator operator+(difference_type n, iterator it) noexcept { return it += n; }
    friend iterator operator-(iterator it, difference_type n) noexcept { return it -= n; }
    friend difference_type operator-(iterator a, iterator b) noexcept {
      return static_cast<difference_type>(a.index_) - static_cast<difference_type>(b.index_);
    }
    friend bool operator==(iterator a, iterator b) noexcept { return a.index_ == b.index_; }
    friend auto operator<=>(iterator a, iterator b) noexcept { return a.index_ <=> b.index_; }

   private:
    friend class query_params;
    iterator(const query_params* q, std::size_t i) noexcept : owner_(q), index_(i) {}
    const query_params* owner_ = nullptr;
    std::size_t index_ = 0;
  };

  query_params() = default;

  /// Parses `query` (the part after `?`, without it). See the class comment for the
  /// rules. Errors: errc::invalid_argument for a malformed `%` escape.
  static result<query_params> parse(std::string_view query) {
    query_params q;
    q.text_.reserve(query.size());
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view part = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
      if (part.empty()) continue;
      const auto eq = part.find('=');
      const std::string_view name = part.substr(0, eq);
      const std::string_view value = eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
      entry e{};
      e.name_at = q.text_.size();
      if (!detail::append_percent_decoded(q.text_, name, true)) return errc::invalid_argument;
      e.name_size = q.text_.size() - e.name_at;
      e.value_at = q.text_.size();
      if (!detail::append_percent_decoded(q.text_, value, true)) return errc::invalid_argument;
      e.value_size = q.text_.size() - e.value_at;
      q.entries_.push_back(e);
    }
    return q;
  }

  /// Number of parameters (duplicates counted).
  std::size_t size() const noexcept { return entries_.size(); }
  /// True if the query had no parameter.
  bool empty() const noexcept { return entries_.empty(); }
  /// The `i`-th parameter, in query order (i < size()).
  query_param operator[](std::size_t i) const noexcept {
    const entry& e = entries_[i];
    const std::string_view t = text_;
    return {t.substr(e.name_at, e.name_size), t.substr(e.value_at, e.value_size)};
  }
  /// The first parameter.
  iterator begin() const noexcept { return iterator(this, 0); }
  /// Past the last parameter.
  iterator end() const noexcept { return iterator(this, entries_.size()); }

  /// The value of the first parameter named `name` (compared exactly, after decoding).
  std::optional<std::string_view> find(std::string_view name) const noexcept {
    for (const auto p : *this)
      if (p.name == name) return p.value;
    return std::nullopt;
  }
  /// True if a parameter is named `name`.
  bool contains(std::string_view name) const noexcept { return find(name).has_value(); }
  /// How many parameters are named `name`.
  std::size_t count(std::string_view name) const noexcept {
    std::size_t n = 0;
    for (const auto p : *this) n += p.name == name ? 1 : 0;
    return n;
  }
  /// The values of every parameter named `name`, in query order.
  std::vector<std::string_view> find_all(std::string_view name) const {
    std::vector<std::string_view> values;
    for (const auto p : *this)
      if (p.name == name) values.push_back(p.value);
    return values;
  }

 private:
  std::string text_;
  std::vector<entry> entries_;
};

/// Parses a query string; see query_params::parse.
inline result<query_params> parse_query(std::string_view query) { return query_params::parse(query); }

/// How strictly uri::parse reads its input.
enum class uri_syntax {
  /// RFC 3986: every character outside the grammar must be percent-encoded. A space,
  /// a control character, a non-ASCII byte or a stray `#` makes the text invalid.
  strict,
  /// libevent's EVHTTP_URI_NONCONFORMANT: the path runs to the first `?` or `#`, the
  /// query to the first `#`, the fragment to the end, whatever their characters (the
  /// authority is still checked). This is how evhttp's server reads request targets.
  /// A part parsed this way may hold spaces or CR/LF: never put it on the wire as is.
  nonconformant,
};

/// A URI, owned: `scheme://userinfo@host:port/path?query#fragment`.
///
/// Parts that may be absent (scheme, userinfo, host, port, query, fragment) come back as
/// std::optional, so that an absent part and an empty one stay different (`/a?` has an
/// empty query, `/a` none). The path is always there, possibly empty. Views are valid
/// until the uri changes or dies. Setters check the new part as libevent does and leave
/// the uri unchanged on error.
///
///     auto u = tether::uri::parse("http://[::1]:8080/a%20b?x=1#top");
///     u->host();             // "[::1]"
///     u->hostname();         // "::1"  (what to connect to)
///     u->port();             // 8080
///     u->request_target();   // "/a%20b?x=1"
class uri {
 public:
  /// An empty URI (no parts, empty path), to be filled with the setters.
  /// Throws std::bad_alloc if libevent cannot allocate.
  uri() : u_((detail::note_libevent_use(), evhttp_uri_new())) {
    if (!u_) throw std::bad_alloc{};
  }

  /// A copy of `o` (its parts and its syntax). Throws std::bad_alloc.
  uri(const uri& o) : uri() {
    evhttp_uri_set_flags(u_.get(), o.flags_);
    flags_ = o.flags_;
    evhttp_uri* s = o.u_.get();
    if (evhttp_uri_set_scheme(u_.get(), evhttp_uri_get_scheme(s)) != 0 ||
        evhttp_uri_set_userinfo(u_.get(), evhttp_uri_get_userinfo(s)) != 0 ||
        evhttp_uri_set_host(u_.get(), evhttp_uri_get_host(s)) != 0 ||
        evhttp_uri_set_port(u_.get(), evhttp_uri_get_port(s)) != 0 ||
        evhttp_uri_set_path(u_.get(), evhttp_uri_get_path(s)) != 0 ||
        evhttp_uri_set_query(u_.get(), evhttp_uri_get_query(s)) != 0 ||
        evhttp_uri_set_fragment(u_.get(), evhttp_uri_get_fragment(s)) != 0)
      throw std::bad_alloc{};  // the parts were valid in `o`: only an allocation can fail
  }
  /// Takes over `o`'s evhttp_uri; `o` may only be destroyed or assigned to.
  uri(uri&&) noexcept = default;
  /// Copies `o`. Throws std::bad_alloc.
  uri& operator=(const uri& o) {
    if (this != &o) *this = uri(o);
    return *this;
  }
  /// Takes over `o`'s evhttp_uri.
  uri& operator=(uri&&) noexcept = default;

  /// Parses `text` as an absolute URI or a relative reference.
  /// Errors: errc::invalid_uri when libevent's parser rejects it (with uri_syntax::strict,
  /// any character RFC 3986 does not allow there; a port above 65535; a bad IPv6 literal)
  /// or when it holds a NUL byte (which libevent would silently cut at).
  static result<uri> parse(std::string_view text, uri_syntax syntax = uri_syntax::strict) {
    if (detail::contains_nul(text)) return errc::invalid_uri;
    const std::string copy(text);
    const unsigned flags = syntax == uri_syntax::nonconformant ? EVHTTP_URI_NONCONFORMANT : 0u;
    detail::note_libevent_use();
    evhttp_uri* parsed = evhttp_uri_parse_with_flags(copy.c_str(), flags);
    if (!parsed) return errc::invalid_uri;
    return uri(parsed, flags);
  }

  // ----- parts ----------------------------------------------------------------------

  /// The scheme ("http"), if any.
  std::optional<std::string_view> scheme() const noexcept { return detail::optional_str(evhttp_uri_get_scheme(u_.get())); }
  /// The userinfo ("user:password", before `@`), if any; still percent-encoded.
  std::optional<std::string_view> userinfo() const noexcept {
    return detail::optional_str(evhttp_uri_get_userinfo(u_.get()));
  }
  /// The host as written: a name, an IPv4 address, or an IPv6 literal in brackets.
  std::optional<std::string_view> host() const noexcept { return detail::optional_str(evhttp_uri_get_host(u_.get())); }
  /// The host without the brackets of an IPv6 literal (what a connection is made to);
  /// empty if there is no host.
  std::string_view hostname() const noexcept {
    std::string_view h = host().value_or(std::string_view{});
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    return h;
  }
  /// The port, if the URI names one.
  std::optional<std::uint16_t> port() const noexcept {
    const int p = evhttp_uri_get_port(u_.get());
    if (p < 0 || p > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(p);
  }
  /// The path, still percent-encoded (decode it with percent_decode).
  std::string_view path() const noexcept {
    const char* p = evhttp_uri_get_path(u_.get());
    return p ? std::string_view(p) : std::string_view{};
  }
  /// The query (after `?`), still encoded: parse it with parse_query.
  std::optional<std::string_view> query() const noexcept { return detail::optional_str(evhttp_uri_get_query(u_.get())); }
  /// The fragment (after `#`), if any; still encoded.
  std::optional<std::string_view> fragment() const noexcept {
    return detail::optional_str(evhttp_uri_get_fragment(u_.get()));
  }

  /// What an HTTP request line names: the path (`/` if empty) and `?query` if any.
  std::string request_target() const {
    std::string t(path().empty() ? std::string_view("/") : path());
    if (auto q = query()) {
      t.push_back('?');
      t.append(*q);
    }
    return t;
  }

  // ----- setters: each checks its part as libevent does; nullopt removes it ---------

  /// Sets or removes the scheme (a letter, then letters, digits, `+`, `-`, `.`).
  [[nodiscard]] std::error_code set_scheme(std::optional<std::string_view> v) { return set(v, &evhttp_uri_set_scheme); }
  /// Sets or removes the userinfo (percent-encode what RFC 3986 does not allow there).
  [[nodiscard]] std::error_code set_userinfo(std::optional<std::string_view> v) { return set(v, &evhttp_uri_set_userinfo); }
  /// A name, an IPv4 address, or an IPv6 literal in brackets ("[::1]").
  [[nodiscard]] std::error_code set_host(std::optional<std::string_view> v) { return set(v, &evhttp_uri_set_host); }
  /// Sets or removes the port.
  [[nodiscard]] std::error_code set_port(std::optional<std::uint16_t> p) noexcept {
    return evhttp_uri_set_port(u_.get(), p ? static_cast<int>(*p) : -1) == 0 ? std::error_code{}
                                                                                : make_error_code(errc::invalid_uri);
  }
  /// Checked against the uri's syntax (strict unless it was parsed nonconformant).
  [[nodiscard]] std::error_code set_path(std::string_view v) { return set(std::optional<std::string_view>(v), &evhttp_uri_set_path); }
  /// Sets or removes the query (checked against the uri's syntax).
  [[nodiscard]] std::error_code set_query(std::optional<std::string_view> v) { return set(v, &evhttp_uri_set_query); }
  /// Sets or removes the fragment (checked against the uri's syntax).
  [[nodiscard]] std::error_code set_fragment(std::optional<std::string_view> v) { return set(v, &evhttp_uri_set_fragment); }

  /// The URI as text (evhttp_uri_join).
  /// Errors: errc::invalid_uri if the parts do not make a URI (a host with a path that
  /// does not start with `/`).
  result<std::string> to_string() const {
    std::size_t limit = 16;
    for (auto part : {scheme(), userinfo(), host(), std::optional<std::string_view>(path()), query(), fragment()})
      limit += part ? part->size() + 4 : 0;
    std::string out(limit, '\0');
    if (!evhttp_uri_join(u_.get(), out.data(), out.size())) return errc::invalid_uri;
    out.resize(std::char_traits<char>::length(out.c_str()));
    return out;
  }

  /// The libevent object, for calls tether does not wrap. Do not free it.
  evhttp_uri* native() const noexcept { return u_.get(); }

 private:
  uri(evhttp_uri* u, unsigned flags) noexcept : u_(u), flags_(flags) {}

  [[nodiscard]] std::error_code set(std::optional<std::string_view> v, int (*setter)(evhttp_uri*, const char*)) {
    if (!v) return setter(u_.get(), nullptr) == 0 ? std::error_code{} : make_error_code(errc::invalid_uri);
    if (detail::contains_nul(*v)) return make_error_code(errc::invalid_uri);
    const std::string copy(*v);
    return setter(u_.get(), copy.c_str()) == 0 ? std::error_code{} : make_error_code(errc::invalid_uri);
  }

  detail::unique_evhttp_uri u_;
  unsigned flags_ = 0;
};

TETHER_END_NAMESPACE
