// The whole library in a second translation unit of the unit-test binary: a function
// defined in a header without `inline` would fail to link here.
#include <tether/tether.hpp>

namespace tether_odr_check {
std::uint16_t parse_port_in_second_tu(std::string_view s) { return tether::parse_port(s).value_or(0); }
}  // namespace tether_odr_check
