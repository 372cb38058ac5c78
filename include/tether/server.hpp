// tether/server.hpp - an HTTP server: one evhttp on one event loop, with its policies.
/// @file
/// tether::basic_server (tether::server is the default configuration): binding, routes,
/// limits, timeouts and events of one HTTP server on one loop. See docs/settings.md.
#pragma once

#include <tether/buffer_policy.hpp>
#include <tether/close_callback.hpp>
#include <tether/close_policy.hpp>
#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/accept_backoff.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/connection_state.hpp>
#include <tether/detail/invoke_handler.hpp>
#include <tether/detail/listen_address.hpp>
#include <tether/detail/owner.hpp>
#include <tether/detail/path_handlers.hpp>
#include <tether/detail/push_fwd.hpp>
#include <tether/detail/router_fwd.hpp>
#include <tether/detail/sigpipe.hpp>
#include <tether/detail/vec.hpp>
#include <tether/drain.hpp>
#include <tether/engine.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/limits.hpp>
#include <tether/listener.hpp>
#include <tether/method.hpp>
#include <tether/request.hpp>
#include <tether/request_handler.hpp>
#include <tether/server_event.hpp>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// Parses a TCP port from text: digits only, 1..65535.
inline result<std::uint16_t> parse_port(std::string_view text) noexcept {
  if (text.empty() || text.size() > 5) return errc::invalid_argument;
  unsigned v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return errc::invalid_argument;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v == 0 || v > 65535) return errc::invalid_argument;
  return static_cast<std::uint16_t>(v);
}

template <close_policy ClosePolicy, buffer_policy BufferPolicy, close_callback CloseCallback, class Engine>
class basic_virtual_host;

namespace detail {
struct group_access;  // server_group.hpp: a group's accept balance reaches its servers' listeners
}  // namespace detail

namespace detail {
/// What a server knows of a virtual host attached to it: the server detaches it before it
/// frees its own evhttp (which would free the virtual host's too).
struct virtual_host_link {
  evhttp* http = nullptr;
  bool parent_gone = false;
};

/// The policies of a basic_server, checked in order with one sentence each. A failed
/// check stands the default in for the faulty policy, so that nothing else about the
/// server fails to compile: the sentence is the only error.
template <class P>
struct models_buffer_policy : std::bool_constant<buffer_policy<P>> {};

template <class ClosePolicy, class BufferPolicy, class CloseCallback>
struct server_policy_checks {
  // bounded<> with bad marks is not instantiated: its marks get their own sentence.
  static constexpr bool bad_marks = bad_bounded_marks<BufferPolicy>::value;
  static constexpr bool buffer_ok =
      std::conjunction_v<std::bool_constant<!bad_marks>, models_buffer_policy<BufferPolicy>>;

  static_assert(close_policy<ClosePolicy>,
                "tether::basic_server<ClosePolicy, ...>: ClosePolicy is not a close_policy: it needs the four static "
                "noexcept hooks on_hold, on_resume, on_stream_start and on_stream_write, each void(tether::"
                "connection_control&); add the missing one, or use tether::eager_close<> or tether::native_close "
                "(docs/concepts/close_policy.md)");
  static_assert(!close_policy<ClosePolicy> || !bad_marks,
                "tether::bounded: the low-water mark must not exceed the high-water mark (Low <= High) and the "
                "high-water mark must be positive: producers resume at Low, so lower Low or raise High "
                "(docs/buffers/bounded.md)");
  static_assert(!close_policy<ClosePolicy> || bad_marks || buffer_ok,
                "tether::basic_server<..., BufferPolicy, ...>: BufferPolicy is not a buffer_policy: it needs "
                "static std::error_code append(evbuffer*, std::string_view) noexcept and a member type flow "
                "(tether::unbounded_flow); derive from tether::copy_buffer, reference_buffer or file_buffer, or use "
                "tether::bounded<...> (docs/concepts/buffer_policy.md)");
  static_assert(!close_policy<ClosePolicy> || !buffer_ok || close_callback<CloseCallback>,
                "tether::basic_server<..., CloseCallback>: CloseCallback is not a close_callback: it must be "
                "callable as f(const tether::close_event&) and nothrow-move-constructible; use "
                "tether::close_function<> (any small callable) or a type whose operator() takes "
                "const tether::close_event& (docs/concepts/close_callback.md)");

  using config = server_config<std::conditional_t<close_policy<ClosePolicy>, ClosePolicy, eager_close<>>,
                               std::conditional_t<buffer_ok, BufferPolicy, copy_buffer>,
                               std::conditional_t<close_callback<CloseCallback>, CloseCallback, close_function<>>>;
};

}  // namespace detail

