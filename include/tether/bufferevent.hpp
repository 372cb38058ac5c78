// tether/bufferevent.hpp - a non-owning view of a bufferevent.
//
// evhttp owns the bufferevent of every connection. This view exposes what is safe to do
// with it from outside: read its state and buffers, and cap its per-call I/O. It
// cannot free it or replace its callbacks: evhttp relies on both (see
// docs/close-lifecycle.md for why enabling EV_READ by hand crashes a held request).
/// @file
/// tether::bufferevent_ref: a non-owning view of a connection's bufferevent (state,
/// buffers, per-call I/O caps).
#pragma once

#include <tether/buffer.hpp>
#include <tether/config.hpp>

#include <event2/bufferevent.h>

#include <cstddef>

TETHER_BEGIN_NAMESPACE

/// A non-owning view of a connection's bufferevent (basic_connection::bufferevent()), to
/// inspect its buffers and cap its per-call I/O. evhttp owns the bufferevent: the view does
/// not free it, cannot replace its callbacks, and is valid only while the connection is
/// open (do not keep it past the handler or handle it came from).
class bufferevent_ref {
 public:
  /// Views `b`, which must be non-null and outlive the view.
  explicit bufferevent_ref(bufferevent* b) noexcept : b_(b) {}

  /// Bytes received and not yet consumed.
  buffer_ref input() const noexcept { return buffer_ref(bufferevent_get_input(b_)); }
  /// Bytes queued and not yet written to the kernel.
  buffer_ref output() const noexcept { return buffer_ref(bufferevent_get_output(b_)); }

  /// True if reading is enabled (EV_READ): libevent is watching the socket for input.
  bool reading() const noexcept { return (bufferevent_get_enabled(b_) & EV_READ) != 0; }
  /// True if writing is enabled (EV_WRITE): output is waiting for the socket.
  bool writing() const noexcept { return (bufferevent_get_enabled(b_) & EV_WRITE) != 0; }

  /// The socket (or -1).
  int fd() const noexcept { return static_cast<int>(bufferevent_getfd(b_)); }

  /// Caps how much one read or write moves (libevent's per-call limits).
  void set_max_single_read(std::size_t n) noexcept { bufferevent_set_max_single_read(b_, n); }
  /// Caps how many bytes one write moves to the kernel.
  void set_max_single_write(std::size_t n) noexcept { bufferevent_set_max_single_write(b_, n); }

  /// The libevent bufferevent, for calls tether does not wrap. Never free it, and never
  /// change its callbacks or enable EV_READ on a held request (docs/close-lifecycle.md).
  bufferevent* native() const noexcept { return b_; }

 private:
  bufferevent* b_;
};

TETHER_END_NAMESPACE
