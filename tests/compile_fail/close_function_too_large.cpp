// A close callback larger than close_function's in-place storage is rejected: no heap.
#include <tether/close_callback.hpp>

#include <array>

int main() {
  std::array<char, 128> big{};
  tether::close_function<> f = [big](const tether::close_event&) { (void)big; };
}