/// An HTTP/1.x server over libevent's evhttp.
///
/// @tparam ClosePolicy   how hang-ups are noticed (close_policy: eager_close<>, native_close)
/// @tparam BufferPolicy  how reply bytes are queued (buffer_policy: copy_buffer, ...)
/// @tparam CloseCallback the per-connection close callback's type (close_callback), stored
///                       by value in each connection's state
///
/// Not movable: libevent holds pointers to it. Construct it after its event_loop and let
/// it die before the loop. Destroying it closes every connection; their close callbacks
/// run (close_reason::server_shutdown) and every handle reports errc::peer_gone.
///
///     tether::event_loop loop;
///     tether::server srv{loop};
///     srv.fallback([](tether::request& req) { req.reply(200, "hello"); });
///     if (auto port = srv.bind("127.0.0.1", 8080); !port) return 1;
///     loop.run();
///
/// Requests reach handlers in one of two styles, which mix on one server: a router of
/// static routes (router.hpp; paths, methods and handlers known to the compiler), and
/// runtime routes (route(path, handler), route(path, methods, handler)). Each path
/// belongs to one of them; what no path matches goes to fallback(). See docs/routing.md.
///
/// A policy that does not model its concept is one compile error, a sentence that names
/// the requirement, the fix and the page (detail::server_policy_checks).
///
/// @tparam Engine        the engine policy (engine.hpp): evhttp_engine, the default, is
///                       this class; lean_engine is tether's own HTTP/1.1 core, a
///                       specialisation in <tether/lean_server.hpp> (docs/engine.md)
template <class ClosePolicy = eager_close<>, class BufferPolicy = copy_buffer, class CloseCallback = close_function<>,
          class Engine = evhttp_engine>
class basic_server {
  static_assert(engine<Engine>,
                "tether::basic_server<..., Engine>: Engine is not an engine: use tether::evhttp_engine (the default) "
                "or tether::lean_engine (docs/engine.md)");
  static_assert(!engine<Engine> || std::is_same_v<Engine, evhttp_engine>,
                "tether::basic_server<..., tether::lean_engine>: include <tether/lean_server.hpp> (or "
                "<tether/tether.hpp>), which defines the lean engine's server (docs/engine.md)");

 public:
  /// The engine this server runs on.
  using engine_type = Engine;
  /// The three policies as one type. Helpers take it as their template argument
  /// (basic_sse_stream<my_server::config>, basic_long_poll<my_server::config>, ...).
  using config = typename detail::server_policy_checks<ClosePolicy, BufferPolicy, CloseCallback>::config;
  /// The type a handler receives (as `request&`); tether::request for tether::server.
  using request = basic_request<config>;
  /// What request::hold() returns: the request kept past its handler.
  using request_handle = basic_request_handle<config>;
  /// What request::connection() returns: a view of the connection, for on_close() and the peer.
  using connection = basic_connection<config>;

  // ----- helpers of this server's policies -----------------------------------------
  //
  // Name the server type once and take every helper from it: changing a policy then
  // changes one line. Each helper is defined by its own header (or <tether/tether.hpp>);
  // naming one here costs nothing until it is used. See docs/push.md.
  //
  //     using server_t = tether::basic_server<tether::eager_close<>, tether::reference_buffer>;
  //     server_t::hub<> clients;                       // a hub of server_t::sse_stream
  //     if (auto s = server_t::sse_stream::start(req)) (void)clients.subscribe(std::move(*s));

  /// A streamed reply (stream.hpp) of this server.
  using stream = basic_stream<config>;
  /// A Server-Sent Events reply (sse.hpp) of this server.
  using sse_stream = basic_sse_stream<config>;
  /// A multipart/x-mixed-replace reply (multipart.hpp) of this server.
  using multipart_stream = basic_multipart_stream<config>;
  /// A long-poll waiting room (long_poll.hpp) for this server's requests.
  using long_poll = basic_long_poll<config>;
  /// A broker endpoint (broker_endpoint.hpp) serving this server's requests.
  using broker_endpoint = basic_broker_endpoint<config>;
  /// A hub (hub.hpp) of this server's streams: `hub<>` holds SSE streams,
  /// `hub<multipart_stream>` multipart ones, `hub<stream>` plain streams.
  template <class Stream = sse_stream>
  using hub = basic_hub<Stream>;
  /// A virtual host (virtual_host.hpp) of this server.
  // Named through config: its policies stand in for faulty ones, so that a policy error is
  // the one sentence of server_policy_checks and not a constraint failure here as well.
  using virtual_host = basic_virtual_host<typename config::close_policy, typename config::buffer_policy,
                                          typename config::close_callback, Engine>;

