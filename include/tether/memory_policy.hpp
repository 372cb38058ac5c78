// tether/memory_policy.hpp - where libevent's own allocations come from.
//
// libevent allocates through three process-wide function pointers (malloc, realloc,
// free) that a program may replace once, with event_set_mem_functions, before libevent
// allocates anything. evhttp makes about 38 allocations per request, nearly all under
// 100 bytes (a header is an evkeyval and two strdup'd strings), and glibc's malloc and
// free are about a fifth of the instructions of a small request. A memory policy is
// what tether installs there.
//
// The family, side by side:
//
//   | policy                          | libevent's malloc / realloc / free become        | cost per hello request |
//   |---------------------------------|--------------------------------------------------|------------------------|
//   | system_memory (the default:     | the C library's (nothing is installed)           | baseline               |
//   |   install nothing)              |                                                  |                        |
//   | pooled_memory<Bytes, Size, Up>  | per-thread size-class caches in front of `Up`    | 0.81x the instructions |
//   |                                 | (malloc): no locks, at most `Bytes` cached per   | (docs/memory.md)       |
//   |                                 | thread, released when the thread ends            |                        |
//
// Install one first thing in main, before anything else touches libevent:
//
//     int main() {
//       if (auto ec = tether::install_memory_policy<tether::pooled_memory<>>()) {
//         std::fprintf(stderr, "memory policy: %s\n", ec.message().c_str());
//         return 1;
//       }
//       tether::event_loop loop;
//       ...
//
// It is process-wide (every event_base, every thread, any other code in the process that
// uses libevent) and cannot be undone: a block that libevent got from one allocator must
// go back to the same one. See docs/memory.md.
/// @file
/// Memory policies: where libevent's own allocations come from (tether::system_memory,
/// tether::pooled_memory). See docs/memory.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/libevent_use.hpp>
#include <tether/error.hpp>

#include <event2/event.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <system_error>
#include <type_traits>

#if defined(__SANITIZE_ADDRESS__)
#  define TETHER_DETAIL_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define TETHER_DETAIL_ASAN 1
#  endif
#endif
#ifdef TETHER_DETAIL_ASAN
#  include <sanitizer/asan_interface.h>
#endif

TETHER_BEGIN_NAMESPACE

/// A type `P` models memory_policy if it provides these three static, `noexcept`
/// functions with the C library's meaning, whose addresses libevent can call:
/// 1. `P::allocate(n) -> void*`: like malloc: a block of at least `n` bytes aligned to
///    alignof(std::max_align_t), or null; `allocate(0)` may return null or a block;
/// 2. `P::reallocate(p, n) -> void*`: like realloc: `reallocate(nullptr, n)` allocates,
///    `reallocate(p, 0)` frees `p` and returns null; otherwise the first min(old, n) bytes
///    are kept, and on failure null is returned and `p` is left as it was;
/// 3. `P::deallocate(p) -> void`: like free; `deallocate(nullptr)` does nothing.
///
/// libevent calls them from whichever thread runs its code, so they must be thread-safe.
///
/// @see docs/concepts/memory_policy.md for the table and a user-written policy.
template <class P>
concept memory_policy = requires(std::size_t n, void* p) {
  { P::allocate(n) } noexcept -> std::same_as<void*>;       // 1. malloc
  { P::reallocate(p, n) } noexcept -> std::same_as<void*>;  // 2. realloc
  { P::deallocate(p) } noexcept -> std::same_as<void>;      // 3. free
  // libevent stores the three as C function pointers: plain static functions, not
  // overload sets or templates.
  requires std::convertible_to<decltype(&P::allocate), void* (*)(std::size_t)>;
  requires std::convertible_to<decltype(&P::reallocate), void* (*)(void*, std::size_t)>;
  requires std::convertible_to<decltype(&P::deallocate), void (*)(void*)>;
};

/// libevent's default: the C library's malloc, realloc and free. Installing it changes
/// nothing in libevent (no function is installed) but claims the process, so that no
/// other policy can be installed later.
///
/// @par Concepts
/// memory_policy
struct system_memory {
  /// std::malloc(n).
  static void* allocate(std::size_t n) noexcept { return std::malloc(n); }
  /// std::realloc(p, n).
  static void* reallocate(void* p, std::size_t n) noexcept { return std::realloc(p, n); }
  /// std::free(p).
  static void deallocate(void* p) noexcept { std::free(p); }
};

