// tests/support/engines.hpp - the server types an engine-neutral suite runs against.
//
// A suite parameterised over engines is written once, as a TEMPLATE_TEST_CASE over
// TT_ENGINE_SERVERS, with handlers taking `auto&` and handles named
// `typename Server::request_handle` (issue 9: every integration suite runs against both
// engines, parameterised, not copied).
#pragma once

#include <tether/tether.hpp>

#include <string_view>

/// The default policies on each engine.
#define TT_ENGINE_SERVERS tether::server, tether::lean_server
/// The engines themselves, for suites that build servers with other policies
/// (tt::server_on<Engine, BufferPolicy>).
#define TT_ENGINES tether::evhttp_engine, tether::lean_engine

namespace tt {
/// "evhttp" or "lean", for INFO lines.
template <class Server>
constexpr std::string_view engine_name() {
  return Server::engine_type::name;
}
template <class Server>
constexpr bool is_lean() {
  return tether::is_lean_engine<typename Server::engine_type>;
}

/// One close callback's report, as the suites record it.
struct recorded_close {
  tether::close_reason reason;
  bool aborted;
};

/// A server on `Engine` with `BufferPolicy` (and the default close policy and callback).
template <class Engine, class BufferPolicy = tether::copy_buffer, class ClosePolicy = tether::eager_close<>>
using server_on = tether::basic_server<ClosePolicy, BufferPolicy, tether::close_function<>, Engine>;

/// The socket a request arrived on, on either engine (to shrink its buffers).
template <class Request>
int socket_of(Request& req) {
  if constexpr (requires { req.connection().bufferevent(); }) return req.connection().bufferevent()->fd();
  else return req.connection().native();
}
}  // namespace tt
