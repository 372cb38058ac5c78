// A type whose free function may throw is not a memory policy: libevent calls it from C.
// The diagnostic says so in a sentence and names the requirement that fails.
#include <tether/memory_policy.hpp>

#include <cstdlib>

struct throwing_free {
  static void* allocate(std::size_t n) noexcept { return std::malloc(n); }
  static void* reallocate(void* p, std::size_t n) noexcept { return std::realloc(p, n); }
  static void deallocate(void* p) { std::free(p); }  // not noexcept
};

int main() {
  if (tether::install_memory_policy<throwing_free>()) return 1;
}
