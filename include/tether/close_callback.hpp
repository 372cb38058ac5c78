// tether/close_callback.hpp - what a connection's close callback may be.
//
// A server's third template parameter is the type of its per-connection close callback.
// The callback is stored by value inside tether's per-connection state (never behind a
// std::function, never in a separate heap block), so a captureless lambda costs no
// storage and a stateful one costs exactly its captures.
//
//     auto on_close = [](const tether::close_event& e) noexcept { log(e.reason); };
//     tether::basic_server<tether::eager_close<>, tether::copy_buffer, decltype(on_close)> srv{loop};
//
// The default, close_function<>, accepts any small callable at run time, still without a
// heap allocation: its storage is an in-place buffer of three pointers.
#pragma once

#include <tether/close_reason.hpp>
#include <tether/config.hpp>

#include <concepts>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// A type `F` is a close_callback if:
/// 1. it can be called as `f(const close_event&)` (the result is ignored), and
/// 2. it is nothrow-move-constructible (tether moves it into the connection's state).
///
/// An exception escaping the call is caught at the libevent boundary and reported
/// (docs/errors.md); it never reaches libevent.
template <class F>
concept close_callback =
    std::invocable<F&, const close_event&> &&     // 1. callable with the event
    std::is_nothrow_move_constructible_v<F>;      // 2. nothrow-movable

/// The close callback type of a server that never notifies anyone: setting one is a
/// compile error, and the per-connection state holds nothing for it.
struct no_close_callback {
  void operator()(const close_event&) const noexcept {}
};

/// A callable of any type, stored in place: `Capacity` bytes, no heap, ever.
///
/// A callable larger than `Capacity` (or over-aligned) is a compile error that says so;
/// raise the capacity or make the callable's type the server's close callback type.
template <std::size_t Capacity = 3 * sizeof(void*)>
class close_function {
 public:
  close_function() noexcept = default;

  template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, close_function> &&
             std::invocable<std::remove_cvref_t<F>&, const close_event&>)
  close_function(F&& f) noexcept(std::is_nothrow_constructible_v<std::remove_cvref_t<F>, F&&>) {  // NOLINT
    using T = std::remove_cvref_t<F>;
    // The callable is stored in place: it must fit in Capacity bytes. Capture less (a
    // pointer to a larger object), or raise the capacity: close_function<64>.
    static_assert(sizeof(T) <= Capacity, "tether::close_function: the callable is larger than the in-place capacity");
    static_assert(alignof(T) <= alignof(std::max_align_t), "tether::close_function: the callable is over-aligned");
    // The callable is moved when the connection state moves it into place.
    static_assert(std::is_nothrow_move_constructible_v<T>, "tether::close_function: the callable must be nothrow-move-constructible");
    ::new (static_cast<void*>(storage_)) T(std::forward<F>(f));
    ops_ = &ops_for<T>;
  }

  close_function(close_function&& o) noexcept : ops_(o.ops_) {
    if (ops_) {
      ops_->move(o.storage_, storage_);
      o.reset();
    }
  }
  close_function& operator=(close_function&& o) noexcept {
    if (this != &o) {
      reset();
      if (o.ops_) {
        ops_ = o.ops_;
        ops_->move(o.storage_, storage_);
        o.reset();
      }
    }
    return *this;
  }
  close_function(const close_function&) = delete;
  close_function& operator=(const close_function&) = delete;
  ~close_function() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  void operator()(const close_event& e) {
    if (ops_) ops_->call(storage_, e);
  }

 private:
  struct ops {
    void (*call)(void*, const close_event&);
    void (*move)(void* from, void* to) noexcept;
    void (*destroy)(void*) noexcept;
  };
  template <class T>
  static constexpr ops ops_for{
      [](void* p, const close_event& e) { (*static_cast<T*>(p))(e); },
      [](void* from, void* to) noexcept { ::new (to) T(std::move(*static_cast<T*>(from))); },
      [](void* p) noexcept { static_cast<T*>(p)->~T(); },
  };

  void reset() noexcept {
    if (ops_) {
      ops_->destroy(storage_);
      ops_ = nullptr;
    }
  }

  alignas(std::max_align_t) unsigned char storage_[Capacity];
  const ops* ops_ = nullptr;
};

TETHER_END_NAMESPACE
