// tether/sse.hpp - Server-Sent Events (text/event-stream).
//
// An event is `id`, `event`, `retry` and multi-line `data`, framed as the HTML standard's
// event-stream format: one "field: value" line per field, a "data:" line per line of data,
// and a blank line to dispatch. Comments (": text") keep proxies and clients from timing
// the stream out. A stream starts with the headers that stop caching and proxy buffering.
//
//     auto s = tether::sse_stream::start(req);   // the request's server decides the type
//                                                // (or server_t::sse_stream::start(req))
//     s->send({.id = "7", .event = "tick", .data = "line 1\nline 2"});
//     s->comment("keep-alive");
//
// Broadcast: encode once with sse::encode() into shared_bytes and write the same bytes to
// every stream (zero-copy under reference_buffer, above 960 bytes); see hub.hpp.
/// @file
/// Server-Sent Events: tether::basic_sse_stream, tether::sse::event and
/// tether::sse::encode. See docs/push.md.
#pragma once

#include <tether/bytes.hpp>
#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/decimal.hpp>
#include <tether/detail/owner.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/request.hpp>
#include <tether/stream.hpp>

#include <event2/event.h>

#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

TETHER_BEGIN_NAMESPACE

namespace sse {

/// One event. Empty fields are omitted; `data` may hold several lines ("\n", "\r\n" or
/// "\r" separate them).
struct event {
  /// The `id:` line: what the browser sends back as Last-Event-ID when it reconnects. One
  /// line (a line break gives errc::invalid_argument); empty: no `id:` line.
  std::string_view id{};
  /// The `event:` line: the event type a browser dispatches on
  /// (`source.addEventListener("price", ...)`); empty: no line, a "message" event.
  std::string_view event{};
  /// The `data:` lines, one per line of `data`; empty: a single empty `data:` line.
  std::string_view data{};
  /// The `retry:` line: how long the browser waits before reconnecting; unset: no line.
  std::optional<std::chrono::milliseconds> retry{};
};

namespace detail {
constexpr bool single_line(std::string_view s) noexcept {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}
inline void field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.push_back('\n');
}
}  // namespace detail

/// Appends the wire form of `e` to `out`. Errors: errc::invalid_argument when `id` or
/// `event` holds a line break or NUL (it would end the field early), or `id` holds NUL.
[[nodiscard]] inline std::error_code encode_to(std::string& out, const event& e) {
  if (!detail::single_line(e.id) || !detail::single_line(e.event)) return make_error_code(errc::invalid_argument);
  if (!e.id.empty()) detail::field(out, "id", e.id);
  if (!e.event.empty()) detail::field(out, "event", e.event);
  if (e.retry) {
    char digits[24];
    detail::field(out, "retry", tether::detail::to_decimal(static_cast<std::int64_t>(e.retry->count()), digits));
  }
  std::string_view data = e.data;
  do {  // an event with empty data still carries one (empty) data line
    std::size_t eol = data.find_first_of("\r\n");
    std::string_view line = data.substr(0, eol);
    detail::field(out, "data", line);
    if (eol == std::string_view::npos) break;
    eol += (data[eol] == '\r' && eol + 1 < data.size() && data[eol + 1] == '\n') ? 2 : 1;
    data.remove_prefix(eol);
  } while (!data.empty());
  out.push_back('\n');
  return {};
}

/// The wire form of a comment (": text\n\n"); each line of `text` becomes a comment line.
inline std::string comment(std::string_view text) {
  std::string out;
  do {
    const std::size_t eol = text.find('\n');
    out.append(": ");
    out.append(text.substr(0, eol));
    out.push_back('\n');
    if (eol == std::string_view::npos) break;
    text.remove_prefix(eol + 1);
  } while (!text.empty());
  out.push_back('\n');
  return out;
}

/// Encodes `e` once into shared bytes, for sending the same event to many streams.
inline result<shared_bytes> encode(const event& e) {
  std::string out;
  if (auto ec = encode_to(out, e)) return ec;
  return shared_bytes(out);
}

/// The Last-Event-ID a reconnecting client sent, if any.
template <class Request>
std::optional<std::string_view> last_event_id(const Request& req) noexcept {
  return req.input_headers().find("Last-Event-ID");
}

}  // namespace sse

/// A text/event-stream reply.
template <class Config>
class basic_sse_stream {
 public:
  /// The request start() takes (tether::request for tether::server).
  using request_type = request_t<Config>;

  basic_sse_stream() noexcept = default;
  // The heartbeat (if any) points at the stream it writes to: a move re-points it.
  /// Takes over `o`'s stream and heartbeat; `o` becomes empty.
  basic_sse_stream(basic_sse_stream&& o) noexcept : stream_(std::move(o.stream_)), beat_(std::move(o.beat_)) {
    if (beat_) beat_->stream = &stream_;
  }
  /// Takes over `o`'s stream and heartbeat; the stream held before is released (ended if
  /// it was the last reference) and its heartbeat stopped.
  basic_sse_stream& operator=(basic_sse_stream&& o) noexcept {
    if (this != &o) {
      beat_.reset();
      stream_ = std::move(o.stream_);
      beat_ = std::move(o.beat_);
      if (beat_) beat_->stream = &stream_;
    }
    return *this;
  }

