// tether/detail/sync.hpp - a mutex, a condition variable and an atomic word without
// <mutex>, <condition_variable> and <atomic>.
//
// The headers a hello server includes need one mutex (constant-initialised, never
// destroyed) and a few atomic counters and flags; <mutex> and <atomic> would cost them
// about as much compile time as the rest of server.hpp's standard headers
// (docs/performance.md). A POSIX mutex and the compiler's __atomic built-ins (g++ and
// clang, understood by ThreadSanitizer) do the same work, with the same instructions.
#pragma once

#include <tether/config.hpp>

#include <pthread.h>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// std::mutex without <mutex>: constant-initialised (usable in an object of static
/// storage duration, before main, from any thread), never destroyed. Not recursive.
class process_mutex {
 public:
  constexpr process_mutex() noexcept = default;
  process_mutex(const process_mutex&) = delete;
  process_mutex& operator=(const process_mutex&) = delete;
  void lock() noexcept { (void)pthread_mutex_lock(&m_); }
  void unlock() noexcept { (void)pthread_mutex_unlock(&m_); }
  pthread_mutex_t* native() noexcept { return &m_; }

 private:
  pthread_mutex_t m_ = PTHREAD_MUTEX_INITIALIZER;
};

/// A condition variable to use with a process_mutex (std::condition_variable): wait()
/// is called with the mutex held, as std::condition_variable::wait with a predicate.
class condition {
 public:
  constexpr condition() noexcept = default;
  condition(const condition&) = delete;
  condition& operator=(const condition&) = delete;
  ~condition() { (void)pthread_cond_destroy(&c_); }
  /// Waits until `done()` holds; `m` is held on entry and on return.
  template <class Done>
  void wait(process_mutex& m, Done done) {
    while (!done()) (void)pthread_cond_wait(&c_, m.native());
  }
  void notify_all() noexcept { (void)pthread_cond_broadcast(&c_); }

 private:
  pthread_cond_t c_ = PTHREAD_COND_INITIALIZER;
};

/// Holds a process_mutex for a scope (std::lock_guard).
class scoped_lock {
 public:
  explicit scoped_lock(process_mutex& m) noexcept : m_(m) { m_.lock(); }
  scoped_lock(const scoped_lock&) = delete;
  scoped_lock& operator=(const scoped_lock&) = delete;
  ~scoped_lock() { m_.unlock(); }

 private:
  process_mutex& m_;
};

/// Memory orders of the __atomic built-ins (std::memory_order's).
enum class order : int {
  relaxed = __ATOMIC_RELAXED,
  acquire = __ATOMIC_ACQUIRE,
  release = __ATOMIC_RELEASE,
  acq_rel = __ATOMIC_ACQ_REL,
  seq_cst = __ATOMIC_SEQ_CST,
};

/// An integer or bool read and written atomically (std::atomic<T>'s members that tether
/// uses, with the same defaults).
template <class T>
class atomic_value {
 public:
  constexpr atomic_value() noexcept = default;
  constexpr atomic_value(T v) noexcept : v_(v) {}
  atomic_value(const atomic_value&) = delete;
  atomic_value& operator=(const atomic_value&) = delete;

  T load(order o = order::seq_cst) const noexcept { return __atomic_load_n(&v_, static_cast<int>(o)); }
  void store(T v, order o = order::seq_cst) noexcept { __atomic_store_n(&v_, v, static_cast<int>(o)); }
  T fetch_add(T d, order o = order::seq_cst) noexcept { return __atomic_fetch_add(&v_, d, static_cast<int>(o)); }
  T fetch_sub(T d, order o = order::seq_cst) noexcept { return __atomic_fetch_sub(&v_, d, static_cast<int>(o)); }
  T exchange(T v, order o = order::seq_cst) noexcept { return __atomic_exchange_n(&v_, v, static_cast<int>(o)); }
  /// As std::atomic's: on failure `expected` becomes the current value (read relaxed
  /// unless `o` is seq_cst or acquire-bearing, as the standard's one-order overload).
  bool compare_exchange_weak(T& expected, T desired, order o = order::seq_cst) noexcept {
    return __atomic_compare_exchange_n(&v_, &expected, desired, true, static_cast<int>(o), failure_order(o));
  }

 private:
  static constexpr int failure_order(order o) noexcept {
    return o == order::acq_rel ? __ATOMIC_ACQUIRE : o == order::release ? __ATOMIC_RELAXED : static_cast<int>(o);
  }
  T v_{};
};

}  // namespace detail
TETHER_END_NAMESPACE
