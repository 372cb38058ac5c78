// tether/detail/connection_state.hpp - the typed per-connection state: the close
// callback stored by value, and the pool that recycles states between connections.
#pragma once

#include <tether/close_callback.hpp>
#include <tether/config.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/inplace_function.hpp>

#include <cstddef>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// Where a connection's close callback is kept: in place, with a flag for "none set"...
template <class Callback>
class callback_slot {
 public:
  bool has_value() const noexcept { return cb_.has_value(); }
  void emplace(Callback&& cb) noexcept { cb_.emplace(std::move(cb)); }
  void reset() noexcept { cb_.reset(); }
  Callback& get() noexcept { return *cb_; }

 private:
  std::optional<Callback> cb_;
};
/// ... except for inplace_function (close_function<N>), whose empty state says it.
template <class R, class... Args, std::size_t N>
class callback_slot<inplace_function<R(Args...), N>> {
  using callback = inplace_function<R(Args...), N>;

 public:
  bool has_value() const noexcept { return bool(cb_); }
  void emplace(callback&& cb) noexcept { cb_ = std::move(cb); }
  void reset() noexcept { cb_.reset(); }
  callback& get() noexcept { return cb_; }

 private:
  callback cb_;
};

template <class Config>
class connection_state final : public connection_core {
 public:
  using callback_type = typename Config::close_callback;
  using flow_type =
      std::conditional_t<Config::buffer_policy::flow::bounded, flow_state, no_flow_state>;

  /// A bounded buffer policy's flow control (no storage for an unbounded one).
  [[no_unique_address]] flow_type flow;

  /// The state tracking `evcon`, created (or taken from the pool) on first use.
  /// Returns null only if memory ran out.
  static connection_state* acquire(server_core& s, evhttp_connection* evcon) noexcept {
    connection_guard* g = s.guards.find(evcon);
    if (!g) return nullptr;  // every dispatched request's connection has one (guard_set::dispatch)
    if (g->tracked) return static_cast<connection_state*>(g->tracked);
    connection_state* st = nullptr;
    if (s.free_list) {
      st = static_cast<connection_state*>(s.free_list);
      s.free_list = st->all_next;
      --s.free_count;
    } else {
      st = new (std::nothrow) connection_state();
      if (!st) return nullptr;
    }
    st->all_prev = nullptr;
    st->all_next = s.all;
    if (s.all) s.all->all_prev = st;
    s.all = st;
    st->server = &s;
    st->evcon = evcon;
    // The connection's close callback is its guard's (set at accept): the guard hands
    // the close to on_guard_close, which the server registered as tracked_close.
    st->guard = g;
    g->tracked = st;
    ++s.tracked;
    return st;
  }

  /// The close of a tracked connection, called by its guard's close callback: what the
  /// guard knows (tether's own verdict, a request being read) goes into the reason.
  static void on_guard_close(evhttp_connection* evcon, connection_core* c, const connection_guard& g) noexcept {
    auto* st = static_cast<connection_state*>(c);
    if (g.has_reason && !st->forced) st->forced = g.reason;
    st->protocol_hint = g.in_head_or_body();
    if (st->server) --st->server->tracked;
    on_close(evcon, st);
  }

  /// Stores the connection's close callback (replacing an earlier one).
  void set_callback(callback_type cb) noexcept {
    callback_.reset();
    callback_.emplace(std::move(cb));
  }
  bool has_callback() const noexcept { return callback_.has_value(); }

  void add_ref() noexcept { ++refs; }
  /// Drops a reference; the last one on a closed connection recycles the state.
  void release() noexcept {
    if (--refs == 0 && closed) recycle(this);
  }

  /// Frees every pooled state and orphans the ones a handle still holds (their handles
  /// then report peer_gone and free them when the last one goes).
  static void destroy_all(server_core& s) noexcept {
    connection_core* c = s.all;
    while (c) {
      auto* st = static_cast<connection_state*>(c);
      connection_core* next = c->all_next;
      if (c->refs == 0) {
        delete st;
      } else {
        // A handle still points here; its timer and parked chunk belong to a loop that
        // may be destroyed before the handle, so they go now.
        if constexpr (std::is_same_v<flow_type, flow_state>) st->flow.reset();
        c->server = nullptr;
        c->all_prev = c->all_next = nullptr;
      }
      c = next;
    }
    for (c = s.free_list; c;) {
      connection_core* next = c->all_next;
      delete static_cast<connection_state*>(c);
      c = next;
    }
    s.all = nullptr;
    s.free_list = nullptr;
    s.free_count = 0;
  }

 private:
  connection_state() noexcept {
    if constexpr (std::is_same_v<flow_type, flow_state>) flow.core = this;
  }

  static void on_close(evhttp_connection*, void* self) noexcept {
    auto* st = static_cast<connection_state*>(self);
    ++st->refs;  // keep *st alive across the user's callback
    if constexpr (std::is_same_v<flow_type, flow_state>) st->flow.on_close();
    const close_event ev = st->close_begin();
    if (st->callback_.has_value()) {
      try {
        st->callback_.get()(ev);
      } catch (...) {
        report_exception("a close callback");
      }
    }
    st->release();
  }

  static void recycle(connection_state* st) noexcept {
    st->callback_.reset();
    if constexpr (std::is_same_v<flow_type, flow_state>) st->flow.reset();
    st->reset_core();
    server_core* s = st->server;
    if (s) {
      if (st->all_prev) st->all_prev->all_next = st->all_next;
      else s->all = st->all_next;
      if (st->all_next) st->all_next->all_prev = st->all_prev;
      st->all_prev = nullptr;
      if (s->free_count < s->pool_limit) {
        st->all_next = s->free_list;
        s->free_list = st;
        ++s->free_count;
        return;
      }
    }
    delete st;
  }

  callback_slot<callback_type> callback_;
};

}  // namespace detail
TETHER_END_NAMESPACE
