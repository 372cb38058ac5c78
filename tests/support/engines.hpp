// tests/support/engines.hpp - the server types an engine-neutral suite runs against.
//
// A suite parameterised over engines is written once, as a TEMPLATE_TEST_CASE over
// TT_ENGINE_SERVERS, with handlers taking `auto&` and handles named
// `typename Server::request_handle` (issue 9: every integration suite runs against both
// engines, parameterised, not copied).
#pragma once

#include <tether/tether.hpp>

#include <catch2/catch.hpp>

#include <string_view>
#include <type_traits>
#include <utility>

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

/// An engine chosen at run time, for suites whose test bodies are compiled once and run on
/// both engines (TT_ENGINES_TEST_CASE): only the server-side code that names a server type
/// is instantiated twice, through with_engine().
enum class engine_kind { evhttp, lean };

/// Calls `f(std::type_identity<Engine>{})` with the engine `kind` names, e.g. to build a
/// `tt::server_on<Engine, ...>` or (with the default policies) `tether::basic_server<...>`.
template <class F>
decltype(auto) with_engine(engine_kind kind, F&& f) {
  if (kind == engine_kind::lean) return std::forward<F>(f)(std::type_identity<tether::lean_engine>{});
  return std::forward<F>(f)(std::type_identity<tether::evhttp_engine>{});
}
}  // namespace tt

// TT_ENGINES_TEST_CASE("name", "[tags]") { ... uses `engine` (a tt::engine_kind) ... }
// registers "name - evhttp" and "name - lean", both running one body compiled once: the
// cheap form of a TEMPLATE_TEST_CASE over TT_ENGINE_SERVERS for suites whose bodies are
// mostly client-side code (a template test case compiles its whole body per engine).
#define TT_ENGINES_TEST_CASE(name, tags) TT_ENGINES_TEST_CASE_IMPL_(INTERNAL_CATCH_UNIQUE_NAME(tt_engines_body_), name, tags)
#define TT_ENGINES_TEST_CASE_IMPL_(fn, name, tags)                  \
  static void fn(tt::engine_kind);                                  \
  TEST_CASE(name " - evhttp", tags) { fn(tt::engine_kind::evhttp); } \
  TEST_CASE(name " - lean", tags) { fn(tt::engine_kind::lean); }     \
  static void fn([[maybe_unused]] tt::engine_kind engine)