  /// Starts the event stream on `req`: Content-Type text/event-stream, no caching
  /// (Cache-Control: no-cache), no proxy buffering (X-Accel-Buffering: no). The
  /// request's server decides the stream's type: `tether::sse_stream::start(req)` gives
  /// a `basic_sse_stream<C>` for a request of any server (`basic_request<C>`).
  template <class C>
  static result<basic_sse_stream<C>> start(basic_request<C>& req) noexcept {
    return start_any<C>(req);
  }
  /// The same for a request of a server on the lean engine (docs/engine.md).
  template <class C>
  static result<basic_sse_stream<C>> start(basic_lean_request<C>& req) noexcept {
    return start_any<C>(req);
  }

 private:
  template <class C, class Request>
  static result<basic_sse_stream<C>> start_any(Request& req) noexcept {
    auto h = req.output_headers();
    if (auto ec = h.set("Content-Type", "text/event-stream")) return ec;
    (void)h.set("Cache-Control", "no-cache");
    (void)h.set("X-Accel-Buffering", "no");
    auto s = basic_stream<C>::start(req, 200);
    if (!s) return s.error();
    basic_sse_stream<C> out;
    out.stream_ = std::move(*s);
    return out;
  }

 public:
  /// Sends one event. Errors: as basic_stream::write, and errc::invalid_argument for a
  /// malformed event.
  [[nodiscard]] std::error_code send(const sse::event& e) {
    thread_local std::string wire;  // reused: no allocation per event once warm
    wire.clear();
    if (auto ec = sse::encode_to(wire, e)) return ec;
    return stream_.write(std::string_view(wire));
  }
  /// Sends an event encoded once for many streams (sse::encode).
  [[nodiscard]] std::error_code send(const shared_bytes& encoded) noexcept { return stream_.write(encoded); }
  /// Sends a comment line (": text").
  [[nodiscard]] std::error_code comment(std::string_view text = {}) { return stream_.write(std::string_view(sse::comment(text))); }

  /// Sends a comment every `interval` until the stream ends, so that idle proxies and
  /// clients keep the connection open. Replaces an earlier heartbeat. The heartbeat's
  /// timer lives in a small block allocated on the first call (a stream without one
  /// carries a pointer); errors: std::errc::not_enough_memory, errc::libevent_failure,
  /// or the stream's own (errc::peer_gone...) when it has ended.
  template <class Rep, class Period>
  [[nodiscard]] std::error_code heartbeat(event_loop& loop, std::chrono::duration<Rep, Period> interval) {
    if (!beat_) {
      beat_.reset(new (std::nothrow) beat_state);
      if (!beat_) return std::make_error_code(std::errc::not_enough_memory);
      beat_->stream = &stream_;
    }
    beat_->timer.reset(event_new(loop.native(), -1, EV_PERSIST, &on_beat, beat_.get()));
    if (!beat_->timer) {
      beat_.reset();
      return make_error_code(errc::libevent_failure);
    }
    if (auto ec = stream_.handle().attach(beat_->hook)) {
      beat_.reset();
      return ec;
    }
    // The heartbeat stops the moment the stream ends, before any further tick.
    beat_->hook.on_end([b = beat_.get()](close_reason, bool) { event_del(b->timer.get()); });
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(interval).count();
    const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    event_add(beat_->timer.get(), &tv);
    return {};
  }
  /// True while a heartbeat is armed (heartbeat() was called and the stream has not ended).
  bool heartbeat_active() const noexcept {
    return beat_ && beat_->timer && event_pending(beat_->timer.get(), EV_TIMEOUT, nullptr);
  }

  /// Writes already-encoded event-stream bytes.
  template <class... Bodies>
  [[nodiscard]] std::error_code write(Bodies&&... bodies) noexcept {
    return stream_.write(std::forward<Bodies>(bodies)...);
  }

  /// Stops the heartbeat and ends the stream. Errors: as basic_stream::end().
  [[nodiscard]] std::error_code end() noexcept {
    beat_.reset();
    return stream_.end();
  }
  /// True while the client is there and the stream has not ended.
  bool alive() const noexcept { return stream_.alive(); }
  /// True once the client (or the server) went away before the stream ended.
  bool peer_gone() const noexcept { return stream_.peer_gone(); }
  /// False for a default-constructed or moved-from stream.
  explicit operator bool() const noexcept { return bool(stream_); }

  /// The underlying stream, for on_writable(), on_end(), queued_bytes() and close().
  basic_stream<Config>& stream() noexcept { return stream_; }
  /// The request handle the stream writes through (to attach a reply_hook, for instance).
  typename basic_stream<Config>::handle_type& handle() noexcept { return stream_.handle(); }

 private:
  // Everything a heartbeat needs, at a stable address (the timer and the hook point here).
  struct beat_state {
    detail::unique_event timer;
    reply_hook hook;
    basic_stream<Config>* stream = nullptr;
  };

  static void on_beat(evutil_socket_t, short, void* self) noexcept {
    auto* b = static_cast<beat_state*>(self);
    if (!b->stream->alive()) {
      event_del(b->timer.get());
      return;
    }
    (void)b->stream->write(static_bytes(":\n\n"));
  }

  template <class>
  friend class basic_sse_stream;  // start() on one server's type makes another's

  basic_stream<Config> stream_;
  detail::unique_owner<beat_state> beat_;  // null until heartbeat()
};

/// basic_sse_stream for tether::server.
using sse_stream = basic_sse_stream<default_config>;

TETHER_END_NAMESPACE
