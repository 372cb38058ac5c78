// tether/detail/vec.hpp - a growable array for tether's own bookkeeping, without <vector>.
//
// The server, its path handlers and the node pool each keep a short list (listening
// sockets, handlers, blocks). std::vector would do, but <vector> costs every program that
// includes server.hpp its parsing (and vector<bool>'s), and each element type instantiates
// vector's growth and erase code at -O2; this is the few operations those lists use, on
// element types whose move cannot throw. Growth throws std::bad_alloc like std::vector's.
#pragma once

#include <tether/config.hpp>

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE
namespace detail {

template <class T>
class vec {
  static_assert(std::is_nothrow_move_constructible_v<T>, "tether::detail::vec moves its elements and cannot undo a throw");

 public:
  using value_type = T;
  using size_type = std::size_t;
  using iterator = T*;
  using const_iterator = const T*;
  using reference = T&;
  using const_reference = const T&;

  vec() noexcept = default;
  vec(const vec&) = delete;
  vec& operator=(const vec&) = delete;
  ~vec() {
    clear();
    ::operator delete(data_);
  }

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }

  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T& front() noexcept { return data_[0]; }
  const T& front() const noexcept { return data_[0]; }
  T& back() noexcept { return data_[size_ - 1]; }
  const T& back() const noexcept { return data_[size_ - 1]; }

  /// Room for `n` elements: a push_back up to that size cannot fail.
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    T* fresh = static_cast<T*>(::operator new(n * sizeof(T)));
    for (std::size_t i = 0; i < size_; ++i) {
      ::new (static_cast<void*>(fresh + i)) T(std::move(data_[i]));
      data_[i].~T();
    }
    ::operator delete(data_);
    data_ = fresh;
    capacity_ = n;
  }

  void push_back(T v) {
    if (size_ == capacity_) reserve(capacity_ == 0 ? 4 : 2 * capacity_);
    ::new (static_cast<void*>(data_ + size_)) T(std::move(v));
    ++size_;
  }

  /// Removes the element at `it`; the ones after it move down one place.
  void erase(T* it) noexcept {
    static_assert(std::is_nothrow_move_assignable_v<T>);
    for (T* p = it; p + 1 != end(); ++p) *p = std::move(p[1]);
    data_[--size_].~T();
  }

  /// Removes every element for which `pred` holds; returns how many.
  template <class Pred>
  std::size_t erase_if(Pred pred) noexcept {
    static_assert(std::is_nothrow_move_assignable_v<T>);
    std::size_t kept = 0;
    for (std::size_t i = 0; i < size_; ++i) {
      if (pred(static_cast<const T&>(data_[i]))) continue;
      if (kept != i) data_[kept] = std::move(data_[i]);
      ++kept;
    }
    const std::size_t removed = size_ - kept;
    while (size_ > kept) data_[--size_].~T();
    return removed;
  }

  void clear() noexcept {
    while (size_ > 0) data_[--size_].~T();
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace detail
TETHER_END_NAMESPACE