  /// Creates the server on `loop`. Throws std::bad_alloc if libevent cannot.
  explicit basic_server(event_loop& loop) : basic_server(loop.native()) {}
  /// Creates the server on a loop the application runs itself. Like event_loop's
  /// constructor, it ignores SIGPIPE unless the application chose a disposition for it
  /// (docs/security.md).
  explicit basic_server(event_base* base)
      : http_((detail::note_libevent_use(), evhttp_new(base))), backoff_(core_, base, http_.get()) {
    if (!http_) throw std::bad_alloc{};
    detail::ignore_sigpipe_unless_handled();
    core_.base = base;
    core_.scratch = evbuffer_new();
    if (!core_.scratch) throw std::bad_alloc{};
    // Unrouted requests get tether's 404 rather than libevent's, so that they are
    // screened (docs/security.md) like every other request.
    handlers_.answer_not_found();
    install_limits();
  }
  /// Creates the server with the routes of `table` installed (see route(router)).
  /// Throws std::bad_alloc if libevent cannot allocate.
  template <router_type Router>
  basic_server(event_loop& loop, Router&& table) : basic_server(loop.native(), std::forward<Router>(table)) {}
  /// As above, on a loop the application runs itself. Throws std::bad_alloc if libevent
  /// cannot allocate.
  template <router_type Router>
  basic_server(event_base* base, Router&& table) : basic_server(base) {
    // A new server routes no path yet, so only an allocation can fail.
    if (route(std::forward<Router>(table))) throw std::bad_alloc{};
  }

  basic_server(const basic_server&) = delete;
  basic_server& operator=(const basic_server&) = delete;

  ~basic_server() {
    // evhttp_free would free the virtual hosts' evhttps, which they own.
    for (auto* v : vhosts_) {
      evhttp_remove_virtual_host(http_.get(), v->http);
      v->parent_gone = true;
    }
    drain_tick_.reset();
    drain_deadline_.reset();
    backoff_.shutdown();
    core_.shutting_down = true;
    http_.reset();  // evhttp_free: closecb for every open connection
    core_.guards.stop();
    detail::connection_state<config>::destroy_all(core_);
    evbuffer_free(core_.scratch);
  }

  // ----- listening ----------------------------------------------------------------

  /// Listens on `address` (an IPv4 or IPv6 literal: "0.0.0.0", "127.0.0.1", "::", "::1")
  /// and `port` (0 picks a free port). Returns the port actually bound.
  ///
  /// Errors: errc::invalid_address, or the system's reason (address in use,
  /// permission denied, ...).
  result<std::uint16_t> bind(cstring_view address, std::uint16_t port, int backlog = 1024) {
    int err = 0;
    const int fd = detail::open_listener(address.view(), port, backlog, err);
    if (fd < 0) {
      if (err == 0) return errc::invalid_address;
      return std::error_code(err, std::system_category());
    }
    auto bound = adopt_listener(fd, std::string(address.view()));
    if (!bound) ::close(fd);
    return bound;
  }

  /// Serves a socket the application bound itself (from systemd, SO_REUSEPORT setups,
  /// a port picked before privileges are dropped, tests): a TCP socket (IPv4 or IPv6)
  /// that is listening already, or only bound, in which case the server calls
  /// listen(fd, backlog) (libevent alone would wait on it forever). Returns its port.
  ///
  /// On success the server owns the socket and closes it when it stops listening on it
  /// or dies; on error the socket stays the caller's. Errors: errc::invalid_argument for
  /// a socket that is not a TCP stream, or the system's reason (bad descriptor, ...).
  result<std::uint16_t> accept(int fd, int backlog = 1024) {
    if (const int err = detail::ready_adopted_socket(fd, backlog))
      return err < 0 ? make_error_code(errc::invalid_argument) : std::error_code(err, std::system_category());
    return adopt_listener(fd, {});
  }

