// tether/detail/node_pool.hpp - stable, reusable nodes for intrusive lists.
//
// Hubs and long-poll rooms link their nodes into libevent-side watcher lists, so a node
// must not move while in use; they also come and go with every subscriber, so a node is
// reused rather than freed. After warm-up (the peak number of nodes), acquiring and
// releasing allocate nothing.
#pragma once

#include <tether/config.hpp>

#include <memory>
#include <vector>

TETHER_BEGIN_NAMESPACE
namespace detail {

template <class Node>
class node_pool {
 public:
  /// A node in its default-constructed state or as release() left it. Throws
  /// std::bad_alloc when a new node is needed and cannot be had.
  Node* acquire() {
    if (!free_.empty()) {
      Node* n = free_.back();
      free_.pop_back();
      return n;
    }
    all_.push_back(std::make_unique<Node>());
    free_.reserve(all_.size());  // so that release() never allocates
    return all_.back().get();
  }
  /// Makes `n` available again (the caller has reset what it holds).
  void release(Node* n) noexcept { free_.push_back(n); }

 private:
  std::vector<std::unique_ptr<Node>> all_;
  std::vector<Node*> free_;
};

}  // namespace detail
TETHER_END_NAMESPACE
