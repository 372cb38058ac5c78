// tether/detail/owner.hpp - single owners without <memory>.
//
// What the headers a hello server includes need of std::unique_ptr, for a fraction of
// <memory>'s compile time (<memory> alone costs about as much as the rest of server.hpp's
// standard headers; docs/performance.md): an owner of one object (deleted as T, which may
// be a base with a virtual destructor), of an array, and of a libevent object freed by a
// given function. Each is one pointer wide; move-only; a null owner frees nothing. The
// public aliases of tether/handle.hpp (std::unique_ptr with c_deleter) are unchanged.
#pragma once

#include <tether/config.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <cstddef>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// Frees a pointer with a policy (Free::free(p)); the common part of the owners below.
template <class T, class Free>
class basic_owner {
 public:
  constexpr basic_owner() noexcept = default;
  constexpr basic_owner(decltype(nullptr)) noexcept {}
  explicit basic_owner(T* p) noexcept : p_(p) {}
  basic_owner(basic_owner&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  /// From an owner of a derived type (single objects only, when T* accepts U*).
  template <class U, class F>
    requires(!std::is_same_v<U, T> && std::is_convertible_v<U*, T*>)
  basic_owner(basic_owner<U, F>&& o) noexcept : p_(o.release()) {}
  basic_owner& operator=(basic_owner&& o) noexcept {
    reset(o.release());
    return *this;
  }
  basic_owner& operator=(decltype(nullptr)) noexcept {
    reset();
    return *this;
  }
  basic_owner(const basic_owner&) = delete;
  basic_owner& operator=(const basic_owner&) = delete;
  ~basic_owner() {
    if (p_) Free::free(p_);
  }

  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  /// Gives up ownership.
  T* release() noexcept { return std::exchange(p_, nullptr); }
  /// Frees the object held, if any, and holds `p`.
  void reset(T* p = nullptr) noexcept {
    T* old = std::exchange(p_, p);
    if (old) Free::free(old);
  }
  friend bool operator==(const basic_owner& o, decltype(nullptr)) noexcept { return o.p_ == nullptr; }

 private:
  T* p_ = nullptr;
};

struct delete_one {
  template <class T>
  static void free(T* p) noexcept {
    delete p;
  }
};
struct delete_array {
  template <class T>
  static void free(T* p) noexcept {
    delete[] p;
  }
};
template <auto FreeFn>
struct free_with {
  template <class T>
  static void free(T* p) noexcept {
    FreeFn(p);
  }
};

/// Owns one object made with new (std::unique_ptr<T>).
template <class T>
using unique_owner = basic_owner<T, delete_one>;
/// Owns an array made with new[] (std::unique_ptr<T[]>), indexed like one.
template <class T>
class unique_array : public basic_owner<T, delete_array> {
 public:
  using basic_owner<T, delete_array>::basic_owner;
  T& operator[](std::size_t i) const noexcept { return this->get()[i]; }
};
/// Owns a C object freed with FreeFn (tether::unique_c_ptr<T, FreeFn>).
template <class T, auto FreeFn>
using c_owner = basic_owner<T, free_with<FreeFn>>;

/// std::make_unique<T>(args...).
template <class T, class... Args>
unique_owner<T> make_owner(Args&&... args) {
  return unique_owner<T>(new T(std::forward<Args>(args)...));
}
/// std::make_unique<T[]>(n): n value-initialised elements.
template <class T>
unique_array<T> make_array(std::size_t n) {
  return unique_array<T>(new T[n]());
}

// What tether's headers own, by the names of tether/handle.hpp's public aliases.
using unique_event_base = c_owner<event_base, &event_base_free>;
using unique_event_config = c_owner<event_config, &event_config_free>;
using unique_event = c_owner<event, &event_free>;
using unique_evhttp = c_owner<evhttp, &evhttp_free>;
using unique_evbuffer = c_owner<evbuffer, &evbuffer_free>;
using unique_evhttp_uri = c_owner<evhttp_uri, &evhttp_uri_free>;
}  // namespace detail
TETHER_END_NAMESPACE
