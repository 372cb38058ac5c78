// tether/detail/thread.hpp - a joinable thread without <thread>.
//
// server_group runs one loop per thread; <thread> (with <memory>, <chrono>'s streams and
// <stop_token>) would cost a program that includes server_group.hpp more compile time
// than its loops' code (docs/performance.md). A POSIX thread does the same: the callable
// is moved to the heap and run once on the new thread.
#pragma once

#include <tether/config.hpp>

#include <pthread.h>
#include <unistd.h>

#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// std::thread's subset that server_group uses: start with a callable, join once.
class thread {
 public:
  thread() noexcept = default;
  /// Runs `f()` on a new thread. Throws std::system_error if the thread cannot be
  /// created (as std::thread), std::bad_alloc if the callable cannot be stored.
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, thread>)
  explicit thread(F&& f) {
    using callable = std::remove_cvref_t<F>;
    auto* held = new callable(std::forward<F>(f));
    if (const int rc = pthread_create(&id_, nullptr, &run<callable>, held); rc != 0) {
      delete held;
      throw std::system_error(rc, std::generic_category(), "pthread_create");
    }
    joinable_ = true;
  }
  thread(thread&& o) noexcept : id_(o.id_), joinable_(std::exchange(o.joinable_, false)) {}
  /// Like std::thread's: assigning to a joinable thread is a bug (std::terminate there;
  /// here the old thread is joined first).
  thread& operator=(thread&& o) noexcept {
    if (this != &o) {
      if (joinable_) join();
      id_ = o.id_;
      joinable_ = std::exchange(o.joinable_, false);
    }
    return *this;
  }
  thread(const thread&) = delete;
  thread& operator=(const thread&) = delete;
  /// Joins a thread still joinable (std::thread would terminate the program).
  ~thread() {
    if (joinable_) join();
  }

  bool joinable() const noexcept { return joinable_; }
  void join() noexcept {
    (void)pthread_join(id_, nullptr);
    joinable_ = false;
  }

  /// std::thread::hardware_concurrency(): the processors online, 0 if unknown.
  static unsigned hardware_concurrency() noexcept {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<unsigned>(n) : 0;
  }

 private:
  template <class Callable>
  static void* run(void* p) noexcept {
    auto* held = static_cast<Callable*>(p);
    (*held)();
    delete held;
    return nullptr;
  }

  pthread_t id_{};
  bool joinable_ = false;
};

}  // namespace detail
TETHER_END_NAMESPACE
