// Replaces the global operator new of the binary it is linked into, to count C++ heap
// allocations. In a TU of its own, so that the compiler never sees a replaced new inlined
// next to a delete (g++ then warns about a mismatch that is not one).
#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> allocations{0};
}

long allocations_so_far() noexcept { return allocations.load(); }

void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
