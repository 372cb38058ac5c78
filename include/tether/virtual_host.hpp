// tether/virtual_host.hpp - routes of their own for requests to other host names.
/// @file
/// basic_virtual_host: a set of routes and a fallback that a server uses for requests
/// whose Host matches a pattern (libevent's evhttp_add_virtual_host), with aliases.
/// See docs/server.md.
#pragma once

#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/path_handlers.hpp>
#include <tether/error.hpp>
#include <tether/method.hpp>
#include <tether/request_handler.hpp>
#include <tether/router.hpp>
#include <tether/server.hpp>

#include <event2/http.h>

#include <new>
#include <string>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// Routes of their own for the requests a server receives for other host names: name-based
/// virtual hosting on one listening socket.
///
/// A virtual host is attached to a server when it is constructed and answers the requests
/// whose host (the Host header without its port, or the host of an absolute request-URI)
/// matches its pattern, compared without regard to case, where `*` matches any run of
/// characters ("*.example.com"), or equals one of its aliases. Every other request goes to
/// the server's own routes. Virtual hosts are tried in the order they were created; an
/// alias match wins over any pattern.
///
/// It routes exactly as the server does (route(), a router, unroute(), fallback(); without
/// a fallback it answers 404), and its requests are the server's: same request type, same
/// connections, limits, close callbacks and policies. What libevent applies per server
/// rather than per host comes from the server: allowed methods (a virtual host's routes
/// with methods add theirs to the server's), limits, the default Content-Type.
///
/// Lifetime: not movable (libevent holds pointers to it). It may die before or after its
/// server. Destroying it detaches it at once: its host names go back to the server's
/// routes, and requests it already handed to handlers (held or streamed) carry on, since
/// they belong to the server. If the server dies first, the virtual host is left detached
/// (attached() is false) and answers nothing; calls on it still succeed and have no effect.
/// Do not destroy it from inside one of its own handlers.
///
///     tether::server srv{loop};
///     tether::virtual_host api{srv, "api.example.com"};
///     api.route("/status", [](tether::request& req) { (void)req.reply(200, "api"); });
///     (void)api.add_alias("api.internal");
///
/// On the lean engine (basic_virtual_host<..., lean_engine>, or `server_t::virtual_host`)
/// it is tether's own (lean_server.hpp) and behaves the same: hosts are chosen as libevent
/// chooses them.
template <close_policy ClosePolicy = eager_close<>, buffer_policy BufferPolicy = copy_buffer,
          close_callback CloseCallback = close_function<>, class Engine = evhttp_engine>
class basic_virtual_host {
 public:
  /// The server type it attaches to.
  using server_type = basic_server<ClosePolicy, BufferPolicy, CloseCallback>;
  /// The request type its handlers take: the server's.
  using request = typename server_type::request;

  /// Attaches a new virtual host for `pattern` to `parent`. Throws std::bad_alloc if
  /// libevent cannot allocate.
  basic_virtual_host(server_type& parent, cstring_view pattern)
      : parent_(&parent),
        http_((detail::note_libevent_use(), evhttp_new(parent.base()))),
        handlers_(parent.core_, http_.get()),
        pattern_(pattern.view()) {
    if (!http_) throw std::bad_alloc{};
    handlers_.answer_not_found();
    link_.http = http_.get();
    parent.vhosts_.reserve(parent.vhosts_.size() + 1);  // once attached, recording it cannot fail
    if (evhttp_add_virtual_host(parent.native(), pattern.c_str(), http_.get()) != 0) throw std::bad_alloc{};
    parent.vhosts_.push_back(&link_);
  }

  basic_virtual_host(const basic_virtual_host&) = delete;
  basic_virtual_host& operator=(const basic_virtual_host&) = delete;

  /// Detaches it from its server (if the server still lives) and frees it.
  ~basic_virtual_host() {
    if (!link_.parent_gone) {
      evhttp_remove_virtual_host(parent_->native(), http_.get());
      parent_->vhosts_.erase_if([&](detail::virtual_host_link* l) { return l == &link_; });
    }
  }