  /// Stops listening on every socket and closes them; open connections are served as
  /// before.
  void stop_listening() noexcept {
    for (auto& l : listeners_) evhttp_del_accept_socket(http_.get(), l.native);
    listeners_.clear();
  }
  /// Stops listening on one socket, an element of listeners() or a copy of one, and
  /// closes it; the other sockets and every open connection (including those accepted
  /// on this socket) are served as before.
  /// Errors: errc::invalid_argument if the server does not listen on it (any more).
  [[nodiscard]] std::error_code stop_listening(const listener& which) noexcept {
    for (auto it = listeners_.begin(); it != listeners_.end(); ++it) {
      if (it->native != which.native) continue;
      evhttp_del_accept_socket(http_.get(), it->native);
      listeners_.erase(it);
      return {};
    }
    return make_error_code(errc::invalid_argument);
  }
  /// Stops listening on every socket bound to `port` (bind() returned it; an IPv4 and an
  /// IPv6 socket may share it), as stop_listening(const listener&) does for each.
  /// Errors: errc::invalid_argument if no socket of the server is bound to `port`.
  [[nodiscard]] std::error_code stop_listening(std::uint16_t port) noexcept {
    const auto before = listeners_.size();
    listeners_.erase_if([&](const listener& l) {
      if (l.port != port) return false;
      evhttp_del_accept_socket(http_.get(), l.native);
      return true;
    });
    return listeners_.size() != before ? std::error_code{} : make_error_code(errc::invalid_argument);
  }

  /// The sockets the server listens on: a read-only list with size(), empty(), [i],
  /// front(), back() and begin()/end() (tether's own, not a std::vector: server.hpp does
  /// without `<vector>`).
  const detail::vec<listener>& listeners() const noexcept { return listeners_; }
  /// The port of the first listening socket (0 if none).
  std::uint16_t port() const noexcept { return listeners_.empty() ? 0 : listeners_.front().port; }

  // ----- handlers -----------------------------------------------------------------

