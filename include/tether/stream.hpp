// tether/stream.hpp - a streamed reply that outlives its handler.
//
// A stream owns a request handle and a reply_hook. It picks the framing from the request
// and the headers set before start(), writes through the server's buffer policy, and
// reports a vanished client on every write instead of writing into the void:
//
//   | framing         | when                                           | end of body          |
//   |-----------------|------------------------------------------------|----------------------|
//   | chunked         | HTTP/1.1 (no Content-Length)                   | zero-length chunk    |
//   | close_delimited | HTTP/1.0 (keep-alive is refused for the reply) | connection closes    |
//   | known_length    | start_sized(): Content-Length set first         | after `length` bytes |
//
// A known-length stream refuses a write past its length (errc::length_mismatch, nothing
// sent); ending it short closes the connection, because the client could not tell a
// short body from a complete one otherwise.
/// @file
/// tether::basic_stream: a streamed reply (chunked, close-delimited or of known length).
/// See docs/push.md.
#pragma once

#include <tether/buffer_policy.hpp>
#include <tether/bytes.hpp>
#include <tether/config.hpp>
#include <tether/detail/owner.hpp>
#include <tether/error.hpp>
#include <tether/file.hpp>
#include <tether/reply_hook.hpp>
#include <tether/request.hpp>

#include <cstdint>
#include <new>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// How a stream's body is delimited on the wire: `chunked` (HTTP/1.1, Transfer-Encoding:
/// chunked, end() sends the last chunk), `close_delimited` (HTTP/1.0: the body ends when
/// the connection closes), `known_length` (start_sized: Content-Length, no chunking).
enum class framing : std::uint8_t { chunked, close_delimited, known_length };

namespace detail {
inline std::uint64_t body_size(std::string_view b) noexcept { return b.size(); }
inline std::uint64_t body_size(const shared_bytes& b) noexcept { return b.size(); }
inline std::uint64_t body_size(static_bytes b) noexcept { return b.view().size(); }
inline std::uint64_t body_size(const file_range& r) noexcept { return r.length; }
}  // namespace detail

/// A streamed reply, kept past its handler: write() chunks as they come, end() when done.
///
/// Made by start() (framing chosen by the request's version) or start_sized() (a declared
/// length), inside the handler. It holds a request handle, so it is safe to keep in a
/// list, a timer or a hub: once the client has gone every write returns errc::peer_gone
/// and touches nothing. Move-only; destroying the last reference to a stream that has not
/// ended ends it. Use it on its loop's thread. tether::stream is the type for
/// tether::server; another server uses basic_stream<my_server::config>.
template <class Config>
class basic_stream {
 public:
  /// The server_config of the server whose requests this stream answers.
  using config = Config;
  /// The request start() takes (request_t: basic_request, or the lean engine's).
  using request_type = request_t<Config>;
  /// The request handle the stream writes through (handle()).
  using handle_type = request_handle_t<Config>;

  basic_stream() noexcept = default;
  /// Takes over another stream's reply, which becomes empty.
  basic_stream(basic_stream&&) noexcept = default;
  /// Takes over another stream's reply; the one held before is released (ended if this was
  /// its last reference).
  basic_stream& operator=(basic_stream&&) noexcept = default;

  /// Starts a streamed reply on `req` (inside its handler); see the framing table.
  /// The request's server decides the stream's type: `tether::stream::start(req)` gives
  /// a `basic_stream<C>` for a request of any server (`basic_request<C>`).
  template <class C>
  static result<basic_stream<C>> start(basic_request<C>& req, int status = 200, const char* reason = nullptr) noexcept {
    return start_any<C>(req, status, reason);
  }
  /// The same for a request of a server on the lean engine (docs/engine.md).
  template <class C>
  static result<basic_stream<C>> start(basic_lean_request<C>& req, int status = 200,
                                       const char* reason = nullptr) noexcept {
    return start_any<C>(req, status, reason);
  }

 private:
  template <class C, class Request>
  static result<basic_stream<C>> start_any(Request& req, int status, const char* reason) noexcept {
    basic_stream<C> s;
    const auto [major, minor] = req.version();
    // HTTP/1.0 has no chunked encoding: the body ends when the connection closes, and
    // start() refuses keep-alive for it (request.hpp, refuse_keep_alive_for_unsized_http10).
    s.framing_ = (major == 1 && minor == 0) ? framing::close_delimited : framing::chunked;
    return s.begin(req, status, reason);
  }

 public:
  /// Starts a reply whose body is exactly `length` bytes (Content-Length, no chunking).
  /// The request's server decides the stream's type, as for start().
  template <class C>
  static result<basic_stream<C>> start_sized(basic_request<C>& req, std::uint64_t length, int status = 200,
                                             const char* reason = nullptr) noexcept {
    return sized_any<C>(req, length, status, reason);
  }
  /// The same for a request of a server on the lean engine (docs/engine.md).
  template <class C>
  static result<basic_stream<C>> start_sized(basic_lean_request<C>& req, std::uint64_t length, int status = 200,
                                             const char* reason = nullptr) noexcept {
    return sized_any<C>(req, length, status, reason);
  }

