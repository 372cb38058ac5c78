// tether/detail/libevent_use.hpp - has this process started using libevent yet?
//
// libevent's allocator can be replaced (event_set_mem_functions) only before libevent
// allocates anything: a block malloc'd before the switch and freed after it would reach
// the replacement's free. tether cannot see every libevent call a program makes, but it
// sees its own: every tether constructor that makes libevent allocate marks the process
// here first, and install_memory_policy (memory_policy.hpp) refuses to run once the mark
// is set.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/sync.hpp>

TETHER_BEGIN_NAMESPACE
namespace detail {

struct libevent_process_state {
  // Taken by an install and by the first use, so that an install racing with a first
  // use on another thread either finishes before that use allocates or is refused.
  process_mutex mutex;
  // Set (under `mutex`, release) once tether made libevent allocate; read lock-free.
  atomic_value<bool> used{false};
  // The installed memory policy's identity (detail::memory_policy_id<P>), or null.
  const void* memory_policy = nullptr;
};

inline constinit libevent_process_state libevent_process{};

/// Called by tether before it makes libevent allocate. After the first call it is one
/// load: the lock is taken only once per process.
inline void note_libevent_use() noexcept {
  if (libevent_process.used.load(order::acquire)) return;
  const scoped_lock lock(libevent_process.mutex);
  libevent_process.used.store(true, order::release);
}

}  // namespace detail
TETHER_END_NAMESPACE
