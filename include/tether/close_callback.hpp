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
/// @file
/// What a connection's close callback may be: tether::close_function (the default), a
/// lambda's own type, or tether::no_close_callback. See docs/concepts/close_callback.md.
#pragma once

#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/inplace_function.hpp>

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
  /// Does nothing: makes the type a close_callback, so a server can name it.
  void operator()(const close_event&) const noexcept {}
};

/// A close callback of any type, stored in place: `Capacity` bytes, no heap, ever.
///
/// A callable larger than `Capacity` (or over-aligned) is a compile error that says so;
/// raise the capacity or make the callable's type the server's close callback type.
template <std::size_t Capacity = 3 * sizeof(void*)>
using close_function = inplace_function<void(const close_event&), Capacity>;

namespace detail {

/// What stops `on_close(f)` from storing `f` as a server's `Callback`, if anything; each
/// fault has its own sentence (basic_connection::on_close).
enum class close_callback_fault { none, no_callbacks, not_callable, too_large, over_aligned, throwing_move, wrong_type };

template <class Callback>
struct close_function_capacity {
  static constexpr bool in_place = false;
  static constexpr std::size_t value = static_cast<std::size_t>(-1);
};
template <std::size_t Capacity>
struct close_function_capacity<close_function<Capacity>> {
  static constexpr bool in_place = true;
  static constexpr std::size_t value = Capacity;
};

template <class Callback, class F>
constexpr close_callback_fault close_callback_fault_of() noexcept {
  using T = std::remove_cvref_t<F>;
  using capacity = close_function_capacity<Callback>;
  if constexpr (std::is_same_v<Callback, no_close_callback>) {
    return close_callback_fault::no_callbacks;
  } else if constexpr (std::is_same_v<T, Callback>) {
    return close_callback_fault::none;
  } else if constexpr (!std::invocable<T&, const close_event&>) {
    return close_callback_fault::not_callable;
  } else if constexpr (capacity::in_place) {
    if constexpr (sizeof(T) > capacity::value) return close_callback_fault::too_large;
    else if constexpr (alignof(T) > alignof(std::max_align_t)) return close_callback_fault::over_aligned;
    else if constexpr (!std::is_nothrow_move_constructible_v<T>) return close_callback_fault::throwing_move;
    else return close_callback_fault::none;
  } else if constexpr (!std::is_constructible_v<Callback, F&&>) {
    return close_callback_fault::wrong_type;
  } else {
    return close_callback_fault::none;
  }
}

}  // namespace detail

TETHER_END_NAMESPACE