namespace detail {

// Every block of a pooled_memory starts with this header; the pointer handed out is the
// byte just after it, so it keeps the alignment of the block Upstream returned. The class
// word and the free-list link are separate words: a block sitting in a cache still knows
// its class when it is handed out again.
struct alignas(std::max_align_t) pool_block {
  std::size_t size_class;  // the index of its size class, or pool_large_class
  union {
    pool_block* next;  // a cached block: the next cached block of the same class
    std::size_t size;  // a block of the large path (never cached): the size asked for
  };
};
inline constexpr std::size_t pool_large_class = SIZE_MAX;
static_assert(sizeof(pool_block) % alignof(std::max_align_t) == 0);

// Under AddressSanitizer a block's header is unaddressable while the block is in use, and
// so is everything past the size that was asked for; a cached block is unaddressable but
// for its header. So ASan reports an overflow into the slack of a size class, a write
// below a block, and a use of a block after libevent freed it, as it would with malloc.
#ifdef TETHER_DETAIL_ASAN
// g++ 12 takes the const void* of the ASan interface for a read of the (still
// uninitialized) bytes it names, and warns; nothing is read.
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#  endif
inline void pool_open(pool_block* b) noexcept { __asan_unpoison_memory_region(b, sizeof(pool_block)); }
inline void pool_mark_live(pool_block* b, std::size_t capacity, std::size_t n) noexcept {
  __asan_unpoison_memory_region(b + 1, n);
  __asan_poison_memory_region(reinterpret_cast<char*>(b + 1) + n, capacity - n);
  __asan_poison_memory_region(b, sizeof(pool_block));
}
inline void pool_mark_cached(pool_block* b, std::size_t capacity) noexcept {
  __asan_poison_memory_region(b + 1, capacity);
}
inline void pool_unpoison_payload(pool_block* b, std::size_t capacity) noexcept {
  __asan_unpoison_memory_region(b + 1, capacity);
}
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic pop
#  endif
#else
inline void pool_open(pool_block*) noexcept {}
inline void pool_mark_live(pool_block*, std::size_t, std::size_t) noexcept {}
inline void pool_mark_cached(pool_block*, std::size_t) noexcept {}
inline void pool_unpoison_payload(pool_block*, std::size_t) noexcept {}
#endif

}  // namespace detail

/// Small blocks from per-thread caches: libevent's many small, short-lived allocations
/// (headers, evbuffer chains, requests) are served from a free list of their size class
/// instead of malloc.
///
/// * Size classes: every multiple of 16 bytes up to `MaxPooledSize`. A request for `n`
///   bytes gets the smallest class that holds it; anything larger, and `n == 0`, goes to
///   `Upstream` (with the same 16-byte header). Every block comes from
///   `Upstream::allocate` on its own (no slabs), so a block can always go back to
///   `Upstream` alone, and tools that watch malloc (ASan, valgrind) still see one heap
///   block per libevent allocation.
/// * Threads: each thread has its own cache per instantiation (thread_local), so loops on
///   several threads never contend and no lock is taken. A block may be freed on any
///   thread: it goes into the freeing thread's cache, or to `Upstream`.
/// * Bound: a thread's cache holds at most `MaxCachedBytesPerThread` bytes of blocks
///   (headers included), whatever their classes; a block freed when the cache is full goes
///   to `Upstream::deallocate` at once. When a thread ends, its cache is returned to
///   `Upstream`; `release_thread_cache()` does that on demand.
///   `pooled_memory<0>` caches nothing (a pass-through, for debugging).
/// * Alignment: alignof(std::max_align_t) (16), as malloc, provided `Upstream` returns
///   such blocks.
/// * realloc: keeps the block when the new size is in the same class; moves between
///   classes and to or from the large path; lets `Upstream::reallocate` move large blocks.
///   `reallocate(nullptr, n)` allocates, `reallocate(p, 0)` frees and returns null.
///
/// @tparam MaxCachedBytesPerThread bytes of free blocks one thread may keep for reuse.
/// @tparam MaxPooledSize the largest size served from the caches: a multiple of 16, at
///         most 64 KiB. 1 KiB (the default) covers every allocation evhttp makes for a
///         small request, including its 1 KiB evbuffer chains.
/// @tparam Upstream where blocks come from and go back to (malloc by default).
///
/// @par Concepts
/// memory_policy
template <std::size_t MaxCachedBytesPerThread = 256 * 1024, std::size_t MaxPooledSize = 1024,
          memory_policy Upstream = system_memory>
class pooled_memory {
  static_assert(alignof(std::max_align_t) <= 16, "tether::pooled_memory: size classes are 16 bytes apart");
  static_assert(MaxPooledSize >= 16 && MaxPooledSize % 16 == 0 && MaxPooledSize <= 64 * 1024,
                "tether::pooled_memory: MaxPooledSize must be a multiple of 16 between 16 and 65536");

