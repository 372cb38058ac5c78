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
}  // namespace tt
