// tether/request_handler.hpp - what a request handler is.
/// @file
/// The tether::request_handler concept: what a request handler must be. See
/// docs/concepts/request_handler.md.
#pragma once

#include <tether/config.hpp>
#include <tether/method.hpp>

#include <concepts>
#include <type_traits>

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

/// The methods a handler answers on its own, whatever its route declares: a handler type
/// may say `static constexpr tether::method_set own_methods = ...;` (cors_handler answers
/// OPTIONS, the CORS preflight). A server routing such a handler adds them to the route's
/// methods and to its allowed methods, so that libevent lets them through. Empty for
/// every other handler, at no cost.
template <class H>
inline constexpr method_set handler_own_methods = [] {
  if constexpr (requires { std::remove_cvref_t<H>::own_methods; }) return method_set(std::remove_cvref_t<H>::own_methods);
  else return method_set{};
}();

TETHER_END_NAMESPACE
