// tether/drain.hpp - what a graceful drain does (basic_server::drain), its options and
// its report.
//
// A drain stops a server without cutting anything a client is owed:
//
//   | what is open when the drain starts     | what the drain does                         |
//   |----------------------------------------|---------------------------------------------|
//   | listening sockets                      | closed at once: no new connection           |
//   | a whole reply being written            | finishes; the connection then closes        |
//   | a request being read or handled        | answered by its handler, `Connection: close`|
//   | a held request (long-poll)             | answered: 503 and Retry-After (configurable)|
//   | a chunked stream (SSE, multipart, ...) | last words (a hook), then the final chunk   |
//   | an HTTP/1.0 stream (close-delimited)   | ended: the close is the end of its body     |
//   | an idle keep-alive connection          | FIN, its input read until the client closes |
//
// Every close callback it causes reports close_reason::server_shutdown. When every
// connection is closed, or at the deadline (what is still open is then closed hard and
// counted), the drain is done: it reports, and by default makes the loop's run() return.
/// @file
/// Graceful drain: tether::drain_report and tether::basic_drain_options (basic_server::drain).
/// See docs/drain.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/inplace_function.hpp>

#include <cstddef>

TETHER_BEGIN_NAMESPACE

/// What a drain did, handed to drain_options::on_done and kept by the server
/// (basic_server::drain_result()).
struct drain_report {
  /// Held requests (long-polls) the drain answered.
  std::size_t held_answered = 0;
  /// Streamed replies the drain ended (final chunk, or close for HTTP/1.0).
  std::size_t streams_ended = 0;
  /// Connections with no request in progress that the drain ended gracefully.
  std::size_t idle_closed = 0;
  /// Connections still open at the deadline, closed hard.
  std::size_t closed_at_deadline = 0;
  /// True if the deadline passed before every connection had closed on its own.
  bool deadline_passed = false;
  /// From drain() to done.
  std::chrono::milliseconds took{0};
};

/// How a server drains (basic_server::set_drain_options). `Handle` is the server's
/// request_handle type; use `server::drain_options`.
template <class Handle>
struct basic_drain_options {
  /// The status a held request is answered with.
  int held_status = 503;
  /// The Retry-After value (seconds) sent with it; 0 sends none.
  std::chrono::seconds retry_after{5};
  /// The body sent with it.
  const char* held_body = "server shutting down\n";
  /// Called for each chunked stream just before the drain ends it, with a handle to its
  /// request: the place for a last event (an SSE `event: shutdown`, a `retry:` hint).
  /// Not called for a stream whose reply has a Content-Length (it is left to finish).
  inplace_function<void(Handle&)> last_words{};
  /// Called once when the drain is done, with what it did.
  inplace_function<void(const drain_report&)> on_done{};
  /// Make the loop's run() return when the drain is done (event_base_loopbreak).
  bool stop_loop = true;
};

TETHER_END_NAMESPACE
