// tether/detail/lean_transport.hpp - how a lean server's connections read and write when
// they are not plain sockets: a table of functions a transport (tls.hpp: OpenSSL) fills,
// and the per-connection session it keeps.
//
// The lean engine calls ::recv, ::send, ::writev and ::sendfile on its sockets. A server
// with a transport (use_tls) gives each accepted socket a session instead, and the engine
// reads, writes and ends it through this table: the one branch on the plain path is
// "does this connection have a session". Nothing here names OpenSSL; tls.hpp stays the
// only header that includes it.
#pragma once

#include <tether/config.hpp>

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// What a transport's read or write needs before it can be tried again (it returned -1
/// with errno EAGAIN): TLS may have to write to read (a handshake flight, a ticket) and
/// to read to write (a handshake message from the peer).
enum lean_io_wait : std::uint8_t {
  lean_wait_none = 0,
  lean_wait_readable = 1,  ///< the socket must be readable
  lean_wait_writable = 2,  ///< the socket must be writable
};

/// A lean server's transport: a session per accepted socket, and its I/O. Every function
/// returns as the system call it stands for, errno included:
///  * read: > 0 bytes read; 0 the peer ended the stream (TLS: close_notify, or a FIN
///    without it); -1 with errno EAGAIN (then *wait says on what), ECONNRESET, EPIPE, or
///    EPROTO (the peer broke the protocol: a failed handshake, a bad record).
///  * write: bytes of `iov` written (a prefix: the rest is written by a later call, which
///    must start at the same byte); -1 as for read. Retried writes must not shrink.
struct lean_transport {
  /// A session on the accepted socket `fd`; null if none can be made (the socket is closed).
  void* (*open)(void* arg, int fd) noexcept = nullptr;
  ssize_t (*read)(void* session, char* buf, std::size_t n, lean_io_wait* wait) noexcept = nullptr;
  ssize_t (*write)(void* session, const iovec* iov, int n, lean_io_wait* wait) noexcept = nullptr;
  /// True if the session holds input already taken from the socket: the socket will not
  /// say it is readable for it.
  bool (*pending)(void* session) noexcept = nullptr;
  /// Ends and frees the session (not the socket). `clean`: the connection ends with
  /// nothing unwritten and the peer is not known to be gone, so the transport may say
  /// goodbye (TLS: close_notify).
  void (*close)(void* session, bool clean) noexcept = nullptr;
  /// When the server is done with `arg` (the transport is replaced, or the server dies).
  void (*release)(void* arg) noexcept = nullptr;
  void* arg = nullptr;
};

}  // namespace detail
TETHER_END_NAMESPACE
