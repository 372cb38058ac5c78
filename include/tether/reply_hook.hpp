// tether/reply_hook.hpp - how a producer learns when to continue and when to stop.
//
// A reply_hook belongs to the application (a member of its session, stream or producer
// object) and is linked to one request with request_handle::attach(). It is told:
//  * on_writable(): a bounded buffer policy's output fell back to its low-water mark
//    after a send was refused (errc::would_block), dropped or parked;
//  * on_end(reason, aborted): the exchange ended, once: the reply completed
//    (close_reason::completed, aborted == false), or the client or server went away
//    first (aborted == true). This runs before the connection's close callback, the
//    moment the close policy sees the hang-up, so producers stop without ever writing
//    into a dead connection.
// Hooks unlink themselves when destroyed; many hooks may watch one request. Callbacks
// are stored in place (inplace_function): no heap.
/// @file
/// tether::reply_hook: how code producing a reply hears "writable again" and "the exchange
/// ended".
#pragma once

#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/exchange_watcher.hpp>
#include <tether/inplace_function.hpp>

#include <utility>

TETHER_BEGIN_NAMESPACE

namespace detail {
struct reply_hook_access;
}

/// Tells the code producing a reply when to continue and when to stop: on_writable() when
/// a bounded output drained after a refused, dropped or parked send, on_end(reason,
/// aborted) once when the exchange ends (before the connection's close callback).
///
/// Make it a member of your session or producer object and link it to a request with
/// basic_request_handle::attach(hook). It unlinks itself when destroyed; many hooks may
/// watch one request. Its callbacks are stored in place (three pointers each, no heap);
/// an exception escaping one is caught and reported. Use it on the loop's thread.
class reply_hook : private detail::exchange_watcher {
 public:
  reply_hook() noexcept {
    notify = &on_notify;
    writable = &on_writable_notify;
  }
  reply_hook(const reply_hook&) = delete;
  reply_hook& operator=(const reply_hook&) = delete;
  /// Takes over `o`'s link (if any) and callbacks; `o` is left detached and empty.
  reply_hook(reply_hook&& o) noexcept : writable_(std::move(o.writable_)), end_(std::move(o.end_)) {
    notify = &on_notify;
    writable = &on_writable_notify;
    detail::watcher_list::replace(o, *this);
  }
  /// Unlinks this hook, then takes over `o`'s link and callbacks; `o` is left detached and empty.
  reply_hook& operator=(reply_hook&& o) noexcept {
    if (this != &o) {
      detach();
      writable_ = std::move(o.writable_);
      end_ = std::move(o.end_);
      detail::watcher_list::replace(o, *this);
    }
    return *this;
  }
  ~reply_hook() { detach(); }

  /// Sets what runs when the output is writable again (callable as `f()`).
  template <class F>
  void on_writable(F&& f) noexcept(noexcept(inplace_function<void()>(std::forward<F>(f)))) {
    writable_ = inplace_function<void()>(std::forward<F>(f));
  }
  /// Sets what runs once when the exchange ends (callable as `f(close_reason, bool aborted)`).
  template <class F>
  void on_end(F&& f) noexcept(noexcept(inplace_function<void(close_reason, bool)>(std::forward<F>(f)))) {
    end_ = inplace_function<void(close_reason, bool)>(std::forward<F>(f));
  }

  /// True while linked to a request whose exchange has not ended.
  bool attached() const noexcept { return owner != nullptr; }
  /// Unlinks without notifying.
  void detach() noexcept { detail::watcher_list::unlink(*this); }

 private:
  friend struct detail::reply_hook_access;

  static reply_hook* self(detail::exchange_watcher* w) noexcept { return static_cast<reply_hook*>(w); }

  static void on_notify(detail::exchange_watcher* w, close_reason why, bool aborted) noexcept {
    try {
      self(w)->end_(why, aborted);
    } catch (...) {
      detail::report_exception("a reply_hook on_end callback");
    }
  }
  static void on_writable_notify(detail::exchange_watcher* w) noexcept {
    try {
      self(w)->writable_();
    } catch (...) {
      detail::report_exception("a reply_hook on_writable callback");
    }
  }

  inplace_function<void()> writable_;
  inplace_function<void(close_reason, bool)> end_;
};

namespace detail {
struct reply_hook_access {
  static exchange_watcher& watcher(reply_hook& h) noexcept { return h; }
};
}  // namespace detail

TETHER_END_NAMESPACE
