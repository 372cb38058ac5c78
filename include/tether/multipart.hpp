// tether/multipart.hpp - multipart/x-mixed-replace: a stream of parts, each replacing
// the last (camera feeds, live images, the PECL example's reply).
//
// Each part goes out as one chunk: the boundary line, its headers (Content-Type,
// Content-Length, ...), a blank line, the body and a CRLF. The body is queued as the
// server's buffer policy says, so a frame held in shared_bytes is sent to every viewer
// without a copy under reference_buffer.
//
// replace(frame) is the frame-replacing producer: it sends the frame now if the
// connection can take it; otherwise it keeps only this newest frame and sends it when
// the output drains (bounded policies), so a slow viewer skips frames instead of queuing
// them.
/// @file
/// tether::basic_multipart_stream: multipart/x-mixed-replace replies (camera feeds, live
/// images), with frame replacement for slow viewers. See docs/push.md.
#pragma once

#include <tether/bytes.hpp>
#include <tether/config.hpp>
#include <tether/error.hpp>
#include <tether/headers.hpp>
#include <tether/request.hpp>
#include <tether/stream.hpp>

#include <charconv>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// One part header line.
struct part_header {
  /// The header name ("Content-Type"); must be an RFC 9110 token.
  std::string_view name;
  /// The header value; must not hold CR or LF (errc::invalid_argument).
  std::string_view value;
};

/// A multipart/x-mixed-replace reply: a stream of parts (frames), each replacing the last
/// in the browser, as used for camera feeds and live images.
///
/// Made by start() inside the handler; keep it (a list, a hub, a timer) and send parts
/// with send_part(), or let replace() skip frames a slow viewer cannot take. Once the
/// client has gone every call returns errc::peer_gone. Move-only; use it on its loop's
/// thread. tether::multipart_stream is the type for tether::server.
template <class Config>
class basic_multipart_stream {
 public:
  /// The request start() takes.
  using request_type = request_t<Config>;

  basic_multipart_stream() noexcept = default;
  /// Takes over `o`'s reply and kept frame; `o` becomes empty.
  basic_multipart_stream(basic_multipart_stream&& o) noexcept
      : stream_(std::move(o.stream_)), boundary_(std::move(o.boundary_)), latest_(std::move(o.latest_)),
        latest_type_(std::move(o.latest_type_)), skipped_(o.skipped_) {
    (void)hook_writable();  // re-points the stream's existing hook: allocates nothing
  }
  /// Takes over `o`'s reply and kept frame; the reply held before is released (ended if
  /// this was its last reference).
  basic_multipart_stream& operator=(basic_multipart_stream&& o) noexcept {
    if (this != &o) {
      stream_ = std::move(o.stream_);
      boundary_ = std::move(o.boundary_);
      latest_ = std::move(o.latest_);
      latest_type_ = std::move(o.latest_type_);
      skipped_ = o.skipped_;
      (void)hook_writable();
    }
    return *this;
  }

  /// Starts the reply with Content-Type multipart/x-mixed-replace;boundary=`boundary`.
  /// Errors: errc::invalid_argument for a boundary that is empty, longer than 70
  /// characters or holds characters RFC 2046 does not allow.
  /// The request's server decides the stream's type: `tether::multipart_stream::start(req)`
  /// gives a `basic_multipart_stream<C>` for a request of any server (`basic_request<C>`).
  template <class C>
  static result<basic_multipart_stream<C>> start(basic_request<C>& req, std::string_view boundary = "boundarydonotcross") {
    return start_any<C>(req, boundary);
  }
  /// The same for a request of a server on the lean engine (docs/engine.md).
  template <class C>
  static result<basic_multipart_stream<C>> start(basic_lean_request<C>& req,
                                                 std::string_view boundary = "boundarydonotcross") {
    return start_any<C>(req, boundary);
  }

 private:
  template <class C, class Request>
  static result<basic_multipart_stream<C>> start_any(Request& req, std::string_view boundary) {
    if (!valid_boundary(boundary)) return errc::invalid_argument;
    std::string type = "multipart/x-mixed-replace;boundary=";
    type.append(boundary);
    if (auto ec = req.output_headers().set("Content-Type", type)) return ec;
    auto s = basic_stream<C>::start(req, 200);
    if (!s) return s.error();
    basic_multipart_stream<C> out;
    out.stream_ = std::move(*s);
    out.boundary_ = "--";
    out.boundary_.append(boundary);
    if (auto ec = out.hook_writable()) return ec;
    return out;
  }

 public:

