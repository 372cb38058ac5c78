// tether/listener.hpp - one listening socket of a server, as listeners() lists it.
/// @file
/// tether::listener: one listening socket of a server (either engine), as
/// basic_server::listeners() lists it and stop_listening(const listener&) takes it back.
#pragma once

#include <tether/config.hpp>

#include <cstdint>
#include <string>

// libevent's handle of a socket an evhttp listens on (event2/http.h). Named here only:
// the lean engine has no evhttp, and its listeners leave the field null.
struct evhttp_bound_socket;

TETHER_BEGIN_NAMESPACE

/// One listening socket of a server, as basic_server::listeners() lists it (on both
/// engines).
///
/// A value, not an owner: the server owns the socket. Pass it (or a copy) back to
/// basic_server::stop_listening(const listener&) to close exactly that socket; a copy
/// whose socket is already closed is reported as such, never dereferenced.
struct listener {
  /// The address given to bind(), or empty for a socket adopted with accept().
  std::string address;
  /// The port the socket is bound to.
  std::uint16_t port = 0;
  /// The evhttp engine: libevent's handle of the socket (evhttp_bound_socket), owned by
  /// the server. It identifies the socket; use it only while the listener is in
  /// listeners(). Null on the lean engine, which has no evhttp.
  evhttp_bound_socket* native = nullptr;
  /// The listening socket's descriptor, owned by the server (both engines): for
  /// getsockopt() and the like while the listener is in listeners(), never to close.
  int fd = -1;
};

TETHER_END_NAMESPACE
