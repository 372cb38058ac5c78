// tether/buffer.hpp - evbuffer views and owners.
//
// `buffer_ref` borrows an evbuffer that libevent (or someone else) owns, such as a
// request's input body or output buffer. `buffer` owns one. Both share one interface,
// `basic_buffer_ops`, so code written against a buffer_ref works on an owned buffer too.
/// @file
/// tether::buffer (an owned evbuffer) and tether::buffer_ref (a borrowed one, such as a
/// request body), with one shared interface.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/libevent_use.hpp>
#include <tether/detail/owner.hpp>
#include <tether/error.hpp>

#include <event2/buffer.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>

TETHER_BEGIN_NAMESPACE

/// End-of-line styles for read_line (libevent's evbuffer_eol_style).
enum class eol : int {
  any = EVBUFFER_EOL_ANY,            ///< any sequence of CR and LF
  crlf = EVBUFFER_EOL_CRLF,          ///< CRLF or a bare LF
  crlf_strict = EVBUFFER_EOL_CRLF_STRICT,
  lf = EVBUFFER_EOL_LF,
  nul = EVBUFFER_EOL_NUL,
};

namespace detail {
/// The operations shared by buffer_ref and buffer. `Derived::native()` gives the evbuffer.
template <class Derived>
class buffer_ops {
 public:
  /// Bytes in the buffer.
  std::size_t size() const noexcept { return evbuffer_get_length(ev()); }
  bool empty() const noexcept { return size() == 0; }

  /// Appends a copy of `bytes`.
  [[nodiscard]] std::error_code append(std::string_view bytes) const noexcept {
    if (bytes.empty()) return {};
    return evbuffer_add(ev(), bytes.data(), bytes.size()) == 0 ? std::error_code{}
                                                               : make_error_code(errc::libevent_failure);
  }
  [[nodiscard]] std::error_code append(std::span<const std::byte> bytes) const noexcept {
    return append(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  /// Moves every byte of `other` to the end of this buffer, without copying.
  [[nodiscard]] std::error_code append_buffer(evbuffer* other) const noexcept {
    return evbuffer_add_buffer(ev(), other) == 0 ? std::error_code{} : make_error_code(errc::libevent_failure);
  }
  /// Inserts a copy of `bytes` at the front.
  [[nodiscard]] std::error_code prepend(std::string_view bytes) const noexcept {
    return evbuffer_prepend(ev(), bytes.data(), bytes.size()) == 0 ? std::error_code{}
                                                                    : make_error_code(errc::libevent_failure);
  }
  /// Removes up to `n` bytes from the front.
  void drain(std::size_t n) const noexcept { evbuffer_drain(ev(), n); }
  void clear() const noexcept { evbuffer_drain(ev(), size()); }

  /// Copies up to `out.size()` bytes from the front without removing them; returns the
  /// number copied.
  std::size_t copy_out(std::span<char> out) const noexcept {
    const auto n = evbuffer_copyout(ev(), out.data(), out.size());
    return n < 0 ? 0 : static_cast<std::size_t>(n);
  }
  /// Copies every byte into a string, without removing them.
  std::string to_string() const {
    std::string s(size(), '\0');
    if (!s.empty()) evbuffer_copyout(ev(), s.data(), s.size());
    return s;
  }
  /// Removes and returns every byte.
  std::string take_string() const {
    std::string s = to_string();
    drain(s.size());
    return s;
  }
  /// Removes and returns one line (without its terminator), or nothing if no complete
  /// line is buffered.
  std::optional<std::string> read_line(eol style = eol::crlf) const {
    std::size_t n = 0;
    char* line = evbuffer_readln(ev(), &n, static_cast<evbuffer_eol_style>(style));
    if (!line) return std::nullopt;
    std::string s(line, n);
    std::free(line);
    return s;
  }
  /// Offset of the first occurrence of `what`, or nothing.
  std::optional<std::size_t> find(std::string_view what) const noexcept {
    const evbuffer_ptr p = evbuffer_search(ev(), what.data(), what.size(), nullptr);
    if (p.pos < 0) return std::nullopt;
    return static_cast<std::size_t>(p.pos);
  }
  /// Makes the first `n` bytes contiguous and returns them (all bytes if n exceeds size()).
  std::string_view linearize(std::size_t n) const noexcept {
    n = n > size() ? size() : n;
    auto* p = evbuffer_pullup(ev(), static_cast<ev_ssize_t>(n));
    return p ? std::string_view(reinterpret_cast<const char*>(p), n) : std::string_view{};
  }

 private:
  evbuffer* ev() const noexcept { return static_cast<const Derived*>(this)->native(); }
};
}  // namespace detail

/// A non-owning view of an evbuffer. Cheap to copy; valid as long as the evbuffer is.
class buffer_ref : public detail::buffer_ops<buffer_ref> {
 public:
  /// Views `b`, which must be non-null and outlive the view (requests give you views:
  /// basic_request::body(), output()).
  explicit buffer_ref(evbuffer* b) noexcept : buf_(b) {}
  /// The libevent buffer, for calls tether does not wrap; its owner keeps it.
  evbuffer* native() const noexcept { return buf_; }

 private:
  evbuffer* buf_;
};

/// An owned evbuffer, freed on destruction. Move-only.
class buffer : public detail::buffer_ops<buffer> {
 public:
  /// Creates an empty buffer; throws std::bad_alloc if libevent cannot.
  buffer() : buf_((detail::note_libevent_use(), evbuffer_new())) {
    if (!buf_) throw std::bad_alloc{};
  }
  /// Creates a buffer holding a copy of `bytes`.
  explicit buffer(std::string_view bytes) : buffer() {
    if (append(bytes)) throw std::bad_alloc{};
  }
  /// Takes ownership of an evbuffer created elsewhere.
  static buffer adopt(evbuffer* b) noexcept { return buffer(b, adopt_tag{}); }

  /// The libevent buffer, for calls tether does not wrap; this object still owns it.
  evbuffer* native() const noexcept { return buf_.get(); }
  /// A view of this buffer (valid while the buffer lives).
  buffer_ref ref() const noexcept { return buffer_ref(buf_.get()); }
  /// Same as ref(), so an owned buffer can be passed where a view is expected.
  operator buffer_ref() const noexcept { return ref(); }  // NOLINT: implicit by design

 private:
  struct adopt_tag {};
  buffer(evbuffer* b, adopt_tag) noexcept : buf_(b) {}
  detail::unique_evbuffer buf_;
};

TETHER_END_NAMESPACE
