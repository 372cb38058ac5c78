// tether/detail/invoke_handler.hpp - the one way a handler is run for a libevent request.
//
// Every C callback that hands a request to application code (runtime routes, the
// fallback, static routers, their 405 replies) goes through invoke_handler, so a request
// is tracked, finished and protected from exceptions the same way whichever style
// routed it.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/request.hpp>

#include <event2/http.h>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// What a server owns for each installed handler or router (erased: the server only
/// destroys them; libevent calls them through typed trampolines).
struct handler_holder_base {
  handler_holder_base() = default;
  handler_holder_base(const handler_holder_base&) = delete;  // libevent holds `this`
  handler_holder_base& operator=(const handler_holder_base&) = delete;
  virtual ~handler_holder_base() = default;
};

/// Runs `handler` for `r`: builds the request view, attaches tracked state, catches what
/// the handler throws (libevent is C), and answers a request the handler abandoned.
template <class Config, class Handler>
void invoke_handler(server_core& core, evhttp_request* r, Handler& handler) noexcept {
  auto req = request_access::make<Config>(core, r);
  request_access::adopt(req);
  bool threw = false;
  try {
    handler(req);
  } catch (...) {
    threw = true;
    report_exception("a request handler");
  }
  request_access::finish(req, threw);
}

}  // namespace detail
TETHER_END_NAMESPACE