 public:
  /// The distance between two size classes, and the alignment of every block.
  static constexpr std::size_t size_step = 16;
  /// The number of size classes: 16, 32, ..., MaxPooledSize bytes.
  static constexpr std::size_t class_count = MaxPooledSize / size_step;
  /// The bytes in front of every block (its class and, while cached, the free-list link).
  static constexpr std::size_t header_size = sizeof(detail::pool_block);
  /// Bytes of free blocks one thread may keep for reuse (`MaxCachedBytesPerThread`).
  static constexpr std::size_t max_cached_bytes_per_thread = MaxCachedBytesPerThread;
  /// The largest allocation served from the per-thread caches, in bytes (`MaxPooledSize`).
  static constexpr std::size_t max_pooled_size = MaxPooledSize;

  /// malloc: from this thread's cache of the size class when it has a block, else a new
  /// block from Upstream. Null only if Upstream fails.
  static void* allocate(std::size_t n) noexcept {
    const std::size_t k = size_class(n);
    if (k < class_count) [[likely]] {
      thread_cache& c = cache_;
      if (detail::pool_block* b = c.head[k]) [[likely]] {
        c.head[k] = b->next;
        c.cached -= block_bytes(k);
        detail::pool_mark_live(b, class_bytes(k), n);
        return b + 1;
      }
      return fresh_block(k, n);
    }
    return allocate_large(n);
  }

  /// free: into this thread's cache if it has room, else to Upstream.
  static void deallocate(void* p) noexcept {
    if (p == nullptr) return;
    detail::pool_block* b = block_of(p);
    const std::size_t k = b->size_class;
    if (k < class_count) [[likely]] {
      thread_cache& c = cache_;
      if (c.cached + block_bytes(k) <= c.limit) [[likely]] {
        push(c, b, k);
        return;
      }
      return deallocate_slow(b, k);
    }
    Upstream::deallocate(b);
  }

  /// realloc: the same block when `n` is in its size class, else a new block holding the
  /// first min(old capacity, n) bytes; large-to-large goes through Upstream::reallocate.
  static void* reallocate(void* p, std::size_t n) noexcept {
    if (p == nullptr) return allocate(n);
    if (n == 0) {
      deallocate(p);
      return nullptr;
    }
    detail::pool_block* b = block_of(p);
    const std::size_t k = b->size_class;
    const std::size_t capacity = k < class_count ? class_bytes(k) : b->size;
    const std::size_t to = size_class(n);
    if (k < class_count && to == k) {
      detail::pool_mark_live(b, capacity, n);
      return p;
    }
    if (k >= class_count && to >= class_count) {
      void* raw = n <= SIZE_MAX - header_size ? Upstream::reallocate(b, header_size + n) : nullptr;
      if (raw == nullptr) {
        detail::pool_mark_live(b, capacity, capacity);
        return nullptr;
      }
      b = static_cast<detail::pool_block*>(raw);
      b->size = n;
      detail::pool_mark_live(b, n, n);
      return b + 1;
    }
    void* q = allocate(n);
    if (q == nullptr) {
      detail::pool_mark_live(b, capacity, capacity);
      return nullptr;
    }
    detail::pool_unpoison_payload(b, capacity);
    std::memcpy(q, p, capacity < n ? capacity : n);
    deallocate(p);
    return q;
  }

  /// Bytes of free blocks (headers included) this thread's cache holds now.
  static std::size_t cached_bytes() noexcept { return cache_.cached; }

  /// Returns every block in this thread's cache to Upstream. Thread exit does this; call
  /// it to give memory back sooner (after a burst of connections closed, say).
  static void release_thread_cache() noexcept {
    thread_cache& c = cache_;
    for (std::size_t k = 0; k < class_count; ++k) {
      while (detail::pool_block* b = c.head[k]) {
        c.head[k] = b->next;
        detail::pool_unpoison_payload(b, class_bytes(k));  // Upstream gets the whole block back
        Upstream::deallocate(b);
      }
    }
    c.cached = 0;
  }

 private:
  // One per thread and instantiation; constant-initialized (all zero) and trivially
  // destructible, so reaching it is a plain thread-local access. `limit` is 0 until the
  // thread first caches a block (when its exit hook is registered) and again once the
  // thread is ending, so nothing is cached that no one would release.
  struct thread_cache {
    detail::pool_block* head[class_count];
    std::size_t cached;
    std::size_t limit;
    bool started;
  };
  static inline constinit thread_local thread_cache cache_{};

  struct thread_exit {
    thread_exit() = default;
    thread_exit(const thread_exit&) = delete;
    thread_exit& operator=(const thread_exit&) = delete;
    ~thread_exit() {
      release_thread_cache();
      cache_.limit = 0;  // blocks freed later on this thread (other thread_locals' destructors) go to Upstream
    }
  };

  static constexpr std::size_t size_class(std::size_t n) noexcept { return (n - 1) / size_step; }  // 0 wraps: large
  static constexpr std::size_t class_bytes(std::size_t k) noexcept { return (k + 1) * size_step; }
  static constexpr std::size_t block_bytes(std::size_t k) noexcept { return class_bytes(k) + header_size; }

