// tether/detail/client_core.hpp - the libevent side of a client_connection.
//
// libevent 2.1.12's HTTP client (http.c) has rules tether must follow exactly; each is
// cited where the code depends on it.
//  * A request is libevent's from evhttp_make_request until its callback runs: after a
//    response (evhttp_connection_done: callback with the request, then freed), after a
//    failure (evhttp_connection_fail_: request freed first, then error_cb and the
//    callback with NULL), or after a failed connect (evhttp_connection_cb_cleanup:
//    callback with the request and status 0, then freed). evhttp_cancel_request and
//    evhttp_connection_free free requests without calling them back.
//  * evhttp_connection_cb_cleanup moves every queued request to a private list before
//    calling them back one by one: until each got its callback, it must not be
//    cancelled (evhttp_cancel_request would unlink it from the wrong list).
//  * Inside a chunk callback a request may be cancelled: libevent defers the free
//    (EVHTTP_REQ_DEFER_FREE). Inside the close callback the connection must not be freed:
//    evhttp_connection_reset_ goes on using it.
//  * libevent reports a refused connection and a connect timeout the same way (status
//    0, no error callback), so tether watches the connect itself: while libevent
//    connects, the bufferevent's callbacks are (NULL, NULL, evhttp_connection_cb), and
//    tether slips its own event callback in front (the getcb/setcb recipe of
//    docs/close-lifecycle.md), records why the connect ended, and passes the event on.
//    The same hook sets the read and write timeouts once a connection is up.
//  * libevent's own retries are off: a failed connect is retried by tether, which moves
//    the request's headers and body into a fresh evhttp_request after a back-off.
//
// All user code (completion, chunk and close callbacks) runs from the trampolines below,
// which count their depth. A client destroyed inside one of them cannot free the
// connection there (libevent frames are still on the stack): it finishes every request
// with errc::cancelled at once, and a zero-delay event frees the rest from the loop.
#pragma once

#include <tether/buffer.hpp>
#include <tether/client_message.hpp>
#include <tether/client_options.hpp>
#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/libevent_use.hpp>
#include <tether/detail/owner.hpp>
#include <tether/error.hpp>
#include <tether/method.hpp>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

TETHER_BEGIN_NAMESPACE
namespace detail {

struct call_list;

/// One request of a client_connection, from request() until libevent and the user are
/// both done with it. client_call_impl holds the user's callbacks by their own types.
struct client_call {
  client_call() = default;
  client_call(const client_call&) = delete;
  client_call& operator=(const client_call&) = delete;
  virtual ~client_call() = default;
  virtual void complete(std::error_code ec, const client_response& res) = 0;
  virtual void chunk(const client_response& res, buffer_ref data) = 0;

  client_call* prev = nullptr;
  client_call* next = nullptr;
  call_list* list = nullptr;  // the list it is linked in, if any
  client_core* core = nullptr;
  evhttp_request* req = nullptr;  // ours while staged or waiting to retry, libevent's while held
  std::string target;
  std::uint64_t id = 0;
  method verb = method::get;
  bool streaming = false;
  bool held = false;        // libevent has `req` and may still call back with this call
  bool finished = false;    // the outcome was delivered (or decided); no more user calls
  bool cancelling = false;  // tether itself made libevent drop it
  bool submitting = false;  // inside request(): a failure is returned, not called back
  bool in_cleanup = false;  // in evhttp_connection_cb_cleanup's private list
  int busy = 0;             // user code of this call (or tether's own frame) is running
  int lib_error = -1;       // evhttp_request_error from libevent's error callback
  int status = 0;           // status line seen (header callback)
  unsigned attempts = 0;
  std::size_t received = 0;
  std::error_code own_error;     // why tether made libevent drop the request
  std::error_code submit_error;  // a failure inside request()
  detail::unique_event retry_timer;
};

/// A chunk handler for requests that collect their body instead.
struct no_chunk_handler {
  void operator()(const client_response&, buffer_ref) const noexcept {}
};

template <class Done, class Chunk>
struct client_call_impl final : client_call {
  template <class D, class C>
  client_call_impl(D&& d, C&& c) : done(std::forward<D>(d)), on_chunk(std::forward<C>(c)) {
    streaming = !std::is_same_v<Chunk, no_chunk_handler>;
  }
  void complete(std::error_code ec, const client_response& res) override { done(ec, res); }
  void chunk(const client_response& res, buffer_ref data) override {
    if constexpr (std::is_invocable_v<Chunk&, const client_response&, buffer_ref>) on_chunk(res, data);
    else on_chunk(data);
  }
  [[no_unique_address]] Done done;
  [[no_unique_address]] Chunk on_chunk;
};

/// An intrusive FIFO of calls.
struct call_list {
  client_call* head = nullptr;
  client_call* tail = nullptr;
  std::size_t size = 0;

