#include <tether/detail/node_pool.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>
#include <vector>

namespace {
int live = 0;  // nodes constructed and not yet destroyed
struct counted {
  counted() noexcept { ++live; }
  ~counted() { --live; }
  counted(const counted&) = delete;
  counted& operator=(const counted&) = delete;
  int value = 7;
  counted* link = nullptr;
};
bool fail_next = false;
struct throwing {
  throwing() {
    if (fail_next) throw std::runtime_error("no");
  }
  long payload[4] = {};
};
}  // namespace

TEST_CASE("node_pool: nodes are made on acquire, destroyed on release, and their memory is reused",
          "[detail][node_pool]") {
  tether::detail::node_pool<counted> pool;
  std::vector<counted*> nodes;
  for (int i = 0; i < 300; ++i) {  // several blocks (8, 16, 32, then 64 nodes)
    counted* n = pool.acquire();
    CHECK(n->value == 7);  // default-constructed
    n->value = i;
    nodes.push_back(n);
  }
  CHECK(live == 300);
  CHECK(std::set<counted*>(nodes.begin(), nodes.end()).size() == 300);
  for (int i = 0; i < 300; ++i) CHECK(nodes[static_cast<std::size_t>(i)]->value == i);  // nothing overlaps

  std::set<counted*> released;
  for (std::size_t i = 0; i < nodes.size(); i += 2) {
    released.insert(nodes[i]);
    pool.release(nodes[i]);
  }
  CHECK(live == 150);
  for (std::size_t i = 0; i < nodes.size(); i += 2) {
    counted* n = pool.acquire();
    CHECK(released.count(n) == 1);  // a released node's memory, not a new block
    CHECK(n->value == 7);
    released.erase(n);
    nodes[i] = n;
  }
  CHECK(released.empty());
  CHECK(live == 300);
  for (counted* n : nodes) pool.release(n);  // the pool's contract: all released before it goes
  CHECK(live == 0);
}

TEST_CASE("node_pool: a node whose constructor throws gives its slot back", "[detail][node_pool]") {
  tether::detail::node_pool<throwing> pool;
  throwing* a = pool.acquire();
  pool.release(a);
  fail_next = true;
  CHECK_THROWS_AS(pool.acquire(), std::runtime_error);
  fail_next = false;
  CHECK(pool.acquire() == a);  // the slot was kept
}
