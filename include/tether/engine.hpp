// tether/engine.hpp - the engine policy: the layer beneath requests that reads bytes,
// parses, dispatches and writes.
/// @file
/// tether::engine (the concept), tether::evhttp_engine (libevent's evhttp, the default)
/// and tether::lean_engine (tether's own HTTP/1.1 core on libevent's loop). The engine is
/// the fourth template argument of basic_server; see docs/engine.md.
//
//     tether::basic_server<tether::eager_close<>, tether::copy_buffer,
//                          tether::close_function<>, tether::lean_engine> srv{loop};
//     // or, the same type:
//     tether::lean_server srv{loop};               // <tether/lean_server.hpp>
//
// Handlers are written once against the server's request type (server_t::request&, or
// auto& in a lambda) and run unchanged on either engine.
#pragma once

#include <tether/config.hpp>

#include <concepts>
#include <string_view>
#include <type_traits>

TETHER_BEGIN_NAMESPACE

/// libevent's evhttp parses, dispatches and writes: the seed's semantics, every feature
/// of tether, and the default engine of basic_server.
struct evhttp_engine {
  /// The engine's name, for logs and benchmark tables.
  static constexpr std::string_view name = "evhttp";
};

/// tether's own HTTP/1.1 server on libevent's event loop: raw events on the socket,
/// tether::http1::request_parser, one write per read batch, reading on in every phase
/// (docs/engine.md lists what it serves today).
struct lean_engine {
  /// The engine's name, for logs and benchmark tables.
  static constexpr std::string_view name = "lean";
};

/// An engine policy: one of the engines tether ships (evhttp_engine, lean_engine).
/// Engines are not user-extensible yet: a server is specialised for each.
template <class E>
concept engine = std::same_as<E, evhttp_engine> || std::same_as<E, lean_engine>;

/// True if `E` is tether's own HTTP/1.1 engine.
template <class E>
inline constexpr bool is_lean_engine = std::is_same_v<E, lean_engine>;

TETHER_END_NAMESPACE
