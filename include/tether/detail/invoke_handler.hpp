// tether/detail/invoke_handler.hpp - the one way a handler is run for a libevent request.
//
// Every C callback that hands a request to application code (runtime routes, the
// fallback, static routers, their 405 replies) goes through invoke_handler, so a request
// is screened, tracked, finished and protected from exceptions the same way whichever
// style routed it. What no route matches goes through not_found_reply (tether's own
// fallback until the application sets one), so that it is screened too.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/request_screen.hpp>
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
  if (const screen_verdict v = screen_request(r); v.status != 0) [[unlikely]] {
    request_access::refuse(req, v);
    request_access::finish(req, false);
    return;
  }
  bool threw = false;
  try {
    handler(req);
  } catch (...) {
    threw = true;
    report_exception("a request handler");
  }
  request_access::finish(req, threw);
}

/// What a server answers when no route matched and no fallback is set: 404 and
/// `Connection: close`, as libevent would (run through invoke_handler, so screened and
/// tracked like any handler).
struct not_found_reply {
  template <class Request>
  void operator()(Request& req) const noexcept {
    (void)req.send_error(404);
  }
};

}  // namespace detail
TETHER_END_NAMESPACE
