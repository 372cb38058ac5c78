// tether/request_handler.hpp - what a request handler is.
/// @file
/// The tether::request_handler concept: what a request handler must be. See
/// docs/concepts/request_handler.md.
#pragma once

#include <tether/config.hpp>

#include <concepts>

TETHER_BEGIN_NAMESPACE

/// A type `H` models request_handler for requests of type `Request` if it can be called
/// as `h(request)` with a `Request&`. Its result is ignored. An exception that escapes it
/// is caught at the libevent boundary: the client gets a 500 (or, mid-stream, the
/// connection is closed) and the exception is reported on stderr.
///
/// `Request` is the server's request type (`basic_server<...>::request`), which depends
/// on the server's policies: a lambda taking `auto&` fits every server.
template <class H, class Request>
concept request_handler = std::invocable<H&, Request&>;

TETHER_END_NAMESPACE
