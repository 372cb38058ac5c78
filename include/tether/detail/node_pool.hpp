// tether/detail/node_pool.hpp - stable, reusable nodes for intrusive lists.
//
// Hubs and long-poll rooms link their nodes into libevent-side watcher lists, so a node
// must not move while in use; they also come and go with every subscriber, so a node's
// memory is reused rather than freed. Nodes live in blocks (8, 16, 32, then 64 nodes
// each): no allocator header per node, and a free node's memory holds the free list's
// link, so a hub of 10,000 streams pays for its nodes and nothing else per node. After
// warm-up (the peak number of nodes), acquiring and releasing allocate nothing.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/owner.hpp>
#include <tether/detail/vec.hpp>

#include <cstddef>
#include <new>
#include <type_traits>

TETHER_BEGIN_NAMESPACE
namespace detail {

template <class Node>
class node_pool {
 public:
  node_pool() = default;
  node_pool(const node_pool&) = delete;
  node_pool& operator=(const node_pool&) = delete;
  /// Frees the blocks. Every node acquired must have been released.
  ~node_pool() = default;

  /// A default-constructed node. Throws std::bad_alloc when a new block is needed and
  /// cannot be had (or what Node's constructor throws; the slot is kept).
  Node* acquire() {
    slot* s = free_;
    if (s) {
      free_ = s->next_free;
    } else {
      if (fresh_ == block_size_) grow();
      s = &blocks_.back()[fresh_++];
    }
    if constexpr (std::is_nothrow_default_constructible_v<Node>) {
      return ::new (static_cast<void*>(&s->node)) Node();
    } else {
      try {
        return ::new (static_cast<void*>(&s->node)) Node();
      } catch (...) {
        s->next_free = free_;
        free_ = s;
        throw;
      }
    }
  }
  /// Destroys `n` and keeps its memory for the next acquire().
  void release(Node* n) noexcept {
    n->~Node();
    auto* s = reinterpret_cast<slot*>(n);  // a union and its members share an address
    s->next_free = free_;
    free_ = s;
  }

 private:
  union slot {
    slot() noexcept {}
    ~slot() {}
    slot* next_free;
    Node node;
  };
  static constexpr std::size_t max_block = 64;

  void grow() {
    const std::size_t n = blocks_.empty() ? 8 : (block_size_ < max_block ? block_size_ * 2 : max_block);
    if (blocks_.size() == blocks_.capacity()) blocks_.reserve(blocks_.empty() ? 16 : 2 * blocks_.size());
    // push_back cannot throw now: the block is owned as soon as it exists.
    blocks_.push_back(unique_array<slot>(new slot[n]));
    block_size_ = n;
    fresh_ = 0;
  }

  vec<unique_array<slot>> blocks_;
  slot* free_ = nullptr;       // released nodes
  std::size_t block_size_ = 0;  // nodes in the last block
  std::size_t fresh_ = 0;       // the last block's first never-used node
};

}  // namespace detail
TETHER_END_NAMESPACE
