#include <tether/detail/pointer_map.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <vector>

TEST_CASE("pointer_map: behaves like std::map under random inserts and erases", "[detail][pointer_map]") {
  std::vector<int> keys(2000), values(2000);
  tether::detail::pointer_map<int, int> m;
  std::map<const int*, int*> reference;
  std::mt19937 rng(12345);
  for (int step = 0; step < 20000; ++step) {
    const auto i = rng() % keys.size();
    const int* k = &keys[i];
    if (reference.count(k)) {
      m.erase(k);
      reference.erase(k);
    } else {
      m.insert(k, &values[i]);
      reference[k] = &values[i];
    }
    if (step % 97 == 0) {
      REQUIRE(m.size() == reference.size());
      std::size_t mismatches = 0;
      for (std::size_t j = 0; j < keys.size(); ++j) {
        auto it = reference.find(&keys[j]);
        if (m.find(&keys[j]) != (it == reference.end() ? nullptr : it->second)) ++mismatches;
      }
      REQUIRE(mismatches == 0);
    }
  }
}
