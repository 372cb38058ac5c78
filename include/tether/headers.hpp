// tether/headers.hpp - a view of an evhttp header list (struct evkeyvalq).
/// @file
/// tether::headers_ref: a view of a request's or reply's header list, to read, add and
/// remove fields.
#pragma once

#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/iterator_tags.hpp>
#include <tether/error.hpp>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <cstddef>
#include <optional>
#include <string_view>

TETHER_BEGIN_NAMESPACE

/// One header line: a name and a value, both borrowed from libevent.
struct header_field {
  /// The field name as sent or added (compare it case-insensitively).
  std::string_view name;
  /// The field value, without leading or trailing whitespace.
  std::string_view value;
};

namespace detail {
// One table lookup per octet: headers are validated on every add(), on the hot path of
// every reply, so this must cost less than the libevent call it guards.
struct header_octets {
  bool tchar[256] = {};      // RFC 9110 section 5.6.2: token = 1*tchar
  bool forbidden[256] = {};  // in a field value: CR, LF and NUL (folding is obsolete)
  constexpr header_octets() {
    for (int c = '0'; c <= '9'; ++c) tchar[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) tchar[c] = tchar[c - 'a' + 'A'] = true;
    for (const char c : std::string_view{"!#$%&'*+-.^_`|~"}) tchar[static_cast<unsigned char>(c)] = true;
    forbidden[static_cast<unsigned char>('\r')] = forbidden[static_cast<unsigned char>('\n')] = forbidden[0] = true;
  }
};
inline constexpr header_octets header_octet_table{};

constexpr bool is_tchar(unsigned char c) noexcept { return header_octet_table.tchar[c]; }
constexpr bool is_header_name(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (const char c : s)
    if (!header_octet_table.tchar[static_cast<unsigned char>(c)]) return false;
  return true;
}
constexpr bool is_header_value(std::string_view s) noexcept {
  for (const char c : s)
    if (header_octet_table.forbidden[static_cast<unsigned char>(c)]) return false;
  return true;
}
}  // namespace detail

/// A non-owning view of a request's input or output headers.
///
/// Names compare case-insensitively, as in HTTP. add() validates its arguments, so a
/// header-injection attempt (a value holding CR or LF) is refused with
/// errc::invalid_argument instead of reaching the wire.
class headers_ref {
 public:
  /// Views the list `h` (evhttp_request_get_input_headers() and friends); `h` must outlive
  /// the view. Requests give you one: basic_request::input_headers(), output_headers().
  explicit headers_ref(evkeyvalq* h) noexcept : h_(h) {}

  /// Appends `name: value`. Duplicate names are allowed (Set-Cookie, Link, ...).
  [[nodiscard]] std::error_code add(cstring_view name, cstring_view value) const noexcept {
    if (!detail::is_header_name(name.view()) || !detail::is_header_value(value.view()))
      return make_error_code(errc::invalid_argument);
    return evhttp_add_header(h_, name.c_str(), value.c_str()) == 0 ? std::error_code{}
                                                                    : make_error_code(errc::invalid_argument);
  }
  /// Removes every `name` header, then adds `name: value`.
  [[nodiscard]] std::error_code set(cstring_view name, cstring_view value) const noexcept {
    if (!detail::is_header_name(name.view()) || !detail::is_header_value(value.view()))
      return make_error_code(errc::invalid_argument);
    while (evhttp_remove_header(h_, name.c_str()) == 0) {
    }
    return add(name, value);
  }
  /// The value of the first `name` header, if any.
  std::optional<std::string_view> find(cstring_view name) const noexcept {
    const char* v = evhttp_find_header(h_, name.c_str());
    if (!v) return std::nullopt;
    return std::string_view(v);
  }
  /// True if there is at least one `name` header.
  bool contains(cstring_view name) const noexcept { return evhttp_find_header(h_, name.c_str()) != nullptr; }
  /// Removes the first `name` header; returns whether there was one.
  bool remove(cstring_view name) const noexcept { return evhttp_remove_header(h_, name.c_str()) == 0; }
  /// Removes every header.
  void clear() const noexcept { evhttp_clear_headers(h_); }

  /// Walks the fields in the order they were received or added; yields header_field by value.
  /// Invalidated by add(), set(), remove() and clear().
  class iterator {
   public:
    /// A forward iterator: multi-pass, no stepping back.
    using iterator_category = std::forward_iterator_tag;
    /// What dereferencing gives.
    using value_type = header_field;
    /// Distance between two positions.
    using difference_type = std::ptrdiff_t;
    /// No operator->: dereferencing makes a header_field on the spot.
    using pointer = void;
    /// Dereferencing returns a value, not a reference.
    using reference = header_field;
    iterator() = default;
    /// Points at the field `kv` of a list; begin() is what you normally want.
    explicit iterator(evkeyval* kv) noexcept : kv_(kv) {}
    /// The field at this position (views into libevent's strings).
    header_field operator*() const noexcept { return {kv_->key, kv_->value}; }
    /// Moves to the next field.
    iterator& operator++() noexcept {
      kv_ = kv_->next.tqe_next;
      return *this;
    }
    /// Moves to the next field; returns the position before.
    iterator operator++(int) noexcept {
      auto old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(iterator a, iterator b) noexcept { return a.kv_ == b.kv_; }

   private:
    evkeyval* kv_ = nullptr;
  };
  /// The first field.
  iterator begin() const noexcept { return iterator(h_->tqh_first); }
  /// Past the last field.
  iterator end() const noexcept { return iterator(); }
  /// How many fields the list has (duplicates count once each); walks the list.
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (auto it = begin(); it != end(); ++it) ++n;
    return n;
  }
  /// True if the list has no field.
  bool empty() const noexcept { return h_->tqh_first == nullptr; }

  /// The libevent list, for calls tether does not wrap (evhttp_find_header, ...).
  evkeyvalq* native() const noexcept { return h_; }

 private:
  evkeyvalq* h_;
};

TETHER_END_NAMESPACE
