// tether/inplace_function.hpp - a callable of any type, stored in place: no heap, ever.
//
// tether stores callbacks by their own type wherever the type can be a template
// parameter. Where it cannot (a callback chosen at run time, per connection or per
// stream), it uses this: the callable lives in a fixed buffer inside the object that
// owns it, and is called through one function pointer. A callable that does not fit is a
// compile error that says so, never a silent allocation.
/// @file
/// tether::inplace_function: a callable of any type stored in a fixed buffer, never on the
/// heap.
#pragma once

#include <tether/config.hpp>

#include <concepts>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

template <class Signature, std::size_t Capacity = 3 * sizeof(void*)>
class inplace_function;

/// A callable `R(Args...)` of any type, stored in `Capacity` bytes inside this object: no
/// heap allocation, ever. A callable that does not fit, is over-aligned or can throw when
/// moved is a compile error (capture a pointer to a larger object instead, or raise
/// `Capacity`). Move-only; calling an empty one does nothing and returns R{}.
///
/// @tparam Capacity bytes of in-place storage (three pointers by default)
template <class R, class... Args, std::size_t Capacity>
class inplace_function<R(Args...), Capacity> {
 public:
  inplace_function() noexcept = default;

  /// Stores `f` in place (implicit, so a lambda can be passed where one is expected).
  template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, inplace_function> &&
             std::is_invocable_r_v<R, std::remove_cvref_t<F>&, Args...>)
  inplace_function(F&& f) noexcept(std::is_nothrow_constructible_v<std::remove_cvref_t<F>, F&&>) {  // NOLINT
    using T = std::remove_cvref_t<F>;
    // The callable is stored in place: it must fit in Capacity bytes. Capture less (a
    // pointer to a larger object), or raise the capacity template argument.
    static_assert(sizeof(T) <= Capacity,
                  "tether: the callable is larger than the in-place capacity: capture less (a pointer or reference "
                  "to the state, or a std::unique_ptr to it), or raise the Capacity template argument "
                  "(tether::close_function<64>) (docs/concepts/close_callback.md)");
    static_assert(alignof(T) <= alignof(std::max_align_t), "tether: the callable is over-aligned");
    // Moved when its owner moves; a throwing move could not be recovered from.
    static_assert(std::is_nothrow_move_constructible_v<T>, "tether: the callable must be nothrow-move-constructible");
    ::new (static_cast<void*>(storage_)) T(std::forward<F>(f));
    ops_ = &ops_for<T>;
  }

  /// Moves `o`'s callable in; `o` becomes empty.
  inplace_function(inplace_function&& o) noexcept : ops_(o.ops_) {
    if (ops_) {
      ops_->move(o.storage_, storage_);
      o.reset();
    }
  }
  /// Destroys the callable held, then moves `o`'s in; `o` becomes empty.
  inplace_function& operator=(inplace_function&& o) noexcept {
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
  inplace_function(const inplace_function&) = delete;
  inplace_function& operator=(const inplace_function&) = delete;
  ~inplace_function() { reset(); }

  /// True if a callable is stored.
  explicit operator bool() const noexcept { return ops_ != nullptr; }

  /// Calls the callable; an empty inplace_function does nothing (and returns R{}).
  R operator()(Args... args) {
    if (!ops_) {
      if constexpr (std::is_void_v<R>) return;
      else return R{};
    }
    return ops_->call(storage_, std::forward<Args>(args)...);
  }

  /// Destroys the stored callable; the object becomes empty.
  void reset() noexcept {
    if (ops_) {
      ops_->destroy(storage_);
      ops_ = nullptr;
    }
  }

 private:
  struct ops {
    R (*call)(void*, Args&&...);
    void (*move)(void* from, void* to) noexcept;
    void (*destroy)(void*) noexcept;
  };
  template <class T>
  static constexpr ops ops_for{
      [](void* p, Args&&... args) -> R { return (*static_cast<T*>(p))(std::forward<Args>(args)...); },
      [](void* from, void* to) noexcept { ::new (to) T(std::move(*static_cast<T*>(from))); },
      [](void* p) noexcept { static_cast<T*>(p)->~T(); },
  };

  alignas(std::max_align_t) unsigned char storage_[Capacity];
  const ops* ops_ = nullptr;
};

TETHER_END_NAMESPACE