  /// Sends one part with the given headers (Content-Length is added) and body.
  template <class Body>
  [[nodiscard]] std::error_code send_part(std::initializer_list<part_header> headers, Body&& body) {
    thread_local std::string head;  // reused: no allocation per part once warm
    if (auto ec = part_head(head, headers, detail::body_size(body))) return ec;
    return stream_.write(std::string_view(head), std::forward<Body>(body), static_bytes("\r\n"));
  }

  /// The frame-replacing producer: sends `frame` as a part of `content_type` now, or, if
  /// the client is slow (would_block/dropped), keeps it as the newest frame to send as
  /// soon as the output drains; an older kept frame is skipped.
  [[nodiscard]] std::error_code replace(shared_bytes frame, std::string_view content_type) {
    if (!stream_.alive()) return stream_.peer_gone() ? make_error_code(errc::peer_gone) : make_error_code(errc::reply_finished);
    if (!latest_.empty()) {  // still waiting for room: this frame replaces the kept one
      ++skipped_;
      latest_ = std::move(frame);
      latest_type_.assign(content_type);
      return {};
    }
    const auto ec = send_part({{"Content-Type", content_type}}, frame);
    if (ec == errc::would_block || ec == errc::dropped) {
      latest_ = std::move(frame);
      latest_type_.assign(content_type);
      return {};
    }
    return ec;
  }

  /// Frames replaced before they could be sent (slow client).
  std::uint64_t skipped_frames() const noexcept { return skipped_; }

  /// Ends the reply with the closing boundary.
  [[nodiscard]] std::error_code end() {
    std::string close = "\r\n" + boundary_ + "--\r\n";
    (void)stream_.write(std::string_view(close));
    return stream_.end();
  }

  /// True while the client is there and the reply has not ended.
  bool alive() const noexcept { return stream_.alive(); }
  /// True once the client (or the server) went away before the reply ended.
  bool peer_gone() const noexcept { return stream_.peer_gone(); }
  /// False for a default-constructed or moved-from stream.
  explicit operator bool() const noexcept { return bool(stream_); }
  /// Writes raw bytes into the multipart body (already framed parts).
  template <class... Bodies>
  [[nodiscard]] std::error_code write(Bodies&&... bodies) noexcept {
    return stream_.write(std::forward<Bodies>(bodies)...);
  }

  /// The underlying stream (queued_bytes(), on_end(), close()).
  basic_stream<Config>& stream() noexcept { return stream_; }
  /// The request handle the stream writes through.
  request_handle_t<Config>& handle() noexcept { return stream_.handle(); }

 private:
  static bool valid_boundary(std::string_view b) noexcept {
    if (b.empty() || b.size() > 70 || b.back() == ' ') return false;
    for (char c : b) {
      const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
      if (!ok) return false;
    }
    return true;
  }

  [[nodiscard]] std::error_code part_head(std::string& head, std::initializer_list<part_header> headers, std::uint64_t length) const {
    head.assign(boundary_);
    head.append("\r\n");
    for (const auto& h : headers) {
      if (!detail::is_header_name(h.name) || !detail::is_header_value(h.value)) return make_error_code(errc::invalid_argument);
      head.append(h.name);
      head.append(": ");
      head.append(h.value);
      head.append("\r\n");
    }
    char digits[24];
    const auto r = std::to_chars(digits, digits + sizeof digits, length);
    head.append("Content-Length: ");
    head.append(digits, r.ptr);
    head.append("\r\n\r\n");
    return {};
  }

  // When a bounded output drains, the kept frame (if any) goes out. (An unbounded policy
  // never refuses a part, so there is nothing to hear and no hook to allocate.)
  [[nodiscard]] std::error_code hook_writable() noexcept {
    if constexpr (!Config::buffer_policy::flow::bounded) {
      return {};
    } else {
      if (!stream_) return {};
      return stream_.on_writable([this] {
        if (latest_.empty()) return;
        shared_bytes frame = std::move(latest_);
        latest_ = shared_bytes{};
        const auto ec = send_part({{"Content-Type", latest_type_}}, frame);
        if (ec == errc::would_block || ec == errc::dropped) latest_ = std::move(frame);
      });
    }
  }

  template <class>
  friend class basic_multipart_stream;  // start() on one server's type makes another's

  basic_stream<Config> stream_;
  std::string boundary_;
  shared_bytes latest_;
  std::string latest_type_;
  std::uint64_t skipped_ = 0;
};

/// basic_multipart_stream for tether::server.
using multipart_stream = basic_multipart_stream<default_config>;

TETHER_END_NAMESPACE