  static detail::pool_block* block_of(void* p) noexcept {
    auto* b = static_cast<detail::pool_block*>(p) - 1;
    detail::pool_open(b);
    return b;
  }

  static void push(thread_cache& c, detail::pool_block* b, std::size_t k) noexcept {
    detail::pool_mark_cached(b, class_bytes(k));
    b->next = c.head[k];
    c.head[k] = b;
    c.cached += block_bytes(k);
  }

  // The slow paths are out of line, so that the fast paths need no saved registers.

  // A pooled block that does not fit in the cache; on the first block a thread frees,
  // register the thread's exit hook, then cache it if it fits.
  [[gnu::noinline]] static void deallocate_slow(detail::pool_block* b, std::size_t k) noexcept {
    thread_cache& c = cache_;
    if (!c.started) {
      static thread_local thread_exit hook;
      (void)hook;
      c.started = true;
      c.limit = MaxCachedBytesPerThread;
      if (c.cached + block_bytes(k) <= c.limit) return push(c, b, k);
    }
    detail::pool_unpoison_payload(b, class_bytes(k));  // Upstream gets the whole block back
    Upstream::deallocate(b);
  }

  [[gnu::noinline]] static void* fresh_block(std::size_t k, std::size_t n) noexcept {
    void* raw = Upstream::allocate(block_bytes(k));
    if (raw == nullptr) return nullptr;
    auto* b = ::new (raw) detail::pool_block{k, {nullptr}};
    detail::pool_mark_live(b, class_bytes(k), n);
    return b + 1;
  }

  [[gnu::noinline]] static void* allocate_large(std::size_t n) noexcept {
    if (n > SIZE_MAX - header_size) return nullptr;
    void* raw = Upstream::allocate(header_size + n);
    if (raw == nullptr) return nullptr;
    auto* b = ::new (raw) detail::pool_block{detail::pool_large_class, {nullptr}};
    b->size = n;
    detail::pool_mark_live(b, n, n);
    return b + 1;
  }
};

namespace detail {
template <class P>
inline constexpr char memory_policy_id = 0;  // its address identifies P

[[nodiscard]] inline std::error_code install_memory_functions(const void* id, void* (*allocate)(std::size_t),
                                                void* (*reallocate)(void*, std::size_t),
                                                void (*deallocate)(void*)) noexcept {
  const scoped_lock lock(libevent_process.mutex);
  if (libevent_process.memory_policy != nullptr && libevent_process.memory_policy != id)
    return make_error_code(errc::memory_policy_conflict);
  if (libevent_process.used.load(order::relaxed)) return make_error_code(errc::libevent_in_use);
  if (libevent_process.memory_policy == id) return {};
  if (allocate != nullptr) {
#ifdef EVENT_SET_MEM_FUNCTIONS_IMPLEMENTED
    event_set_mem_functions(allocate, reallocate, deallocate);
#else
    (void)reallocate;
    (void)deallocate;
    return std::make_error_code(std::errc::function_not_supported);  // libevent built without it
#endif
  }
  libevent_process.memory_policy = id;
  return {};
}
}  // namespace detail

/// Makes libevent allocate through `P`, for the whole process and for good.
///
/// Call it first in main, before anything creates a libevent object (an event_loop, a
/// server, a tether::buffer, or any direct libevent call): libevent frees with the
/// installed free every block it ever got, so a block allocated before the switch would
/// reach `P::deallocate` without having come from `P`.
///
/// Errors:
/// * errc::memory_policy_conflict: a different policy was installed before (calling it
///   again with the same policy, before libevent is used, does nothing and succeeds);
/// * errc::libevent_in_use: tether already made libevent allocate in this process;
///   nothing was installed. (libevent used directly, without tether, cannot be detected:
///   that is why the call must come first.)
/// * std::errc::function_not_supported: libevent was built without
///   event_set_mem_functions.
///
/// Installing system_memory installs nothing in libevent but claims the process all the
/// same.
template <class P>
[[nodiscard]] std::error_code install_memory_policy() noexcept {
  static_assert(memory_policy<P>,
                "tether::install_memory_policy<P>: P is not a memory policy: it needs static noexcept "
                "allocate(size_t) -> void*, reallocate(void*, size_t) -> void* and deallocate(void*) "
                "(see docs/concepts/memory_policy.md)");
  if constexpr (memory_policy<P>) {
    if constexpr (std::is_same_v<P, system_memory>)
      return detail::install_memory_functions(&detail::memory_policy_id<P>, nullptr, nullptr, nullptr);
    else
      return detail::install_memory_functions(&detail::memory_policy_id<P>, &P::allocate, &P::reallocate,
                                              &P::deallocate);
  } else {
    return make_error_code(errc::invalid_argument);
  }
}

TETHER_END_NAMESPACE
