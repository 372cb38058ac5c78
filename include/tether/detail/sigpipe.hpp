// tether/detail/sigpipe.hpp - no client can kill the process with SIGPIPE.
//
// libevent writes to sockets with writev() and no MSG_NOSIGNAL. A write to a connection
// the peer has reset raises SIGPIPE, whose default action ends the process: a client
// that sends a request, shuts down its sending side and then resets the connection makes
// the reply's first write fail with EPIPE, and the signal kills the server. Linux has no
// per-socket opt-out, so the disposition is process-wide.
//
// The rule (docs/security.md): when an event_loop or a server is created, SIGPIPE is set
// to SIG_IGN if, and only if, its disposition is still the default. An application that
// installed its own handler, or already ignores it, keeps what it chose; its handler
// returns and the write fails with EPIPE, which tether handles like a reset.
#pragma once

#include <tether/config.hpp>

#include <csignal>
#include <signal.h>

TETHER_BEGIN_NAMESPACE
namespace detail {

inline void ignore_sigpipe_unless_handled() noexcept {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) != 0) return;
  if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) return;
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGPIPE, &ignore, nullptr);
}

}  // namespace detail
TETHER_END_NAMESPACE
