// tether/server_event.hpp - what a server reports about itself rather than about one
// request: accepting paused and resumed when descriptors run out, requests refused before
// any handler ran, Redis lost and back (a redis_hub reports through the server's sink).
/// @file
/// Server events (tether::server_event) and the default sink, tether::log_server_event.
/// See docs/security.md.
//
// A server hands each event to one sink (basic_server::on_event). The default sink,
// log_server_event, writes one line to stderr when accepting pauses and nothing else, so
// a flood of hostile requests cannot flood the log. None of these events is on the path
// of a well-formed request.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/inplace_function.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>

TETHER_BEGIN_NAMESPACE

/// What happened (see server_event for the fields each kind fills in).
enum class server_event_kind : std::uint8_t {
  /// accept() failed for lack of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM). The server
  /// stopped accepting on every listening socket; new connections wait in the kernel's
  /// listen queue while it retries from a timer, 10 ms after the failure and then twice
  /// as long each time, up to 1 s. Reported once per episode, however many retries fail.
  accept_paused,
  /// Accepting works again: a retry was not followed by another failure for one retry
  /// period. Ends the episode that accept_paused began.
  accept_resumed,
  /// A request was answered with 400 or 501 and `Connection: close` before any handler
  /// ran, because its head was ambiguous or malformed (docs/security.md). On the lean
  /// engine, every refusal of its parser but the limits (413, 414, 431): 400, 501 or 505.
  request_rejected,
  /// A redis_hub (redis_hub.hpp, docs/redis.md) lost Redis, or could not reach it when it
  /// started: messages are neither published nor received until it is back; local
  /// subscribers keep their streams. The hub reconnects from a timer, `duration` after
  /// the failure and then twice as long each time, up to its maximum. Reported once per
  /// episode, however many attempts fail.
  redis_lost,
  /// A redis_hub is connected and caught up again: it ends the episode redis_lost began
  /// (`duration`: how long Redis was away; `retries`: the attempts that failed; `count`:
  /// the publishes that could not be relayed meanwhile).
  redis_restored,
};

/// One event of a server. Strings are borrowed and valid only during the call.
struct server_event {
  /// What happened; it says which of the fields below are filled in.
  server_event_kind kind;
  /// accept_paused: why accept() failed (std::errc::too_many_files_open, ...);
  /// redis_lost: why the connection ended or could not be made.
  std::error_code error{};
  /// accept_paused, redis_lost: the delay before the first retry; accept_resumed,
  /// redis_restored: how long the episode lasted.
  std::chrono::milliseconds duration{};
  /// accept_resumed, redis_restored: how many retries failed during the episode.
  std::uint32_t retries = 0;
  /// request_rejected: the status sent (400 or 501; on the lean engine also 505).
  int status = 0;
  /// request_rejected: what was wrong, a short phrase ("duplicate Content-Length");
  /// redis_lost, redis_restored: the Redis server ("127.0.0.1:6379"); redis_lost adds
  /// hiredis's own words after it.
  std::string_view what{};
  /// request_rejected: the client's address ("127.0.0.1", "::1").
  std::string_view peer_address{};
  /// request_rejected: the client's port.
  std::uint16_t peer_port = 0;
  /// redis_restored: the publishes that could not be relayed during the episode.
  std::uint64_t count = 0;
};

/// A short, stable name for `k` ("accept_paused", ...).
constexpr std::string_view to_string(server_event_kind k) noexcept {
  switch (k) {
    case server_event_kind::accept_paused: return "accept_paused";
    case server_event_kind::accept_resumed: return "accept_resumed";
    case server_event_kind::request_rejected: return "request_rejected";
    case server_event_kind::redis_lost: return "redis_lost";
    case server_event_kind::redis_restored: return "redis_restored";
  }
  return "unknown";
}

/// The default sink: one line on stderr for accept_paused, redis_lost and
/// redis_restored; the other events are ignored.
inline void log_server_event(const server_event& e) noexcept {
  if (e.kind == server_event_kind::redis_lost) {
    std::fprintf(stderr, "tether: lost Redis (%.*s); retrying in %lld ms and then less often\n", int(e.what.size()),
                 e.what.data(), static_cast<long long>(e.duration.count()));
    return;
  }
  if (e.kind == server_event_kind::redis_restored) {
    std::fprintf(stderr, "tether: Redis %.*s is back after %lld ms; %llu publishes could not be relayed meanwhile\n",
                 int(e.what.size()), e.what.data(), static_cast<long long>(e.duration.count()),
                 static_cast<unsigned long long>(e.count));
    return;
  }
  if (e.kind != server_event_kind::accept_paused) return;
  std::string why;
  try {
    why = e.error.message();
  } catch (...) {
  }
  std::fprintf(stderr,
               "tether: accept() failed (%s); not accepting new connections, retrying in %lld ms and then "
               "less often (at most every 1 s) until it succeeds\n",
               why.c_str(), static_cast<long long>(e.duration.count()));
}

/// What a server keeps its sink in: any callable with `void(const server_event&)` of at
/// most three pointers, stored in place. An empty sink silences every event.
using server_event_sink = inplace_function<void(const server_event&), 3 * sizeof(void*)>;

TETHER_END_NAMESPACE
