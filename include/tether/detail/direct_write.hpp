// tether/detail/direct_write.hpp - a streamed chunk written straight to an idle socket.
//
// evhttp queues every chunk on the connection's bufferevent and asks for write interest:
// epoll_ctl to add EPOLLOUT, one loop iteration later writev, then epoll_ctl to remove
// EPOLLOUT once the output is empty. Three system calls per delivery, and a hub fans one
// event out to thousands of connections. When the bufferevent's output is empty (the
// usual case for a push stream whose client keeps up), nothing is waiting ahead of the
// chunk: it may go to the socket at once with one non-blocking sendmsg, framing
// included. Only what the kernel does not take goes to the bufferevent, in order, and
// libevent writes it as it would have written the whole chunk.
//
// The rules that keep this invisible to evhttp and to the rest of tether:
//  - Only into an empty output: anything already queued goes first (the caller checks
//    nothing else is needed; this function refuses a non-empty output).
//  - Only on a plain socket: a TLS bufferevent must encrypt what it sends (the server
//    knows: server_core::plain_socket).
//  - When the socket takes nothing (EAGAIN, or an error: EPIPE, ECONNRESET...), the chunk
//    is left to the caller, who queues it through evhttp as if this had not been tried:
//    libevent's own write then waits, or meets the same error and closes the connection
//    through evhttp's one close path (evhttp_error_cb, then the close callback, exactly
//    once). This function never closes anything.
//  - The rest of a partial write is appended to the output, which arms the bufferevent's
//    write event (and its write timeout) as evhttp's own append would.
#pragma once

#include <tether/config.hpp>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// How many pieces of a chunk one sendmsg carries: the chunk's head, up to this many
/// minus two chains of the payload, and the closing CRLF. A payload in more chains goes
/// the bufferevent's way.
inline constexpr int direct_write_iovecs = 16;

/// What direct_write() did with a chunk.
enum class direct_write_result : unsigned char {
  not_applied,  ///< nothing touched: queue the chunk the usual way
  taken,        ///< written, or written in part with the rest queued on the output
  broken,       ///< part was written but the rest could not be queued (out of memory):
                ///< the body on the wire is cut, the caller must close the connection
};

/// Writes `chunk` (all of it, framed as a chunk of a chunked body when `chunked`) to the
/// socket of `bev` if its output is empty. `not_applied`, touching nothing, when it does
/// not apply (output not empty, payload in too many chains, no socket) or when the socket
/// took no byte (full, or failed: libevent meets the failure itself once the caller has
/// queued the chunk). `taken` when the chunk went out, or went out in part with the rest
/// queued on the output. `chunk` is left empty unless `not_applied`.
inline direct_write_result direct_write(bufferevent* bev, evbuffer* chunk, bool chunked) noexcept {
  using enum direct_write_result;
  evbuffer* out = bufferevent_get_output(bev);
  if (evbuffer_get_length(out) != 0) return not_applied;
  const std::size_t n = evbuffer_get_length(chunk);
  if (n == 0) return not_applied;
  const evutil_socket_t fd = bufferevent_getfd(bev);
  if (fd < 0) return not_applied;

  iovec iov[direct_write_iovecs];
  char head[24];
  int used = 0;
  std::size_t head_len = 0;
  if (chunked) {
    const int h = std::snprintf(head, sizeof head, "%zx\r\n", n);
    if (h <= 0) return not_applied;
    head_len = static_cast<std::size_t>(h);
    iov[used++] = {head, head_len};
  }
  static constexpr char crlf[] = "\r\n";
  const int room = direct_write_iovecs - used - (chunked ? 1 : 0);
  // evbuffer_iovec has iovec's layout on POSIX (libevent documents it), but its fields
  // are copied one by one rather than relying on that.
  evbuffer_iovec pieces[direct_write_iovecs];
  const int chains = evbuffer_peek(chunk, -1, nullptr, pieces, room);
  if (chains <= 0 || chains > room) return not_applied;
  for (int i = 0; i < chains; ++i) iov[used++] = {pieces[i].iov_base, pieces[i].iov_len};
  if (chunked) iov[used++] = {const_cast<char*>(crlf), 2};
  const std::size_t total = head_len + n + (chunked ? 2 : 0);

  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<std::size_t>(used);
  ssize_t sent;
  do {
    sent = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  // Nothing written: EAGAIN (the socket's buffer is full), or an error (EPIPE,
  // ECONNRESET...). The caller queues the chunk the usual way; libevent writes it when it
  // can, or meets the same error and closes the connection (see the file comment).
  if (sent <= 0) return not_applied;
  std::size_t done = static_cast<std::size_t>(sent);
  if (done == total) {
    evbuffer_drain(chunk, n);
    return taken;
  }
  // The rest, in order: what is left of the head, of the payload, of the CRLF.
  bool ok = true;
  if (done < head_len) {
    ok = evbuffer_add(out, head + done, head_len - done) == 0;
    done = 0;
  } else {
    done -= head_len;
  }
  const std::size_t from_payload = done < n ? done : n;
  evbuffer_drain(chunk, from_payload);
  done -= from_payload;
  ok = ok && evbuffer_add_buffer(out, chunk) == 0;
  ok = ok && (!chunked || evbuffer_add(out, crlf + done, 2 - done) == 0);
  if (!ok) {
    evbuffer_drain(chunk, evbuffer_get_length(chunk));
    return broken;
  }
  // The output has data now: libevent writes it when the socket is writable (the append
  // armed the write event if writing is enabled; make sure it is).
  bufferevent_enable(bev, EV_WRITE);
  return taken;
}

}  // namespace detail
TETHER_END_NAMESPACE
