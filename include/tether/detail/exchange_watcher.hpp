// tether/detail/exchange_watcher.hpp - what hears the end of an exchange: reply hooks,
// hubs, long-poll rooms and brokers link an exchange_watcher into the connection's
// watcher_list, on either engine.
#pragma once

#include <tether/close_reason.hpp>
#include <tether/config.hpp>

TETHER_BEGIN_NAMESPACE
namespace detail {

struct watcher_list;

/// A node notified once when the current exchange ends (completed or aborted), before
/// any close callback. Streams and producers link one in to stop at once.
struct exchange_watcher {
  void (*notify)(exchange_watcher* self, close_reason why, bool aborted) noexcept = nullptr;
  /// Called (if set) when a bounded policy's output fell back to its low-water mark.
  void (*writable)(exchange_watcher* self) noexcept = nullptr;
  exchange_watcher* prev = nullptr;
  exchange_watcher* next = nullptr;
  watcher_list* owner = nullptr;
};

/// The watchers of one connection's current exchange. Both engines' connections hold
/// one (connection_core on evhttp, lean_connection on the lean engine), so that reply
/// hooks, hubs, long-poll rooms and brokers link to either through the same calls.
struct watcher_list {
  exchange_watcher* watchers = nullptr;

  void link(exchange_watcher& w) noexcept {
    w.owner = this;
    w.prev = nullptr;
    w.next = watchers;
    if (watchers) watchers->prev = &w;
    watchers = &w;
  }
  static void unlink(exchange_watcher& w) noexcept {
    if (!w.owner) return;
    if (w.prev) w.prev->next = w.next;
    else w.owner->watchers = w.next;
    if (w.next) w.next->prev = w.prev;
    w.owner = nullptr;
    w.prev = w.next = nullptr;
  }
  /// Puts `to` where `from` is in its list (`from` ends up unlinked); for moves.
  static void replace(exchange_watcher& from, exchange_watcher& to) noexcept {
    to.owner = from.owner;
    to.prev = from.prev;
    to.next = from.next;
    if (to.owner) {
      if (to.prev) to.prev->next = &to;
      else to.owner->watchers = &to;
      if (to.next) to.next->prev = &to;
    }
    from.owner = nullptr;
    from.prev = from.next = nullptr;
  }

  void notify_writable() noexcept {
    for (exchange_watcher* w = watchers; w;) {
      exchange_watcher* next = w->next;  // a watcher may unlink itself
      if (w->writable) w->writable(w);
      w = next;
    }
  }
  void notify_watchers(close_reason why, bool aborted) noexcept {
    // Pop before notifying: a watcher may destroy itself or link another one.
    while (exchange_watcher* w = watchers) {
      unlink(w[0]);
      if (w->notify) w->notify(w, why, aborted);
    }
  }
};

}  // namespace detail
TETHER_END_NAMESPACE