  /// Calls `handler` for this host's requests whose path is exactly `path` (as
  /// basic_server::route). Errors (route_error: its message() names the path):
  /// errc::invalid_argument if `path` is already routed here.
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, Handler&& handler) {
    using H = std::decay_t<Handler>;
    // A handler is called as handler(req) with a server::request& (use auto& in a lambda).
    static_assert(request_handler<H, request>,
                  "tether: a request handler must be callable as handler(req) with a server::request&");
    if (auto ec = handlers_.template route<H>(path, std::forward<Handler>(handler)))
      return route_error(ec, path.view(), server_type::why_not_routed(ec));
    if (attached()) parent_->add_allowed_methods(handler_own_methods<H>);  // OPTIONS for a cors_handler
    return {};
  }

  /// Calls `handler` for this host's requests on `path` whose method is in `methods`
  /// (GET implies HEAD); other methods get 405 with an Allow header. `methods` are added
  /// to the server's allowed methods. Errors (route_error: its message() names the path):
  /// errc::invalid_argument if `path` is already routed here or `methods` is empty.
  template <class Handler>
  [[nodiscard]] route_error route(cstring_view path, method_set methods, Handler&& handler) {
    using H = std::decay_t<Handler>;
    // A handler is called as handler(req) with a server::request& (use auto& in a lambda).
    static_assert(request_handler<H, request>,
                  "tether: a request handler must be callable as handler(req) with a server::request&");
    if (methods.empty())
      return route_error(make_error_code(errc::invalid_argument), path.view(), detail::no_methods_why);
    methods = methods | handler_own_methods<H>;  // e.g. OPTIONS for a cors_handler
    if (auto ec = handlers_.template route<H>(path, methods, std::forward<Handler>(handler)))
      return route_error(ec, path.view(), server_type::why_not_routed(ec));
    if (attached()) parent_->add_allowed_methods(methods);
    return {};
  }

  /// Installs a router of static routes for this host (as basic_server::route(router));
  /// its methods are added to the server's allowed methods. All or nothing.
  /// Errors (route_error: its message() names the path): errc::invalid_argument if one of
  /// its paths is already routed here.
  template <router_type Router>
  [[nodiscard]] route_error route(Router&& table) {
    using router_t = std::remove_cvref_t<Router>;
    if constexpr (!detail::router_answers<request, router_t>::value) {
      // A route's handler cannot take this server's request: the error names the route.
      (void)sizeof(detail::router_handler_checks<request, router_t>);
      return {};
    } else {
      const char* failed = nullptr;  // the path a failure is about
      auto methods = handlers_.route_router(std::forward<Router>(table), failed);
      if (!methods)
        return route_error(methods.error(), failed ? failed : "", server_type::why_not_routed(methods.error()));
      if (attached()) parent_->add_allowed_methods(*methods);
      return {};
    }
  }

  /// Stops routing `path` on this host. Errors (route_error): errc::invalid_argument if it
  /// was not routed here.
  [[nodiscard]] route_error unroute(cstring_view path) {
    if (auto ec = handlers_.unroute(path)) return route_error(ec, path.view(), detail::not_routed_why);
    return {};
  }

  /// Calls `handler` for this host's requests that no route of this host matched (without
  /// one: 404). The server's routes and fallback are not consulted for this host.
  template <class Handler>
  void fallback(Handler&& handler) {
    using H = std::decay_t<Handler>;
    // A handler is called as handler(req) with a server::request& (use auto& in a lambda).
    static_assert(request_handler<H, request>,
                  "tether: a request handler must be callable as handler(req) with a server::request&");
    handlers_.template fallback<H>(std::forward<Handler>(handler));
    if (attached()) parent_->add_allowed_methods(handler_own_methods<H>);  // OPTIONS for a cors_handler
  }

  /// Also answers requests whose host is exactly `alias` (compared without regard to
  /// case). Errors: errc::libevent_failure if libevent cannot allocate.
  [[nodiscard]] std::error_code add_alias(cstring_view alias) noexcept {
    return evhttp_add_server_alias(http_.get(), alias.c_str()) == 0 ? std::error_code{}
                                                                     : make_error_code(errc::libevent_failure);
  }
  /// Forgets an alias added with add_alias. Errors: errc::invalid_argument if there is none.
  [[nodiscard]] std::error_code remove_alias(cstring_view alias) noexcept {
    return evhttp_remove_server_alias(http_.get(), alias.c_str()) == 0 ? std::error_code{}
                                                                        : make_error_code(errc::invalid_argument);
  }

  /// The pattern given at construction.
  const std::string& pattern() const noexcept { return pattern_; }
  /// False once its server is gone.
  bool attached() const noexcept { return !link_.parent_gone; }
  /// libevent's evhttp of this host (owned by it).
  evhttp* native() const noexcept { return http_.get(); }

 private:
  server_type* parent_;
  detail::unique_evhttp http_;
  detail::path_handlers<typename server_type::config> handlers_;
  std::string pattern_;
  detail::virtual_host_link link_;
};

/// A virtual host of the default server (tether::server).
using virtual_host = basic_virtual_host<>;

/// `basic_virtual_host vh{srv, "api.example.com"}` takes the server's policies and engine.
template <class C, class B, class F, class E>
basic_virtual_host(basic_server<C, B, F, E>&, cstring_view) -> basic_virtual_host<C, B, F, E>;

TETHER_END_NAMESPACE
