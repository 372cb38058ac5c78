// tether/detail/lean_connection.hpp - one connection of the lean engine: its socket and
// events, its read buffer and parser, its pending output, its exchange and close callback.
//
// Reading stays on in every phase (EV_READ|EV_PERSIST|EV_CLOSED on one event): a FIN or a
// RST is seen while the head is read, while a handler holds the request, while a reply is
// written and while the connection idles. Unread input is bounded in every phase: what is
// read while a request is held or a reply waits for the socket stays in the read buffer,
// which grows to at most the head limit plus server_limits::max_unread_input.
//
// Output is corked per read batch: replies to every request parsed from one read are
// appended to one buffer and leave in one send(). EV_WRITE is armed only when the socket
// refuses bytes.
#pragma once

#include <tether/close_callback.hpp>
#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/detail/exchange_watcher.hpp>
#include <tether/detail/lean_output.hpp>
#include <tether/detail/owner.hpp>
#include <tether/http1/request_parser.hpp>
#include <tether/limits.hpp>

#include <event2/event.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// Where a lean exchange is (the lean engine's counterpart of detail::phase).
enum class lean_phase : std::uint8_t {
  none,      ///< no request (reading a head, or idle)
  pending,   ///< a handler has the request (or a handle holds it): no reply yet
  streaming, ///< a streamed reply was started and not ended
  done,      ///< the reply is queued
  aborted,   ///< the connection closed before the reply was complete
};

/// What the connection's deadline means when it passes.
enum class lean_deadline : std::uint8_t { none, head, body, idle, send };

/// The part of a lean server its connections reach: the loop, the limits, the cached
/// clock, the list of open connections and the reply path (lean_server.hpp).
template <class Config>
struct lean_core;

/// What a connection of a server with a bounded buffer policy keeps for its flow control
/// (bounded<High, Low, Action>): the lean counterpart of flow_state.
struct lean_flow {
  std::string parked;           // slow_consumer::coalesce: the newest chunk's wire bytes
  event* slow_timer = nullptr;  // slow_consumer::disconnect<Ms>: the deadline
  bool has_parked = false;
  bool paused = false;          // a chunk was refused, dropped or parked above the high mark
};
/// ... and with an unbounded policy: nothing.
struct lean_no_flow {};

/// One connection. Allocated at accept, freed when it is closed and no handle refers to
/// it; nothing is allocated per request once its buffers have grown to the sizes the
/// client uses.
template <class Config>
struct lean_connection : watcher_list {  // the exchange's watchers: reply hooks, hubs, rooms
  using callback_type = typename Config::close_callback;
  using flow_type = std::conditional_t<Config::buffer_policy::flow::bounded, lean_flow, lean_no_flow>;

  lean_core<Config>* core = nullptr;
  int fd = -1;
  void* session = nullptr;  // the server's transport's state for this socket (TLS); null: plain
  event* rd = nullptr;  // EV_READ | EV_PERSIST | EV_CLOSED, added from accept to close
  event* wr = nullptr;  // EV_WRITE | EV_PERSIST, added only while the socket refuses bytes
  lean_connection* prev = nullptr;  // the core's list of open connections
  lean_connection* next = nullptr;

  // ----- input -----
  unique_array<char> in;
  std::size_t in_cap = 0;
  std::size_t in_len = 0;   // bytes in `in`
  std::size_t in_pos = 0;   // first byte the parser has not consumed
  std::size_t head_at = 0;  // where the current request's head starts (while it is in flight)
  bool head_live = false;   // from the head's parse to its handler's return: views into `in`
  bool eof = false;         // the client sent FIN (here: in head_live's padding)
  // (Also in that padding.) A session's I/O may need the other direction first
  // (lean_transport.hpp): a read that waits for writability (EV_WRITE is armed for it), a
  // write that waits for readability (the read event, always on, retries it).
  bool read_wants_write = false;
  bool write_wants_read = false;
  // Only while a message is being parsed or handled (936 bytes for 100 fields): idle
  // connections and streams give it back to the core's spares (lean_core::park_parser).
  http1::request_parser* parser = nullptr;
  std::string body;         // the current request's body (capacity kept across requests)

  // ----- output -----
  std::string out;          // bytes queued for the socket (capacity kept)
  std::size_t out_off = 0;  // where the part of `out` after every segment starts (written before it)
  // Only once a reference or a file range was queued (lean_output.hpp): the output in
  // order, then `out` from out_off. Empty in the common case.
  std::vector<lean_segment> segs;
  std::size_t seg_head = 0;     // first segment not written yet
  std::uint64_t seg_bytes = 0;  // bytes left in segs[seg_head...]
  [[no_unique_address]] flow_type flow;
  std::string reply_headers;  // "Name: value\r\n" lines added for the current reply
  // What the application put in request::output() (the body's first bytes), allocated on
  // its first append and given back with the reply: most requests never use it.
  std::unique_ptr<std::string> output;
  bool writing = false;       // `wr` is added

  // ----- the exchange -----
  lean_phase ph = lean_phase::none;
  bool held = false;          // the handler returned without a reply, keeping a handle
  bool in_handler = false;    // a handler (or process()) is running for this connection
  bool keep_alive = true;     // the current request allows another after it
  bool is_head = false;       // the current request is HEAD
  bool chunked_reply = false; // the current streamed reply is chunked (HTTP/1.1)
  bool sized_reply = false;   // ... has the application's Content-Length (start_sized())
  std::uint8_t minor = 1;     // the current request's HTTP minor version
  std::uint32_t seq = 0;      // current request's number: handles of earlier ones are stale
  std::uint32_t refs = 0;     // handles + running dispatches
  bool close_after_write = false;
  close_reason after_write_reason = close_reason::completed;

  // ----- deadline (checked by the core's sweep timer) -----
  std::int64_t deadline_ms = 0;
  lean_deadline deadline_kind = lean_deadline::none;

  // ----- the end -----
  bool closed = false;
  bool has_callback = false;
  callback_type callback{};
  sockaddr_storage peer{};
  char peer_text[INET6_ADDRSTRLEN] = {};

  void add_ref() noexcept { ++refs; }

  /// Frees the connection once it is closed and nobody refers to it.
  void release() noexcept {
    if (--refs == 0 && closed) destroy();
  }
  // Out of line: g++ 12 at -O2 inlines nested add_ref()/release() pairs and, unable to see
  // that the outer reference keeps `refs` above zero through the inner release, reports
  // the outer release's `--refs` as a use after the inner one's delete
  // (-Werror=use-after-free). Freeing is the cold path: once per connection.
  [[gnu::noinline, gnu::cold]] void destroy() noexcept { delete this; }

  std::string_view peer_address() noexcept {
    if (peer_text[0] == '\0') {
      if (peer.ss_family == AF_INET)
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, peer_text, sizeof peer_text);
      else if (peer.ss_family == AF_INET6)
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&peer)->sin6_addr, peer_text, sizeof peer_text);
    }
    return peer_text;
  }
  std::uint16_t peer_port() const noexcept {
    if (peer.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&peer)->sin_port);
    if (peer.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_port);
    return 0;
  }

  std::size_t unread() const noexcept { return in_len - in_pos; }
  std::size_t pending_output() const noexcept { return static_cast<std::size_t>(seg_bytes) + (out.size() - out_off); }
};

}  // namespace detail
TETHER_END_NAMESPACE