 private:
  template <class C, class Request>
  static result<basic_stream<C>> sized_any(Request& req, std::uint64_t length, int status, const char* reason) noexcept {
    basic_stream<C> s;
    char digits[24];  // decimal, without <charconv>: 20 digits at most, and the NUL
    char* p = digits + sizeof digits - 1;
    *p = '\0';
    std::uint64_t v = length;
    do {
      *--p = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    if (auto ec = req.output_headers().set("Content-Length", p)) return ec;
    s.framing_ = framing::known_length;
    s.remaining_ = length;
    return s.begin(req, status, reason);
  }

 public:

  /// Writes one chunk made of `bodies` (bytes, shared_bytes, static_bytes, file ranges:
  /// whatever the buffer policy accepts). Errors: errc::peer_gone (the client left;
  /// nothing was written), errc::would_block or errc::dropped (bounded policies),
  /// errc::length_mismatch (past a known length), errc::reply_finished (after end()).
  template <class... Bodies>
  [[nodiscard]] std::error_code write(Bodies&&... bodies) noexcept {
    if (framing_ == framing::known_length) {
      const std::uint64_t n = (std::uint64_t{0} + ... + detail::body_size(bodies));
      if (n > remaining_) return make_error_code(errc::length_mismatch);
      auto ec = handle_.send_chunk(std::forward<Bodies>(bodies)...);
      if (!ec) remaining_ -= n;
      return ec;
    }
    return handle_.send_chunk(std::forward<Bodies>(bodies)...);
  }

  /// Ends the body. A known-length stream ended short is closed instead (and reports
  /// errc::length_mismatch).
  [[nodiscard]] std::error_code end() noexcept {
    if (framing_ == framing::known_length && remaining_ != 0 && handle_.alive()) {
      handle_.close();
      return make_error_code(errc::length_mismatch);
    }
    return handle_.end();
  }

  /// True while the client is there and the body is not ended.
  bool alive() const noexcept { return handle_.alive(); }
  /// True once the client (or the server) went away before the end.
  bool peer_gone() const noexcept { return handle_.peer_gone(); }
  /// False for a default-constructed or moved-from stream.
  explicit operator bool() const noexcept { return bool(handle_); }

  /// How the body is delimited (see tether::framing).
  tether::framing framing() const noexcept { return framing_; }
  /// Bytes still owed on a known-length stream (0 for the other framings).
  std::uint64_t remaining() const noexcept { return remaining_; }
  /// Bytes queued for the client and not yet written.
  std::size_t queued_bytes() const noexcept { return handle_.queued_bytes(); }

  /// Runs `f()` when a bounded buffer policy's output is writable again. Replaces an
  /// earlier callback. The stream's callbacks live in a reply_hook allocated on the first
  /// on_writable() or on_end() (a stream without them carries a pointer): error
  /// std::errc::not_enough_memory if that allocation fails. Set on a stream that has
  /// already ended, a callback never runs.
  template <class F>
  [[nodiscard]] std::error_code on_writable(F&& f) noexcept {
    if (auto ec = make_hook()) return ec;
    hook_->on_writable(std::forward<F>(f));
    return {};
  }
  /// Runs `f(close_reason, bool aborted)` once when the stream ends: completed, or the
  /// client or server gone. Runs before the connection's close callback. Replaces an
  /// earlier callback; errors as on_writable().
  template <class F>
  [[nodiscard]] std::error_code on_end(F&& f) noexcept {
    if (auto ec = make_hook()) return ec;
    hook_->on_end(std::forward<F>(f));
    return {};
  }

  /// Closes the connection now (close_reason::closed_by_server).
  void close() noexcept { handle_.close(); }

  /// The request handle the stream writes through (to add a reply_hook, or to reach the
  /// connection).
  handle_type& handle() noexcept { return handle_; }
  /// The request handle the stream writes through.
  const handle_type& handle() const noexcept { return handle_; }

 private:
  result<basic_stream> begin(request_type& req, int status, const char* reason) noexcept {
    if (auto ec = req.start(status, reason)) return ec;
    handle_ = req.hold();
    if (!handle_) return make_error_code(errc::libevent_failure);
    // start() may end the exchange at once (libevent drops the body of a HEAD reply).
    if (!handle_.alive()) return make_error_code(handle_.peer_gone() ? errc::peer_gone : errc::reply_finished);
    return std::move(*this);
  }

  [[nodiscard]] std::error_code make_hook() noexcept {
    if (hook_) return {};
    hook_.reset(new (std::nothrow) reply_hook);
    if (!hook_) return std::make_error_code(std::errc::not_enough_memory);
    (void)handle_.attach(*hook_);  // an ended stream: the hook is simply never told
    return {};
  }

  template <class>
  friend class basic_stream;  // start() on one server's type makes another's

  handle_type handle_;
  detail::unique_owner<reply_hook> hook_;  // null until on_writable() or on_end()
  std::uint64_t remaining_ = 0;
  tether::framing framing_ = framing::chunked;
};

/// basic_stream for tether::server.
using stream = basic_stream<default_config>;

TETHER_END_NAMESPACE