  bool empty() const noexcept { return head == nullptr; }
  void push_back(client_call& c) noexcept {
    c.list = this;
    c.prev = tail;
    c.next = nullptr;
    if (tail) tail->next = &c;
    else head = &c;
    tail = &c;
    ++size;
  }
  void remove(client_call& c) noexcept {
    if (c.prev) c.prev->next = c.next;
    else head = c.next;
    if (c.next) c.next->prev = c.prev;
    else tail = c.prev;
    c.prev = c.next = nullptr;
    c.list = nullptr;
    --size;
  }
  bool contains(const client_call& c) const noexcept { return c.list == this; }
};

/// How the server's end of the TCP connection stood when libevent closed ours.
enum class peer_end : std::uint8_t { open, fin, reset };

inline peer_end probe_peer_end(evutil_socket_t fd) noexcept {
#if defined(__linux__)
  if (fd < 0) return peer_end::open;
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return peer_end::open;
  if (ti.tcpi_state == TCP_CLOSE_WAIT) return peer_end::fin;
  if (ti.tcpi_state == TCP_CLOSE) return peer_end::reset;
#else
  (void)fd;
#endif
  return peer_end::open;
}

inline timeval to_timeval(std::chrono::milliseconds d) noexcept {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

inline void client_on_done(evhttp_request* req, void* arg) noexcept;
inline void client_on_error(evhttp_request_error error, void* arg) noexcept;
inline int client_on_headers(evhttp_request* req, void* arg) noexcept;
inline void client_on_chunk(evhttp_request* req, void* arg) noexcept;
inline void client_on_close(evhttp_connection* evcon, void* arg) noexcept;
inline void client_on_connect_event(bufferevent* bev, short what, void* arg) noexcept;

/// A client's bufferevent made by a transport (tls.hpp), and how to explain its failures.
struct client_transport {
  bufferevent* bev = nullptr;
  std::error_code (*explain)(bufferevent*) noexcept = nullptr;
};
inline void client_on_retry(evutil_socket_t, short, void* arg) noexcept;
inline void client_on_reap(evutil_socket_t, short, void* arg) noexcept;

/// Everything libevent may point at for one client connection. Owned by its
/// client_connection, or by itself (the reaper) once that was destroyed inside a callback.
struct client_core {
  struct depth_guard {
    explicit depth_guard(client_core& c) noexcept : core(c) { ++core.depth; }
    ~depth_guard() { --core.depth; }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;
    client_core& core;
  };

  event_base* base = nullptr;
  evhttp_connection* evcon = nullptr;
  bufferevent* bev = nullptr;
  std::string host;
  std::uint16_t port = 0;
  std::string host_header;
  std::error_code config_error;

  timeval read_tv{}, write_tv{};
  bool read_timeout = false, write_timeout = false;
  unsigned retries = 0;
  std::chrono::milliseconds initial_retry{};
  std::size_t max_body = client_options::unlimited;

  evbuffer* body = nullptr;     // the body of the response being received
  client_call* body_owner = nullptr;
  evbuffer* no_body = nullptr;  // what a response without a collected body shows
  evkeyvalq empty_headers{};    // what a failed response shows as headers
  detail::unique_event reaper;
  client_close_function<> on_close;

  call_list pending;  // in libevent's queue, in its order
  call_list waiting;  // waiting for a retry; their requests are ours
  call_list limbo;    // finished, but libevent still holds their request
  std::uint64_t next_id = 1;
  int depth = 0;
  bool closing = false;   // the owner is being destroyed
  bool orphaned = false;  // the owner is gone: no user code runs any more
  std::size_t cleanup_left = 0;  // calls still in evhttp_connection_cb_cleanup's list

  bufferevent_event_cb saved_connect_cb = nullptr;
  void* saved_connect_arg = nullptr;
  std::error_code connect_failure;  // why the current connect attempt ended

  // Explains a failed connect in the transport's terms (tls.hpp: a handshake that failed,
  // a certificate refused); empty when the transport has nothing to say.
  std::error_code (*transport_error)(bufferevent*) noexcept = nullptr;

  client_call* close_after = nullptr;  // a close to report once this call completes
  peer_end close_peer = peer_end::open;

  // ----- creation and destruction --------------------------------------------------

  /// Returns null only if libevent cannot allocate (then nothing leaks but `transport`,
  /// which libevent may or may not have taken).
  static client_core* create(event_base* b, bufferevent* transport, std::string_view host_in, std::uint16_t port_in,
                             const client_options& o) noexcept {
    note_libevent_use();
    auto* c = new (std::nothrow) client_core;
    if (!c) return nullptr;
    if (!c->init(b, transport, host_in, port_in, o)) {
      c->release_all();
      delete c;
      return nullptr;
    }
    return c;
  }

  bool init(event_base* b, bufferevent* transport, std::string_view host_in, std::uint16_t port_in,
            const client_options& o) noexcept {
    try {
      base = b;
      if (host_in.size() >= 2 && host_in.front() == '[' && host_in.back() == ']')
        host_in = host_in.substr(1, host_in.size() - 2);
      host.assign(host_in);
      port = port_in;
      host_header = host.find(':') != std::string::npos ? "[" + host + "]" : host;
      if (port != 80) host_header += ":" + std::to_string(port);
    } catch (...) {
      return false;
    }
    init_headers(empty_headers);
    body = evbuffer_new();
    no_body = evbuffer_new();
    reaper.reset(event_new(base, -1, 0, &client_on_reap, this));
    if (!body || !no_body || !reaper) return false;
    evcon = transport ? evhttp_connection_base_bufferevent_new(base, o.dns, transport, host.c_str(), port)
                      : evhttp_connection_base_new(base, o.dns, host.c_str(), port);
    if (!evcon) return false;
    bev = evhttp_connection_get_bufferevent(evcon);
    evhttp_connection_set_closecb(evcon, &client_on_close, this);
    evhttp_connection_set_retries(evcon, 0);  // tether retries (see the file comment)
    if (o.connect_timeout.count() > 0) {
      // libevent's one timeout: used for connecting; the read and write timeouts are
      // applied once the connection is up (client_on_connect_event).
      const timeval tv = to_timeval(o.connect_timeout);
      evhttp_connection_set_timeout_tv(evcon, &tv);
    }
    read_timeout = o.read_timeout.count() > 0;
    write_timeout = o.write_timeout.count() > 0;
    read_tv = to_timeval(o.read_timeout);
    write_tv = to_timeval(o.write_timeout);
    retries = o.retries;
    initial_retry = o.initial_retry_delay;
    max_body = o.max_body_size;
    if (o.max_header_size != client_options::unlimited)
      evhttp_connection_set_max_headers_size(
          evcon, static_cast<ev_ssize_t>(o.max_header_size > static_cast<std::size_t>(EV_SSIZE_MAX) ? EV_SSIZE_MAX
                                                                                                     : o.max_header_size));
    evhttp_connection_set_family(evcon, o.family == ip_family::ipv4   ? AF_INET
                                        : o.family == ip_family::ipv6 ? AF_INET6
                                                                      : AF_UNSPEC);
    if (!o.local_address.empty()) {
      unsigned char probe[sizeof(in6_addr)];
      if (::inet_pton(AF_INET, o.local_address.c_str(), probe) != 1 &&
          ::inet_pton(AF_INET6, o.local_address.c_str(), probe) != 1)
        config_error = make_error_code(errc::invalid_address);
      else
        evhttp_connection_set_local_address(evcon, o.local_address.c_str());
    }
    if (o.local_port != 0) evhttp_connection_set_local_port(evcon, o.local_port);
    if (host.empty() || port == 0) config_error = make_error_code(errc::invalid_argument);
    return true;
  }

  /// Frees what is left; libevent must hold no call any more (or be freed here).
  void release_all() noexcept {
    if (evcon) {
      evhttp_connection_free(evcon);  // frees every request still queued, no callbacks
      evcon = nullptr;
      bev = nullptr;
    }
    for (call_list* l : {&pending, &limbo})
      for (client_call* c = l->head; c; c = c->next)
        if (c->held) {  // freed just now by evhttp_connection_free
          c->held = false;
          c->req = nullptr;
        }
    for (call_list* l : {&pending, &waiting, &limbo}) {
      while (client_call* c = l->head) {
        l->remove(*c);
        if (!c->held && c->req) evhttp_request_free(c->req);  // ours: staged for a retry
        delete c;
      }
    }
    if (body) evbuffer_free(body);
    if (no_body) evbuffer_free(no_body);
    body = no_body = nullptr;
    evhttp_clear_headers(&empty_headers);
  }

  /// The owner is being destroyed: every request not yet completed completes with
  /// errc::cancelled, then the connection closes (its close callback says
  /// closed_by_client). Afterwards this core either is deleted or deletes itself.
  void destroy() noexcept {
    closing = true;
    const bool in_flight = !pending.empty();
    finish_all(make_error_code(errc::cancelled));
    if (depth == 0) {
      aborted_on_destroy = in_flight;
      release_all();  // evhttp_connection_free: client_on_close reports closed_by_client
      delete this;
      return;
    }
    // Inside one of this connection's callbacks: libevent is still using it.
    if (connected()) deliver_close(client_close_reason::closed_by_client, in_flight, in_flight ? make_error_code(errc::cancelled) : std::error_code{});
    orphaned = true;
    event_active(reaper.get(), EV_TIMEOUT, 0);
  }

  bool aborted_on_destroy = false;

  // ----- state ----------------------------------------------------------------------

  /// True while a TCP connection is up (libevent's evhttp_connected()).
  bool connected() const noexcept {
    if (!bev || bufferevent_getfd(bev) < 0) return false;
    bufferevent_data_cb r = nullptr, w = nullptr;
    bufferevent_getcb(bev, &r, &w, nullptr, nullptr);
    return r || w;  // while connecting both are null
  }

  std::size_t outstanding() const noexcept { return pending.size + waiting.size; }

  // ----- submitting -----------------------------------------------------------------

  std::error_code check(const client_request& r) const noexcept {
    if (closing) return make_error_code(errc::cancelled);
    if (config_error) return config_error;
    const std::string_view t = r.target_;
    if (t.empty()) return make_error_code(errc::invalid_argument);
    // Visible ASCII only: a space, CR or LF would end the request line early.
    for (const char ch : t)
      if (ch <= ' ' || ch > '~') return make_error_code(errc::invalid_argument);
    if (to_string(r.method_) == "UNKNOWN") return make_error_code(errc::invalid_argument);
    return {};
  }

  evhttp_request* new_request(client_call& c) noexcept {
    evhttp_request* r = evhttp_request_new(&client_on_done, &c);
    if (!r) return nullptr;
    evhttp_request_set_header_cb(r, &client_on_headers);
    evhttp_request_set_chunked_cb(r, &client_on_chunk);
    evhttp_request_set_error_cb(r, &client_on_error);
    return r;
  }

  /// Sends `r` with `c`'s callbacks. On failure `c` is deleted and nothing is called.
  result<std::uint64_t> submit(client_call& c, client_request& r) noexcept {
    c.core = this;
    c.verb = r.method_;
    try {
      c.target = std::move(r.target_);
    } catch (...) {
      delete &c;
      return make_error_code(std::errc::not_enough_memory);
    }
    c.req = new_request(c);
    if (!c.req) {
      delete &c;
      return make_error_code(std::errc::not_enough_memory);
    }
    evkeyvalq* out = evhttp_request_get_output_headers(c.req);
    move_headers(r.headers_, *out);
    if (r.body_) evbuffer_add_buffer(evhttp_request_get_output_buffer(c.req), r.body_);
    const std::size_t body_size = evbuffer_get_length(evhttp_request_get_output_buffer(c.req));
    bool ok = evhttp_find_header(out, "Host") || evhttp_add_header(out, "Host", host_header.c_str()) == 0;
    if (ok && !evhttp_find_header(out, "Content-Length") &&
        (body_size > 0 || c.verb == method::post || c.verb == method::put || c.verb == method::patch)) {
      char len[24];
      std::snprintf(len, sizeof len, "%zu", body_size);
      ok = evhttp_add_header(out, "Content-Length", len) == 0;
    }
    if (!ok) {
      evhttp_request_free(c.req);
      delete &c;
      return make_error_code(std::errc::not_enough_memory);
    }
    c.id = next_id++;
    pending.push_back(c);
    c.submitting = true;
    ++c.busy;
    start(c);
    --c.busy;
    c.submitting = false;
    if (c.finished) {
      const std::error_code ec = c.submit_error ? c.submit_error : make_error_code(errc::libevent_failure);
      release(c);
      return ec;
    }
    return c.id;
  }

  /// Hands `c` (linked in `pending`, its request ours) to libevent.
  void start(client_call& c) noexcept {
    ++c.attempts;
    c.held = true;
    ++c.busy;
    errno = 0;
    const int rc = evhttp_make_request(evcon, c.req, static_cast<evhttp_cmd_type>(c.verb), c.target.c_str());
    const int err = errno;
    --c.busy;
    if (rc != 0) {
      // evhttp_make_request fails in two ways: its copy of the target cannot be
      // allocated (it then frees the request itself), or evhttp_connection_connect_
      // fails before connecting, almost always because the local address cannot be
      // bound (the request is dequeued but not freed). Only the first is ENOMEM.
      c.held = false;
      if (err != ENOMEM) evhttp_request_free(c.req);
      c.req = nullptr;
      finish(c, err ? std::error_code(err, std::system_category()) : make_error_code(errc::connect_failed), nullptr);
      return;
    }
    interpose_if_connecting();
  }

  // ----- completing -----------------------------------------------------------------

  /// Decides `c`'s outcome and tells the user (unless inside request(), which returns
  /// it instead). `req` is the response on success.
  void finish(client_call& c, std::error_code ec, evhttp_request* req) noexcept {
    if (c.finished) return;
    if (waiting.contains(c)) {
      waiting.remove(c);
      if (c.retry_timer) event_del(c.retry_timer.get());
      if (c.req && !c.held) evhttp_request_free(c.req);
      c.req = nullptr;
    } else if (pending.contains(c)) {
      pending.remove(c);
    }
    c.finished = true;
    if (c.held) limbo.push_back(c);
    if (c.submitting) {
      c.submit_error = ec;
      return;
    }
    evbuffer* shown = no_body;
    if (body_owner == &c) shown = body;
    if (!orphaned) {
      const int status = !ec && req ? evhttp_request_get_response_code(req) : c.status;
      const client_response res = response(ec ? nullptr : req, status, shown, c.attempts);
      ++c.busy;
      try {
        c.complete(ec, res);
      } catch (...) {
        report_exception("a client completion callback");
      }
      --c.busy;
    }
    if (body_owner == &c) body_owner = nullptr;
    if (body) evbuffer_drain(body, evbuffer_get_length(body));
    if (no_body) evbuffer_drain(no_body, evbuffer_get_length(no_body));
    evhttp_clear_headers(&empty_headers);
    if (close_after == &c) {
      close_after = nullptr;
      if (!orphaned && !closing) deliver_close(reason_after(c, ec), static_cast<bool>(ec), ec);
    }
    release(c);
  }

  void finish_all(std::error_code ec) noexcept {
    while (client_call* c = waiting.head) finish(*c, ec, nullptr);
    while (client_call* c = pending.head) finish(*c, ec, nullptr);
  }

  /// Deletes `c` once nobody can reach it: finished, not held by libevent, no frame of
  /// its own on the stack.
  void release(client_call& c) noexcept {
    if (!c.finished || c.held || c.busy > 0) return;
    if (limbo.contains(c)) limbo.remove(c);
    if (close_after == &c) close_after = nullptr;
    if (body_owner == &c) body_owner = nullptr;
    delete &c;
  }

  client_response response(evhttp_request* req, int status, evbuffer* shown, unsigned attempts) noexcept {
    return client_response(req, status, shown, &empty_headers, attempts);
  }

  client_close_reason reason_after(const client_call& c, std::error_code ec) const noexcept {
    if (!ec) return client_close_reason::completed;
    if (c.cancelling || c.own_error || ec == errc::cancelled) return client_close_reason::closed_by_client;
    if (close_peer == peer_end::fin) return client_close_reason::peer_closed;
    if (close_peer == peer_end::reset) return client_close_reason::peer_reset;
    if (ec == errc::response_timeout) return client_close_reason::timeout;
    return client_close_reason::error;
  }

  void deliver_close(client_close_reason why, bool aborted, std::error_code ec) noexcept {
    if (!on_close) return;
    const client_close_event e{why, aborted, aborted ? ec : std::error_code{}, host, port};
    try {
      on_close(e);
    } catch (...) {
      report_exception("a client close callback");
    }
  }

  /// Why a request failed, from what libevent and the connect hook reported.
  std::error_code failure_reason(const client_call& c) const noexcept {
    if (c.own_error) return c.own_error;
    if (connect_failure) return connect_failure;
    if (bev && bufferevent_socket_get_dns_error(bev) != 0) return make_error_code(errc::resolve_failed);
    switch (c.lib_error) {
      case EVREQ_HTTP_TIMEOUT: return make_error_code(errc::response_timeout);
      case EVREQ_HTTP_EOF:
        return make_error_code(c.status != 0 ? errc::incomplete_response : errc::no_response);
      case EVREQ_HTTP_INVALID_HEADER:
      case EVREQ_HTTP_DATA_TOO_LONG:  // tether leaves libevent's body limit off: bad chunk framing
        return make_error_code(errc::bad_response);
      case EVREQ_HTTP_REQUEST_CANCEL: return make_error_code(errc::cancelled);
      default: return make_error_code(errc::libevent_failure);
    }
  }

  /// Why a connect failed (libevent gave the request back with status 0).
  std::error_code connect_reason() const noexcept {
    if (connect_failure) return connect_failure;
    if (bev && bufferevent_socket_get_dns_error(bev) != 0) return make_error_code(errc::resolve_failed);
    return make_error_code(errc::connect_failed);
  }

  // ----- cancelling -----------------------------------------------------------------

  /// Makes libevent drop `c`'s request (which it holds). May run the close callback
  /// path; never calls `c` back.
  void cancel_in_libevent(client_call& c) noexcept {
    c.cancelling = true;
    if (c.in_cleanup) return;  // cb_cleanup will call it back; see the file comment
    evhttp_request* r = c.req;
    c.req = nullptr;
    c.held = false;
    evhttp_cancel_request(r);
  }

  bool cancel(std::uint64_t id, std::error_code ec) noexcept {
    client_call* c = nullptr;
    for (call_list* l : {&pending, &waiting})
      for (client_call* p = l->head; p && !c; p = p->next)
        if (p->id == id) c = p;
    if (!c || c->finished) return false;
    ++c->busy;
    if (c->held) cancel_in_libevent(*c);
    after_cancel();
    --c->busy;
    finish(*c, ec, nullptr);
    return true;
  }

  void after_cancel() noexcept {
    if (!orphaned && !closing) interpose_if_connecting();
  }

  // ----- retrying -------------------------------------------------------------------

  /// After a failed connect (`old` still alive, libevent frees it when we return):
  /// queues `c` for another attempt if one is left. False: finish it.
  bool retry(client_call& c, evhttp_request* old, std::error_code why) noexcept {
    if (closing || c.attempts > retries) return false;
    if (why != std::errc::connection_refused && why != errc::connect_timeout) return false;
    if (!c.retry_timer) c.retry_timer.reset(event_new(base, -1, 0, &client_on_retry, &c));
    if (!c.retry_timer) return false;
    evhttp_request* fresh = new_request(c);
    if (!fresh) return false;
    move_headers(*evhttp_request_get_output_headers(old), *evhttp_request_get_output_headers(fresh));
    evbuffer_add_buffer(evhttp_request_get_output_buffer(fresh), evhttp_request_get_output_buffer(old));
    pending.remove(c);
    waiting.push_back(c);
    c.req = fresh;
    c.held = false;
    c.status = 0;
    c.lib_error = -1;
    // libevent's back-off: initial, then doubled on every further retry, at most an hour.
    auto delay = initial_retry;
    for (unsigned i = 1; i < c.attempts && delay < std::chrono::hours(1); ++i) delay *= 2;
    if (delay > std::chrono::hours(1)) delay = std::chrono::hours(1);
    const timeval tv = to_timeval(delay);
    event_add(c.retry_timer.get(), &tv);
    return true;
  }

  // ----- the connect hook -----------------------------------------------------------

  void interpose_if_connecting() noexcept {
    if (!bev) return;
    bufferevent_data_cb r = nullptr, w = nullptr;
    bufferevent_event_cb e = nullptr;
    void* a = nullptr;
    bufferevent_getcb(bev, &r, &w, &e, &a);
    if (r || w || !e || e == &client_on_connect_event) return;
    saved_connect_cb = e;
    saved_connect_arg = a;
    bufferevent_setcb(bev, nullptr, nullptr, &client_on_connect_event, this);
  }

  /// libevent tried to connect for the next queued request and gave up before
  /// connecting (a local port that cannot be bound): nothing would ever happen to the
  /// queue. Fail those requests.
  void fail_stalled() noexcept {
    while (!orphaned && !closing && cleanup_left == 0 && pending.head && bev) {
      bufferevent_data_cb r = nullptr, w = nullptr;
      bufferevent_event_cb e = nullptr;
      bufferevent_getcb(bev, &r, &w, &e, nullptr);
      if (r || w || e) return;
      client_call& c = *pending.head;
      if (!c.held) return;
      ++c.busy;
      cancel_in_libevent(c);
      --c.busy;
      finish(c, make_error_code(errc::connect_failed), nullptr);
    }
  }

  void after_callback() noexcept {
    if (orphaned || closing) return;
    interpose_if_connecting();
    fail_stalled();
  }
};

// ----- trampolines: libevent calls these; nothing escapes them -------------------------

inline void client_on_done(evhttp_request* req, void* arg) noexcept {
  auto& c = *static_cast<client_call*>(arg);
  client_core& core = *c.core;
  const client_core::depth_guard guard(core);
  c.held = false;  // libevent's last word about this request
  const bool connect_failed = req && evhttp_request_get_response_code(req) == 0;
  if (connect_failed) {
    // evhttp_connection_cb_cleanup: every request that was queued gets this, in turn.
    if (core.cleanup_left == 0)
      for (client_call* p = core.pending.head; p; p = p->next)
        if (p->held || p == &c) {
          p->in_cleanup = true;
          ++core.cleanup_left;
        }
    if (c.in_cleanup) {
      c.in_cleanup = false;
      if (core.cleanup_left > 0) --core.cleanup_left;
    }
  }
  if (c.finished) {
    core.release(c);
    return;
  }
  if (!req) {
    core.finish(c, core.failure_reason(c), nullptr);
  } else if (connect_failed) {
    const std::error_code why = core.connect_reason();
    if (!core.retry(c, req, why)) core.finish(c, why, nullptr);
  } else {
    core.finish(c, {}, req);
  }
  if (!connect_failed) core.after_callback();
}

inline void client_on_error(evhttp_request_error error, void* arg) noexcept {
  static_cast<client_call*>(arg)->lib_error = static_cast<int>(error);
}

inline int client_on_headers(evhttp_request* req, void* arg) noexcept {
  auto& c = *static_cast<client_call*>(arg);
  client_core& core = *c.core;
  const client_core::depth_guard guard(core);
  if (c.finished) return -1;  // cancelled by tether while libevent reads: stop reading
  c.status = evhttp_request_get_response_code(req);
  const bool has_body = c.verb != method::head && c.status >= 200 && c.status != 204 && c.status != 304;
  if (has_body && core.max_body != client_options::unlimited) {
    if (const char* cl = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Length")) {
      char* end = nullptr;
      errno = 0;
      const unsigned long long n = std::strtoull(cl, &end, 10);
      if (end != cl && errno == 0 && n > core.max_body) {
        c.own_error = make_error_code(errc::response_too_large);
        return -1;  // libevent fails the request (EOF) and closes the connection
      }
    }
  }
  return 0;
}

inline void client_on_chunk(evhttp_request* req, void* arg) noexcept {
  auto& c = *static_cast<client_call*>(arg);
  client_core& core = *c.core;
  const client_core::depth_guard guard(core);
  evbuffer* in = evhttp_request_get_input_buffer(req);
  if (c.finished) {
    // Finished by tether (its client destroyed) while libevent still reads it: stop.
    // Cancelling inside a chunk callback is safe (libevent defers the free).
    if (c.held) core.cancel_in_libevent(c);
    core.release(c);
    return;
  }
  const std::size_t n = evbuffer_get_length(in);
  c.received += n;
  if (c.received > core.max_body) {
    c.own_error = make_error_code(errc::response_too_large);
    ++c.busy;
    core.cancel_in_libevent(c);
    core.after_cancel();
    --c.busy;
    core.finish(c, c.own_error, nullptr);
    return;
  }
  if (!c.streaming) {
    evbuffer_add_buffer(core.body, in);
    core.body_owner = &c;
    return;
  }
  if (core.orphaned) return;
  const client_response res = core.response(req, c.status, core.no_body, c.attempts);
  ++c.busy;
  try {
    c.chunk(res, buffer_ref(in));
  } catch (...) {
    report_exception("a client chunk callback");
  }
  --c.busy;
  if (core.no_body) evbuffer_drain(core.no_body, evbuffer_get_length(core.no_body));
  core.release(c);
}

inline void client_on_close(evhttp_connection*, void* arg) noexcept {
  auto& core = *static_cast<client_core*>(arg);
  const client_core::depth_guard guard(core);
  if (core.orphaned) return;
  const peer_end peer = probe_peer_end(core.bev ? bufferevent_getfd(core.bev) : -1);
  if (core.closing) {
    const bool aborted = core.aborted_on_destroy;
    core.deliver_close(client_close_reason::closed_by_client, aborted,
                       aborted ? make_error_code(errc::cancelled) : std::error_code{});
    return;
  }
  if (core.pending.head) {
    // A request is in flight: libevent calls it back right after this (fail_,
    // connection_done, cancel). Report the close after its completion, with its reason.
    core.close_after = core.pending.head;
    core.close_peer = peer;
    return;
  }
  // An idle keep-alive connection.
  client_close_reason why = client_close_reason::timeout;
  if (peer == peer_end::fin) why = client_close_reason::peer_closed;
  else if (peer == peer_end::reset) why = client_close_reason::peer_reset;
  else if (evbuffer_get_length(bufferevent_get_input(core.bev)) > 0) why = client_close_reason::error;
  core.deliver_close(why, false, {});
}

inline void client_on_connect_event(bufferevent* bev, short what, void* arg) noexcept {
  const int err = errno;  // evutil_socket_finished_connecting_ left the connect error here
  auto& core = *static_cast<client_core*>(arg);
  const client_core::depth_guard guard(core);
  const bufferevent_event_cb forward = core.saved_connect_cb;
  void* forward_arg = core.saved_connect_arg;
  core.saved_connect_cb = nullptr;
  if (what & BEV_EVENT_CONNECTED) core.connect_failure = {};
  else if (what & BEV_EVENT_TIMEOUT) core.connect_failure = make_error_code(errc::connect_timeout);
  else if (bufferevent_socket_get_dns_error(bev) != 0) core.connect_failure = make_error_code(errc::resolve_failed);
  else if (const std::error_code t = core.transport_error ? core.transport_error(bev) : std::error_code{}) core.connect_failure = t;
  else core.connect_failure = err ? std::error_code(err, std::system_category()) : make_error_code(errc::connect_failed);
  if (forward) {
    errno = err;  // evhttp_connection_cb tells a refusal from other errors by errno
    forward(bev, what, forward_arg);
  }
  core.connect_failure = {};
  if (!core.orphaned && (what & BEV_EVENT_CONNECTED) && core.connected())
    bufferevent_set_timeouts(bev, core.read_timeout ? &core.read_tv : nullptr, core.write_timeout ? &core.write_tv : nullptr);
  core.after_callback();
}

inline void client_on_retry(evutil_socket_t, short, void* arg) noexcept {
  auto& c = *static_cast<client_call*>(arg);
  client_core& core = *c.core;
  const client_core::depth_guard guard(core);
  if (c.finished || core.closing) return;
  core.waiting.remove(c);
  core.pending.push_back(c);
  ++c.busy;
  core.start(c);
  --c.busy;
  core.release(c);
  core.after_callback();
}

inline void client_on_reap(evutil_socket_t, short, void* arg) noexcept {
  auto* core = static_cast<client_core*>(arg);
  if (core->depth != 0) {  // a nested loop run inside a callback: try again later
    event_active(core->reaper.get(), EV_TIMEOUT, 0);
    return;
  }
  core->release_all();
  delete core;  // frees the reaper event inside its own (non-persistent) callback
}

}  // namespace detail
TETHER_END_NAMESPACE
