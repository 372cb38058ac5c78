// tether/close_policy.hpp - how a server notices that a client hung up.
//
// libevent's evhttp notices a hang-up while it reads a request, while it writes a reply
// and while a keep-alive connection idles. It does not notice one while the application
// holds a request without replying (a long-poll): evhttp_handle_request disables EV_READ
// before calling the handler, so the socket sits in CLOSE_WAIT (or, after a RST,
// invisible to ss) until the application writes. A close policy decides what tether
// does about that, and about input that arrives while nobody reads it.
//
// The family, side by side:
//
//   | policy            | held request (long-poll)        | streaming           | cost                 |
//   |-------------------|---------------------------------|---------------------|----------------------|
//   | eager_close<N>    | notices FIN/RST/timeout at once | notices; bounds     | nothing unless a     |
//   |   (default)       | (guarded EV_READ); closes a     | unread input at N   | request is held or   |
//   |                   | client that sends > N bytes     |                     | streamed             |
//   | native_close      | blind until the app replies     | libevent's own      | nothing              |
//
// Both leave requests answered inside their handler exactly as libevent handles them.
/// @file
/// Close policies: how a server notices a client that hung up while its request is held or
/// streamed (tether::eager_close, tether::native_close). See docs/close-lifecycle.md.
#pragma once

#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/detail/connection_core.hpp>

#include <concepts>
#include <cstddef>

TETHER_BEGIN_NAMESPACE

/// What a close policy's hooks act through: one tracked connection.
///
/// Every member is a small sequence of libevent calls; none allocates.
class connection_control {
 public:
  /// Made by tether for each hook call; a policy only receives one.
  explicit connection_control(detail::connection_core& c) noexcept : c_(&c) {}

  /// Re-enables reading on a held request with tether's guard as the read callback:
  /// a FIN, RST or timeout is noticed at once; bytes that arrive stay queued for evhttp
  /// (pipelined requests are served after the reply); more than `limit` queued bytes
  /// close the connection with close_reason::limit_exceeded.
  void watch_input(std::size_t limit) noexcept { c_->watch_input(limit); }

  /// Kept for policies written before server_limits: they do nothing now. The server's
  /// timeouts are tether's own and none has a read deadline while a handler has the
  /// request (held or streaming); a client that stops reading is cut by send_timeout.
  void suspend_timeouts() noexcept { c_->suspend_timeouts(); }
  /// Kept for policies written against earlier versions; does nothing (see above).
  void suspend_read_timeout() noexcept { c_->suspend_read_timeout(); }
  /// Kept for policies written against earlier versions; does nothing (see above).
  void restore_timeouts() noexcept { c_->restore_timeouts(); }

  /// Bytes received and not yet parsed by evhttp.
  std::size_t input_size() const noexcept { return c_->input_size(); }
  /// Bytes queued for the client and not yet written to the kernel.
  std::size_t output_size() const noexcept { return c_->output_size(); }

  /// Closes the connection now; close callbacks run before this returns.
  void close(close_reason why) noexcept { c_->close(why); }

  /// The connection's bufferevent, for policies that need a call tether does not wrap.
  /// It belongs to evhttp: never free it or replace its callbacks outside on_hold.
  bufferevent* native_bufferevent() const noexcept { return c_->bev(); }

 private:
  detail::connection_core* c_;
};

/// A type `P` models close_policy if it provides these static hooks, all `noexcept`
/// and returning void. tether calls them only for tracked requests:
/// 1. `P::on_hold(ctl)`: a handler returned without replying and kept a handle;
/// 2. `P::on_resume(ctl)`: the first reply call on a request that went through on_hold;
/// 3. `P::on_stream_start(ctl)`: a streamed reply is about to start;
/// 4. `P::on_stream_write(ctl)`: a chunk is about to be queued (ctl.close() here makes
///    the send report the hang-up instead).
///
/// @see docs/concepts/close_policy.md for the table and a user-written policy.
template <class P>
concept close_policy = requires(connection_control& ctl) {
  { P::on_hold(ctl) } noexcept -> std::same_as<void>;          // 1. held request
  { P::on_resume(ctl) } noexcept -> std::same_as<void>;        // 2. reply after a hold
  { P::on_stream_start(ctl) } noexcept -> std::same_as<void>;  // 3. stream starts
  { P::on_stream_write(ctl) } noexcept -> std::same_as<void>;  // 4. each chunk
};

/// Detects a hang-up in every phase, and bounds what a client can make the server buffer.
///
/// * Held request: re-arms reading with a guard read callback (see watch_input); no
///   deadline of the server applies while the request is held.
/// * Streaming: libevent already watches the socket; the policy closes a client whose
///   unread input passes `InputLimit` before each chunk.
/// * The server's own limits (server_limits::max_unread_input, send_timeout...) apply in
///   every phase as well; the smaller bound cuts first.
/// * Half-close: a client that sends its request and then shutdown(SHUT_WR) is treated as
///   gone (close_reason::peer_closed), as libevent itself does while it writes a reply.
///
/// @tparam InputLimit bytes a client may send while its request is held or streamed
///         (pipelined requests included) before it is disconnected.
template <std::size_t InputLimit = 64 * 1024>
struct eager_close {
  /// Bytes a client may send while its request is held or streamed before it is cut off
  /// (close_reason::limit_exceeded).
  static constexpr std::size_t input_limit = InputLimit;
  /// Watches the held request's socket, so a FIN or RST is noticed at once, and bounds the
  /// bytes it may queue meanwhile to `InputLimit`.
  static void on_hold(connection_control& ctl) noexcept {
    ctl.suspend_timeouts();
    ctl.watch_input(InputLimit);
  }
  /// A reply is being sent to a held request: nothing left to undo.
  static void on_resume(connection_control& ctl) noexcept { ctl.restore_timeouts(); }
  /// A stream starts: libevent watches the socket while it writes, nothing to add.
  static void on_stream_start(connection_control& ctl) noexcept { ctl.suspend_read_timeout(); }
  /// Before each chunk: closes a client whose unread input passed `InputLimit`, so the
  /// write reports errc::limit_exceeded instead of queueing for it.
  static void on_stream_write(connection_control& ctl) noexcept {
    if (ctl.input_size() > InputLimit) ctl.close(close_reason::limit_exceeded);
  }
};

/// libevent's own behaviour, nothing added: a held request does not notice a hang-up
/// until the application replies. Handles stay safe (sends after a hang-up are checked
/// no-ops) and a detached request is still freed, but a long-poll whose client left
/// keeps its socket and memory until the application writes to it.
struct native_close {
  /// Does nothing: the held request's socket is not watched (libevent's behaviour).
  static void on_hold(connection_control&) noexcept {}
  /// Does nothing.
  static void on_resume(connection_control&) noexcept {}
  /// Does nothing: libevent watches the socket while it writes.
  static void on_stream_start(connection_control&) noexcept {}
  /// Does nothing: unread input is bounded only by the server's max_unread_input.
  static void on_stream_write(connection_control&) noexcept {}
};

TETHER_END_NAMESPACE
