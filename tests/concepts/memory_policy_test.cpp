// The memory_policy concept: fakes that must and must not model it, and the exemplar from
// docs/concepts/memory_policy.md, called as libevent would call it. (Installing it is
// process-wide, so this binary, which runs servers with libevent's default allocator,
// does not install it; tests/unit/memory_policy_test.cpp installs pooled_memory.)
#include <tether/memory_policy.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>

//[exemplar_memory_policy
// malloc, counting the blocks libevent holds: a leak check for a test, or a gauge.
struct counted_memory {
  static inline std::atomic<long> live{0};
  static void* allocate(std::size_t n) noexcept {
    void* p = std::malloc(n);
    if (p != nullptr) ++live;
    return p;
  }
  static void* reallocate(void* p, std::size_t n) noexcept {
    void* q = std::realloc(p, n);
    if (p == nullptr && q != nullptr) ++live;  // realloc(NULL, n) allocates
    if (p != nullptr && n == 0) --live;        // realloc(p, 0) frees (glibc)
    return q;
  }
  static void deallocate(void* p) noexcept {
    if (p != nullptr) --live;
    std::free(p);
  }
};

// in main, first: if (auto ec = tether::install_memory_policy<counted_memory>()) ...
//]

namespace {
struct no_functions {};
struct throwing_allocate {
  static void* allocate(std::size_t n) { return std::malloc(n); }  // not noexcept
  static void* reallocate(void* p, std::size_t n) noexcept { return std::realloc(p, n); }
  static void deallocate(void* p) noexcept { std::free(p); }
};
struct member_functions {  // libevent needs plain functions: they must be static
  void* allocate(std::size_t n) noexcept { return std::malloc(n); }
  void* reallocate(void* p, std::size_t n) noexcept { return std::realloc(p, n); }
  void deallocate(void* p) noexcept { std::free(p); }
};
struct overloaded_allocate {  // two allocate functions: which one would libevent get?
  static void* allocate(std::size_t n) noexcept { return std::malloc(n); }
  static void* allocate(std::size_t n, std::size_t align) noexcept { return std::aligned_alloc(align, n); }
  static void* reallocate(void* p, std::size_t n) noexcept { return std::realloc(p, n); }
  static void deallocate(void* p) noexcept { std::free(p); }
};
struct wrong_return {
  static char* allocate(std::size_t n) noexcept { return static_cast<char*>(std::malloc(n)); }
  static void* reallocate(void* p, std::size_t n) noexcept { return std::realloc(p, n); }
  static void deallocate(void* p) noexcept { std::free(p); }
};
}  // namespace

TEST_CASE("memory_policy: the shipped policies and the exemplar model it", "[concepts][memory_policy]") {
  STATIC_REQUIRE(tether::memory_policy<tether::system_memory>);
  STATIC_REQUIRE(tether::memory_policy<tether::pooled_memory<>>);
  STATIC_REQUIRE(tether::memory_policy<tether::pooled_memory<0, 16>>);
  STATIC_REQUIRE(tether::memory_policy<tether::pooled_memory<4096, 512, counted_memory>>);
  STATIC_REQUIRE(tether::memory_policy<counted_memory>);
}

TEST_CASE("memory_policy: missing, throwing, member, overloaded or mistyped functions are rejected",
          "[concepts][memory_policy]") {
  STATIC_REQUIRE_FALSE(tether::memory_policy<no_functions>);
  STATIC_REQUIRE_FALSE(tether::memory_policy<throwing_allocate>);
  STATIC_REQUIRE_FALSE(tether::memory_policy<member_functions>);
  STATIC_REQUIRE_FALSE(tether::memory_policy<overloaded_allocate>);
  STATIC_REQUIRE_FALSE(tether::memory_policy<wrong_return>);
}

TEST_CASE("memory_policy: the exemplar, called the way libevent calls it, counts what it holds",
          "[concepts][memory_policy]") {
  void* (*libevent_malloc)(std::size_t) = &counted_memory::allocate;
  void* (*libevent_realloc)(void*, std::size_t) = &counted_memory::reallocate;
  void (*libevent_free)(void*) = &counted_memory::deallocate;
  void* a = libevent_malloc(24);
  void* b = libevent_realloc(nullptr, 40);
  CHECK(counted_memory::live == 2);
  std::memset(b, 'x', 40);
  b = libevent_realloc(b, 4000);
  CHECK(static_cast<char*>(b)[39] == 'x');
  CHECK(counted_memory::live == 2);
  libevent_free(a);
  libevent_free(nullptr);
  CHECK(libevent_realloc(b, 0) == nullptr);
  CHECK(counted_memory::live == 0);
}

TEST_CASE("memory_policy: pooled_memory over a user-written policy sends its blocks there",
          "[concepts][memory_policy]") {
  using pool = tether::pooled_memory<4096, 512, counted_memory>;
  void* p = pool::allocate(100);
  CHECK(counted_memory::live == 1);
  pool::deallocate(p);
  CHECK(counted_memory::live == 1);  // cached
  pool::release_thread_cache();
  CHECK(counted_memory::live == 0);
}
