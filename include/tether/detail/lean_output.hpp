// tether/detail/lean_output.hpp - what the lean engine writes that is not copied into a
// connection's output string: shared_bytes and static_bytes held by reference, file
// ranges sent by sendfile(2); and how a reply's body becomes such pieces under the
// server's buffer policy.
//
// A connection's output is its `out` string (the common case: heads, copied bodies,
// chunk framing) plus, only once a reference or a file range was queued, a list of
// segments. The list holds the bytes in order; the bytes appended to `out` after its
// last segment follow them (lean_connection::out_off marks where that tail starts).
// With no segment, the output is `out` alone and one send() writes it, as before.
#pragma once

#include <tether/buffer_policy.hpp>
#include <tether/bytes.hpp>
#include <tether/config.hpp>
#include <tether/file.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// One run of queued output.
struct lean_segment {
  enum class kind : std::uint8_t { copied, shared, fixed, file };
  kind k = kind::copied;
  int fd = -1;                  // file: a duplicate of the file's descriptor, closed when sent
  const char* data = nullptr;   // shared, fixed: the next byte to write
  std::uint64_t at = 0;         // copied: offset in `out`; file: offset in the file
  std::uint64_t size = 0;       // bytes left
  const void* token = nullptr;  // shared: the reference held on the block

  /// Gives back what the segment holds (its block reference, its descriptor).
  void release() noexcept {
    if (token) shared_bytes::cleanup(nullptr, 0, const_cast<void*>(token));
    if (fd >= 0) ::close(fd);
    token = nullptr;
    fd = -1;
  }
};

/// One part of a body or chunk as the buffer policy says to queue it: bytes to copy, a
/// shared_bytes block or static bytes to reference, or a file range to send by sendfile.
struct lean_piece {
  std::string_view bytes{};            // copy, shared, fixed
  const shared_bytes* shared = nullptr;  // by reference: hold the block
  const file_range* file = nullptr;    // by sendfile
  bool fixed = false;                  // static_bytes by reference

  std::uint64_t size() const noexcept { return file ? file->length : bytes.size(); }
  bool by_reference() const noexcept { return shared || fixed || file; }
};

/// True if policy `P` queues shared_bytes and static_bytes by reference
/// (reference_buffer, file_buffer, and bounded<> over them).
template <class P>
inline constexpr bool lean_references = std::is_base_of_v<reference_buffer, P>;
/// True if policy `P` sends file ranges by sendfile (file_buffer, bounded<file_buffer>).
template <class P>
inline constexpr bool lean_sends_files = std::is_base_of_v<file_buffer, P>;

/// A body the lean engine can queue under policy `P`: bytes (std::string_view,
/// std::string, const char*), shared_bytes and static_bytes under every policy, and
/// file ranges under file_buffer.
template <class P, class Body>
concept lean_body_for = std::convertible_to<const Body&, std::string_view> ||
                        requires(const Body& b) {
                          { b.view() } -> std::convertible_to<std::string_view>;
                        } ||
                        (lean_sends_files<P> && std::is_same_v<Body, file_range>);

/// `body` as policy `P` queues it on the lean engine (a view of it: `body` must live until
/// the piece is queued).
template <class P, class Body>
lean_piece lean_piece_of(const Body& body) noexcept {
  using B = std::remove_cvref_t<Body>;
  lean_piece p;
  if constexpr (std::is_same_v<B, file_range>) {
    p.file = &body;
  } else if constexpr (std::is_same_v<B, shared_bytes>) {
    p.bytes = body.view();
    if (lean_references<P> && p.bytes.size() > reference_min) p.shared = &body;
  } else if constexpr (std::is_same_v<B, static_bytes>) {
    p.bytes = body.view();
    p.fixed = lean_references<P> && p.bytes.size() > reference_min;
  } else if constexpr (std::convertible_to<const B&, std::string_view>) {
    p.bytes = std::string_view(body);
  } else {
    p.bytes = std::string_view(body.view());
  }
  return p;
}

/// True if policy `P` always copies a `Body` (bytes; shared_bytes and static_bytes under
/// copy_buffer): the reply takes the plain path, with no piece to look at.
template <class P, class Body>
inline constexpr bool lean_always_copied =
    !std::is_same_v<Body, file_range> &&
    (!lean_references<P> || !(std::is_same_v<Body, shared_bytes> || std::is_same_v<Body, static_bytes>));

/// The bytes of a body lean_always_copied says is copied.
template <class Body>
[[gnu::always_inline]] inline std::string_view lean_bytes_of(const Body& body) noexcept {
  if constexpr (std::convertible_to<const Body&, std::string_view>) return std::string_view(body);
  else return std::string_view(body.view());
}

/// The one error for a body the lean engine cannot queue under policy `P`.
template <class P, class Body>
constexpr void refuse_lean_body_for() noexcept {
  using B = std::remove_cvref_t<Body>;
  static_assert(!std::is_same_v<B, file_range> || lean_body_for<P, B>,
                "tether: this server's buffer policy cannot queue a tether::file_range: file ranges are sent "
                "with sendfile(2) by tether::file_buffer only; declare the server with tether::file_buffer (or "
                "bounded<tether::file_buffer, ...>) (docs/buffers/file.md)");
  static_assert(std::is_same_v<B, file_range> || lean_body_for<P, B>,
                "tether: the lean engine sends bytes (std::string_view, std::string, const char*), "
                "tether::shared_bytes, tether::static_bytes and (under file_buffer) tether::file_range; convert "
                "the body (docs/engine.md)");
}

}  // namespace detail
TETHER_END_NAMESPACE