  /// Calls `handler` for requests whose path is exactly `path` (percent-decoded, query
  /// ignored), whatever their method.
  /// Errors (route_error: its message() names the path): errc::invalid_argument if `path`
  /// is already routed (by a runtime route or a router); nothing is changed then.
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, Handler&& handler) {
    using H = std::decay_t<Handler>;
    if constexpr (!request_handler<H, request>) {
      return refuse_handler<H>();
    } else {
      if (auto ec = handlers_.template route<H>(path, std::forward<Handler>(handler)))
        return route_error(ec, path.view(), why_not_routed(ec));
      add_allowed_methods(handler_own_methods<H>);  // e.g. OPTIONS for a cors_handler
      return {};
    }
  }

  /// Calls `handler` for requests on `path` whose method is in `methods` (GET implies
  /// HEAD); other methods get 405 with an Allow header. `methods` are added to the
  /// server's allowed methods (see allow_methods).
  /// Errors (route_error: its message() names the path): errc::invalid_argument if `path`
  /// is already routed or `methods` is empty; nothing is changed then.
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, method_set methods, Handler&& handler) {
    using H = std::decay_t<Handler>;
    if constexpr (!request_handler<H, request>) {
      return refuse_handler<H>();
    } else {
      if (methods.empty())
        return route_error(make_error_code(errc::invalid_argument), path.view(), detail::no_methods_why);
      methods = methods | handler_own_methods<H>;  // e.g. OPTIONS for a cors_handler
      if (auto ec = handlers_.template route<H>(path, methods, std::forward<Handler>(handler)))
        return route_error(ec, path.view(), why_not_routed(ec));
      add_allowed_methods(methods);
      return {};
    }
  }

  /// Installs a router of static routes (router.hpp): one libevent callback per distinct
  /// path, each switching over methods at compile time; 405 with an Allow header for
  /// other methods. The server keeps the router (moved or copied in) until it dies, and
  /// adds its methods to the allowed methods. All or nothing.
  /// Errors (route_error: its message() names the path): errc::invalid_argument if one of
  /// its paths is already routed (by a runtime route or another router).
  template <router_type Router>
  [[nodiscard]] route_error route(Router&& table) {
    using router_t = std::remove_cvref_t<Router>;
    if constexpr (!detail::router_answers<request, router_t>::value) {
      // A route's handler cannot take this server's request: the error names the route.
      (void)sizeof(detail::router_handler_checks<request, router_t>);
      return {};
    } else {
      const char* failed = nullptr;
      auto methods = handlers_.route_router(std::forward<Router>(table), failed);
      if (!methods) return route_error(methods.error(), failed ? failed : "", why_not_routed(methods.error()));
      add_allowed_methods(*methods);
      return {};
    }
  }

  /// Stops routing `path` (routed at run time or by a router). Errors (route_error):
  /// errc::invalid_argument if it was not routed.
  [[nodiscard]] route_error unroute(cstring_view path) {
    if (auto ec = handlers_.unroute(path)) return route_error(ec, path.view(), detail::not_routed_why);
    return {};
  }

  /// Calls `handler` for every request no route matched (without one the server answers
  /// 404 and closes the connection, as libevent does). A second call replaces the first.
  template <class Handler>
  void fallback(Handler&& handler) {
    using H = std::decay_t<Handler>;
    if constexpr (!request_handler<H, request>) {
      (void)refuse_handler<H>();
    } else {
      handlers_.template fallback<H>(std::forward<Handler>(handler));
      add_allowed_methods(handler_own_methods<H>);  // e.g. OPTIONS for a cors_handler
    }
  }

  // ----- limits (limits.hpp, docs/limits.md) --------------------------------------
  //
  // Every connection is bounded from accept to close, in every phase, whether tether
  // tracks it or not; every bound is on by default. Set them before bind(): timeouts and
  // tether's own checks apply at once, libevent's header and body checks (the backstops
  // behind tether's) to connections accepted afterwards.

  /// Replaces every limit at once.
  void set_limits(const server_limits& l) noexcept { core_.guards.apply(l); }
  /// The limits in force.
  const server_limits& limits() const noexcept { return core_.guards.limits(); }

  /// Request line and header fields, in bytes (431 past it).
  void set_max_header_bytes(std::size_t bytes) noexcept { update([&](server_limits& l) { l.max_header_bytes = bytes; }); }
  /// A request body, in bytes (413 past it).
  void set_max_body_bytes(std::size_t bytes) noexcept { update([&](server_limits& l) { l.max_body_bytes = bytes; }); }
  /// Time to receive a request head, from its first byte (or from accept): 408 past it.
  void set_head_timeout(std::chrono::milliseconds t) noexcept { update([&](server_limits& l) { l.head_timeout = t; }); }
  /// Time to receive a request body, from the end of its head: 408 past it.
  void set_body_timeout(std::chrono::milliseconds t) noexcept { update([&](server_limits& l) { l.body_timeout = t; }); }
  /// Time a keep-alive connection may wait for its next request.
  void set_idle_timeout(std::chrono::milliseconds t) noexcept { update([&](server_limits& l) { l.idle_timeout = t; }); }
  /// Time a reply's pending output may go without progress before the client is cut.
  void set_send_timeout(std::chrono::milliseconds t) noexcept { update([&](server_limits& l) { l.send_timeout = t; }); }
  /// Bytes a client may send that nobody reads yet (a request is handled, held or answered).
  void set_max_unread_input(std::size_t bytes) noexcept { update([&](server_limits& l) { l.max_unread_input = bytes; }); }
  /// Bytes of a streamed reply that may wait for one client.
  void set_max_pending_output(std::size_t bytes) noexcept {
    update([&](server_limits& l) { l.max_pending_output = bytes; });
  }
  /// Open connections; the next one gets 503.
  void set_max_connections(std::size_t n) noexcept { update([&](server_limits& l) { l.max_connections = n; }); }

  /// All four timeouts at once (head, body, idle, send); zero means tether::unlimited.
  /// Held requests and streams have no read deadline whatever `t` is.
  template <class Rep, class Period>
  void set_timeout(std::chrono::duration<Rep, Period> t) noexcept {
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(t);
    const std::chrono::milliseconds none = unlimited;
    const std::chrono::milliseconds v = ms.count() > 0 ? ms : none;
    update([&](server_limits& l) { l.head_timeout = l.body_timeout = l.idle_timeout = l.send_timeout = v; });
  }
  /// Same as set_max_body_bytes (413 past it).
  void set_max_body_size(std::size_t bytes) noexcept { set_max_body_bytes(bytes); }
  /// Same as set_max_header_bytes: 431 past it (libevent alone answered 400).
  void set_max_headers_size(std::size_t bytes) noexcept { set_max_header_bytes(bytes); }

  // ----- transport ----------------------------------------------------------------

  /// Makes every connection accepted from now on over `t`'s bufferevents instead of plain
  /// sockets. tls.hpp's use_tls() calls it (an HTTPS server); it is rarely called directly.
  /// The server releases `t` (t.release) when it is replaced or the server is destroyed.
  void set_transport(detail::transport t) noexcept {
    core_.plain_socket = t.make == nullptr;  // TLS: file ranges are read and encrypted, chunks go through the bufferevent
    core_.guards.set_transport(t);
  }

  // ----- behaviour ----------------------------------------------------------------

  /// Methods outside `methods` get 501 before any handler runs. libevent allows GET,
  /// POST, HEAD, PUT and DELETE by default; routes declared with methods add theirs, so
  /// a PATCH route answers PATCH without this call.
  void allow_methods(method_set methods) noexcept {
    allowed_ = methods;
    evhttp_set_allowed_methods(http_.get(), methods.bits());
  }
  /// The methods libevent lets through to routing (the rest get 501).
  method_set allowed_methods() const noexcept { return allowed_; }
  /// Content-Type added to replies that have a body and set none (libevent's default is
  /// "text/html; charset=ISO-8859-1"); an empty string adds none.
  void set_default_content_type(cstring_view type) noexcept {
    evhttp_set_default_content_type(http_.get(), type.view().empty() ? nullptr : type.c_str());
  }
  /// Answers requests whose host is exactly `alias` (compared without regard to case)
  /// with this server's own routes, even where a virtual host's pattern would match it
  /// (virtual_host.hpp: aliases are tried before patterns). Errors:
  /// errc::invalid_argument if libevent cannot allocate.
  [[nodiscard]] std::error_code add_alias(cstring_view alias) noexcept {
    return evhttp_add_server_alias(http_.get(), alias.c_str()) == 0 ? std::error_code{}
                                                                     : make_error_code(errc::invalid_argument);
  }
  /// Stops answering requests whose Host is `alias` as this server's.
  /// Errors: errc::invalid_argument if `alias` was not added.
  [[nodiscard]] std::error_code remove_alias(cstring_view alias) noexcept {
    return evhttp_remove_server_alias(http_.get(), alias.c_str()) == 0 ? std::error_code{}
                                                                        : make_error_code(errc::invalid_argument);
  }
  /// Formats the Date header once per second instead of once per reply (evhttp's
  /// default), from the loop's cached clock. Same header, same bytes; it saves evhttp's
  /// per-reply date formatting (docs/performance.md). Off by default; a reply that sets
  /// its own Date keeps it.
  void cache_date_header(bool on = true) noexcept { core_.cache_date = on; }
  /// How many per-connection states are kept for reuse (0 frees them at once).
  void set_pool_limit(std::size_t n) noexcept { core_.pool_limit = n; }

  // ----- server events ------------------------------------------------------------

  /// Sends the server's events (server_event.hpp: accept paused and resumed, requests
  /// refused before any handler) to `sink`, a callable `void(const server_event&)` of at
  /// most three pointers, stored in place. The default, log_server_event, writes one line
  /// to stderr when accepting pauses. An empty server_event_sink{} silences them all.
  template <class Sink>
  void on_event(Sink&& sink) noexcept(std::is_nothrow_constructible_v<server_event_sink, Sink&&>) {
    core_.events = server_event_sink(std::forward<Sink>(sink));
  }

  /// Hands `e` to the server's sink, as the server does with its own events: what else
  /// belongs to the service (a redis_hub) reports through it. What the sink throws is
  /// reported on stderr, never propagated.
  void report(const server_event& e) noexcept { core_.report(e); }

  /// True while accept() is failing for lack of a resource and the server retries from a
  /// timer instead of accepting (server_event_kind::accept_paused).
  bool accept_paused() const noexcept { return backoff_.paused(); }

  // ----- graceful drain (drain.hpp, docs/drain.md) --------------------------------

  /// What drain() does with held requests and streams, and when it is done.
  using drain_options = basic_drain_options<request_handle>;

  /// Sets how drain() answers held requests, ends streams and reports (before drain()).
  void set_drain_options(drain_options options) noexcept { drain_options_ = std::move(options); }

  /// Stops the server gracefully, within `deadline`: stops listening, lets replies being
  /// written finish (and closes their connections after them), answers held requests
  /// (503 and Retry-After by default), ends chunked streams with their final chunk,
  /// closes idle keep-alive connections, and reports every close it causes as
  /// close_reason::server_shutdown. Done when no connection is left, or at the deadline
  /// (then what is left is closed hard); by default the loop's run() then returns. The
  /// work happens on the loop, from the next iteration on.
  ///
  /// On a server already draining it only brings the deadline forward (a second SIGTERM:
  /// drain(0s) closes what is left now). Errors: errc::libevent_failure if libevent could
  /// not allocate the drain's timers (nothing was changed).
  template <class Rep, class Period>
  [[nodiscard]] std::error_code drain(std::chrono::duration<Rep, Period> deadline) noexcept {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline);
    if (ms.count() < 0) ms = std::chrono::milliseconds{0};
    return start_drain(ms);
  }

  /// True from drain() on.
  bool draining() const noexcept { return core_.draining; }
  /// True once the drain is done (every connection closed, or the deadline passed).
  bool drained() const noexcept { return drain_done_; }
  /// What the drain did so far (complete once drained()).
  const drain_report& drain_result() const noexcept { return drain_report_; }

  // ----- introspection ------------------------------------------------------------

  /// Connections tether currently tracks (those with a held or streamed request, a
  /// handle or a close callback).
  std::size_t tracked_connections() const noexcept { return core_.tracked; }
  /// Connections open on this server (tracked or not), as max_connections counts them.
  std::size_t open_connections() const noexcept { return core_.guards.size(); }

  /// The libevent server, for calls tether does not wrap (evhttp_set_*). The server owns it:
  /// do not free it, and do not replace its callbacks (general, per path or bufferevent),
  /// which tether's routing and limits rely on.
  evhttp* native() const noexcept { return http_.get(); }
  /// The libevent loop this server runs on (the one given to the constructor).
  event_base* base() const noexcept { return core_.base; }

 private:
  template <close_policy, buffer_policy, close_callback, class>
  friend class basic_virtual_host;
  friend struct detail::group_access;

  static const char* why_not_routed(std::error_code ec) noexcept {
    return ec == errc::invalid_argument
               ? detail::already_routed_why
               : "libevent could not add the route";
  }

  /// The one error for a handler this server cannot call (nothing else is compiled).
  template <class H>
  static route_error refuse_handler() noexcept {
    static_assert(request_handler<H, request>,
                  "tether: a request handler must be callable as handler(req) with this server's request& "
                  "(server_t::request&, or auto& in a lambda; the result is ignored) "
                  "(docs/concepts/request_handler.md)");
    return {};
  }

  // ----- limits: installed once, from the constructor -------------------------------

  /// Makes every connection's bufferevent tether's own (evhttp_set_bevcb), so that its
  /// guard bounds it from accept to close (detail/connection_guard.hpp).
  void install_limits() {
    core_.guards.tracked_close = &detail::connection_state<config>::on_guard_close;
    core_.guards.start(core_.base, http_.get());
  }
  template <class F>
  void update(F&& change) noexcept {
    server_limits l = core_.guards.limits();
    change(l);
    core_.guards.apply(l);
  }

  void add_allowed_methods(method_set methods) noexcept {
    if ((allowed_ | methods) == allowed_) return;
    allow_methods(allowed_ | methods);
  }

  result<std::uint16_t> adopt_listener(int fd, std::string address) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
      return std::error_code(errno, std::system_category());
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) return make_error_code(errc::invalid_argument);
    evutil_make_socket_nonblocking(fd);
    evhttp_bound_socket* bound = evhttp_accept_socket_with_handle(http_.get(), fd);
    if (!bound) return make_error_code(errc::libevent_failure);
    backoff_.watch(evhttp_bound_socket_get_listener(bound));
    const std::uint16_t port = ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                                            : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    listeners_.push_back(listener{std::move(address), port, bound, fd});
    return port;
  }

  // ----- the drain ------------------------------------------------------------------

  static constexpr timeval drain_period{0, 5000};  // how often the drain looks again

  [[nodiscard]] std::error_code start_drain(std::chrono::milliseconds deadline) noexcept {
    if (drain_done_) return {};
    const auto now = std::chrono::steady_clock::now();
    if (core_.draining) {  // only ever brought forward
      if (now + deadline < drain_until_) arm_deadline(deadline);
      return {};
    }
    drain_tick_.reset(event_new(core_.base, -1, EV_PERSIST, &on_drain_tick, this));
    drain_deadline_.reset(event_new(core_.base, -1, 0, &on_drain_deadline, this));
    if (!drain_tick_ || !drain_deadline_) {
      drain_tick_.reset();
      drain_deadline_.reset();
      return make_error_code(errc::libevent_failure);
    }
    core_.draining = true;
    drain_started_ = now;
    stop_listening();
    arm_deadline(deadline);
    event_add(drain_tick_.get(), &drain_period);
    event_active(drain_tick_.get(), EV_TIMEOUT, 0);  // the first look: next iteration
    return {};
  }

  void arm_deadline(std::chrono::milliseconds d) noexcept {
    drain_until_ = std::chrono::steady_clock::now() + d;
    const timeval tv{static_cast<time_t>(d.count() / 1000), static_cast<suseconds_t>((d.count() % 1000) * 1000)};
    event_add(drain_deadline_.get(), &tv);
  }

  /// One look at every connection: answer what is held, end what streams, close what
  /// idles; done when nothing is left.
  static void on_drain_tick(evutil_socket_t, short, void* self) noexcept {
    auto* srv = static_cast<basic_server*>(self);
    if (srv->drain_done_) return;
    srv->drain_tracked();
    srv->drain_report_.idle_closed += srv->core_.guards.end_idle(close_reason::server_shutdown);
    if (srv->core_.guards.size() == 0) srv->finish_drain();
  }

  static void on_drain_deadline(evutil_socket_t, short, void* self) noexcept {
    auto* srv = static_cast<basic_server*>(self);
    if (srv->drain_done_) return;
    srv->drain_report_.deadline_passed = true;
    srv->drain_report_.closed_at_deadline += srv->core_.guards.close_all(close_reason::server_shutdown);
    srv->finish_drain();
  }

  /// Held requests and streams live on tracked connections: answer and end them.
  void drain_tracked() noexcept {
    using state = detail::connection_state<config>;
    using ops = detail::exchange_ops<config>;
    // A reference on the next state keeps it listed while this one is answered (its
    // watchers and the last-words hook run application code).
    state* st = static_cast<state*>(core_.all);
    if (st) st->add_ref();
    while (st) {
      state* next = static_cast<state*>(st->all_next);
      if (next) next->add_ref();
      if (!st->closed && st->evcon) {
        detail::exchange& ex = st->ex;
        if (ex.ph == detail::phase::pending && ex.held) {
          answer_held(*st);
        } else if (ex.ph == detail::phase::streaming &&
                   !evhttp_find_header(evhttp_request_get_output_headers(ex.req), "Content-Length")) {
          if (drain_options_.last_words) {
            auto handle = detail::request_access::handle<config>(st);
            try {
              drain_options_.last_words(handle);
            } catch (...) {
              detail::report_exception("a drain's last-words hook");
            }
          }
          if (!st->closed && st->ex.ph == detail::phase::streaming) {
            if (!st->forced) st->forced = close_reason::server_shutdown;
            (void)ops::end(st->ex, st);
            ++drain_report_.streams_ended;
          }
        }
      }
      st->release();
      st = next;
    }
  }

  void answer_held(detail::connection_state<config>& st) noexcept {
    using ops = detail::exchange_ops<config>;
    evkeyvalq* out = evhttp_request_get_output_headers(st.ex.req);
    if (drain_options_.retry_after.count() > 0) {
      char seconds[24];
      std::snprintf(seconds, sizeof seconds, "%lld", static_cast<long long>(drain_options_.retry_after.count()));
      evhttp_remove_header(out, "Retry-After");
      evhttp_add_header(out, "Retry-After", seconds);
    }
    const char* body = drain_options_.held_body ? drain_options_.held_body : "";
    if (!ops::reply(&core_, st.ex, &st, drain_options_.held_status, nullptr, std::string_view(body)))
      ++drain_report_.held_answered;
  }

  void finish_drain() noexcept {
    drain_done_ = true;
    drain_tick_.reset();
    drain_deadline_.reset();
    drain_report_.took =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - drain_started_);
    if (drain_options_.on_done) {
      try {
        drain_options_.on_done(drain_report_);
      } catch (...) {
        detail::report_exception("a drain's on_done callback");
      }
    }
    if (drain_options_.stop_loop) event_base_loopbreak(core_.base);
  }

  // server_group.hpp's accept balance: hold this loop's listeners, hear its count.
  void group_hold_accepts(bool on) noexcept { backoff_.hold(on); }
  void group_observe_count(void (*f)(void*, std::size_t) noexcept, void* arg) noexcept {
    core_.guards.observe_count(f, arg);
  }

  static void not_found(evhttp_request* r, void* self) noexcept {
    detail::not_found_reply reply;
    detail::invoke_handler<config>(static_cast<basic_server*>(self)->core_, r, reply);
  }

  detail::server_core core_;
  detail::unique_evhttp http_;
  detail::accept_backoff backoff_;  // after http_: its constructor takes the evhttp
  detail::path_handlers<config> handlers_{core_, http_.get()};
  detail::vec<listener> listeners_;
  detail::vec<detail::virtual_host_link*> vhosts_;  // attached virtual hosts (virtual_host.hpp)
  drain_options drain_options_{};
  drain_report drain_report_{};
  detail::unique_event drain_tick_;
  detail::unique_event drain_deadline_;
  std::chrono::steady_clock::time_point drain_started_{};
  std::chrono::steady_clock::time_point drain_until_{};
  bool drain_done_ = false;
  // libevent's default (evhttp_new_object); it has no getter.
  method_set allowed_ = method::get | method::post | method::head | method::put | method::delete_;
};

/// The default server: eager close detection, copied buffers, any small close callback.
using server = basic_server<>;
/// The request type of the default server.
using request = server::request;
/// The request handle type of the default server.
using request_handle = server::request_handle;
/// The connection view type of the default server.
using connection = server::connection;

TETHER_END_NAMESPACE
