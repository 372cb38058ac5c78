// tether/detail/path_handlers.hpp - the handlers installed on one evhttp: runtime routes,
// routers and the fallback.
//
// A server and each of its virtual hosts (virtual_host.hpp) own one evhttp each, and
// libevent picks the evhttp by the request's Host before it looks at the path. Both route
// the same way, into the same server_core: a connection belongs to the server that
// accepted it, whichever host answers its requests. This is the one implementation; the
// public types check the handler's type (so that the diagnostic names their method) and
// forward here.
#pragma once

#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/allow_value.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/invoke_handler.hpp>
#include <tether/detail/owner.hpp>
#include <tether/detail/router_fwd.hpp>
#include <tether/detail/vec.hpp>
#include <tether/error.hpp>
#include <tether/method.hpp>

#include <event2/http.h>

#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE
namespace detail {

template <class Config>
class path_handlers {
 public:
  path_handlers(server_core& core, evhttp* http) noexcept : core_(&core), http_(http) {}
  path_handlers(const path_handlers&) = delete;
  path_handlers& operator=(const path_handlers&) = delete;

  /// Installs tether's 404 as the evhttp's fallback, so that unrouted requests are
  /// screened (docs/security.md) like every other request.
  void answer_not_found() noexcept { evhttp_set_gencb(http_, &not_found, core_); }
  template <class H, class Handler>
  [[nodiscard]] std::error_code route(cstring_view path, Handler&& handler) {
    return adopt_route(path, &holder_type<H>::dispatch, make_owner<holder_type<H>>(core_, std::forward<Handler>(handler)));
  }

  template <class H, class Handler>
  [[nodiscard]] std::error_code route(cstring_view path, method_set methods, Handler&& handler) {
    if (methods.empty()) return make_error_code(errc::invalid_argument);
    return adopt_route(path, &method_holder_type<H>::dispatch,
                       make_owner<method_holder_type<H>>(core_, methods, std::forward<Handler>(handler)));
  }

  /// Installs a router (the caller checked that its handlers take this request type).
  /// Returns the methods it serves, for the caller's allowed methods; on error, `failed`
  /// is the path that could not be claimed.
  template <class Router>
  result<method_set> route_router(Router&& table, const char*& failed) {
    using router_t = std::remove_cvref_t<Router>;
    using binding = router_binding<Config, router_t>;
    auto holder = make_owner<binding>(*core_, router_t(std::forward<Router>(table)));
    handlers_.reserve(handlers_.size() + 1);  // once libevent points at it, keeping it cannot fail
    if (auto ec = holder->install(http_, failed)) return ec;
    handlers_.push_back(std::move(holder));
    return binding::methods();
  }

  [[nodiscard]] std::error_code unroute(cstring_view path) noexcept {
    // The holder stays until the owner dies: unroute may run inside that very handler.
    return evhttp_del_cb(http_, path.c_str()) == 0 ? std::error_code{} : make_error_code(errc::invalid_argument);
  }

  template <class H, class Handler>
  void fallback(Handler&& handler) {
    auto holder = make_owner<holder_type<H>>(core_, std::forward<Handler>(handler));
    handlers_.reserve(handlers_.size() + 1);  // once libevent points at it, keeping it cannot fail
    evhttp_set_gencb(http_, &holder_type<H>::dispatch, holder.get());
    handlers_.push_back(std::move(holder));
  }

 private:
  template <class H>
  struct holder_type final : handler_holder_base {
    template <class F>
    holder_type(server_core* c, F&& f) : core(c), handler(std::forward<F>(f)) {}

    // The C -> C++ boundary: libevent calls this for each request on the route.
    static void dispatch(evhttp_request* r, void* self) noexcept {
      auto* h = static_cast<holder_type*>(self);
      invoke_handler<Config>(*h->core, r, h->handler);
    }

    server_core* core;
    [[no_unique_address]] H handler;
  };

  template <class H>
  struct method_holder_type final : handler_holder_base {
    template <class F>
    method_holder_type(server_core* c, method_set declared, F&& f)
        : core(c), served(with_implied_head(declared)), allow(make_allow_value(served)), handler(std::forward<F>(f)) {}

    static void dispatch(evhttp_request* r, void* self) noexcept {
      auto* h = static_cast<method_holder_type*>(self);
      if (h->served.contains(static_cast<method>(evhttp_request_get_command(r)))) {
        invoke_handler<Config>(*h->core, r, h->handler);
      } else {
        method_not_allowed reply{h->allow.c_str()};
        invoke_handler<Config>(*h->core, r, reply);
      }
    }

    server_core* core;
    method_set served;
    allow_value allow;
    [[no_unique_address]] H handler;
  };

  template <class Holder>
  [[nodiscard]] std::error_code adopt_route(cstring_view path, void (*dispatch)(evhttp_request*, void*), unique_owner<Holder> holder) {
    handlers_.reserve(handlers_.size() + 1);  // once libevent points at it, keeping it cannot fail
    if (const int rc = evhttp_set_cb(http_, path.c_str(), dispatch, holder.get()); rc != 0)
      return make_error_code(rc == -1 ? errc::invalid_argument : errc::libevent_failure);
    handlers_.push_back(std::move(holder));
    return {};
  }

  static void not_found(evhttp_request* r, void* core) noexcept {
    not_found_reply reply;
    invoke_handler<Config>(*static_cast<server_core*>(core), r, reply);
  }

  server_core* core_;
  evhttp* http_;
  vec<unique_owner<handler_holder_base>> handlers_;
};

}  // namespace detail
TETHER_END_NAMESPACE
