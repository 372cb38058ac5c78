// Replaces the global operator new of the binary it is linked into, to count C++ heap
// allocations. In a TU of its own, so that the compiler never sees a replaced new inlined
// next to a delete (g++ then warns about a mismatch that is not one).
//
// Every form that tether or the standard library may pair is replaced (plain, nothrow,
// arrays): a form left to the sanitizer's allocator and freed by a replaced delete is an
// alloc-dealloc mismatch under ASan and valgrind.
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

namespace {
std::atomic<long> allocations{0};

void* counted(std::size_t n) noexcept {
  ++allocations;
  return std::malloc(n ? n : 1);
}
}  // namespace

long allocations_so_far() noexcept { return allocations.load(); }

bool allocation_counting_works() {
  static void* volatile escaped = nullptr;  // the blocks escape: no compiler may elide them
  const long before = allocations.load();
  escaped = ::operator new(32, std::nothrow);
  ::operator delete(escaped);
  const long direct = allocations.load() - before;
  std::string grown;
  grown.reserve(4000);  // basic_string<char>::reserve is compiled into libstdc++.so
  escaped = grown.data();
  return direct == 1 && allocations.load() - before == 2;
}

void* operator new(std::size_t n) {
  if (void* p = counted(n)) return p;
  throw std::bad_alloc{};
}
void* operator new[](std::size_t n) {
  if (void* p = counted(n)) return p;
  throw std::bad_alloc{};
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
