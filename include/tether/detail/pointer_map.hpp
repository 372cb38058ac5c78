// tether/detail/pointer_map.hpp - open-addressing map from a pointer to a pointer.
//
// The server finds its per-connection state from libevent's evhttp_connection* with this
// map. Lookups and erasures never allocate; inserts allocate only when the table grows
// (amortised per connection, never per request). Linear probing with backward-shift
// deletion keeps lookups short without tombstones.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/owner.hpp>

#include <cstddef>
#include <cstdint>
#include <new>

TETHER_BEGIN_NAMESPACE
namespace detail {

template <class K, class V>
class pointer_map {
 public:
  pointer_map() = default;
  pointer_map(const pointer_map&) = delete;
  pointer_map& operator=(const pointer_map&) = delete;

  std::size_t size() const noexcept { return size_; }

  V* find(const K* key) const noexcept {
    if (size_ == 0) return nullptr;
    for (std::size_t i = slot(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return slots_[i].value;
      if (slots_[i].key == nullptr) return nullptr;
    }
  }

  /// Inserts a key that is not present. Throws std::bad_alloc if the table cannot grow.
  void insert(const K* key, V* value) {
    if ((size_ + 1) * 4 > capacity_ * 3) grow();
    place(key, value);
    ++size_;
  }

  /// Removes `key` if present.
  void erase(const K* key) noexcept {
    if (size_ == 0) return;
    std::size_t i = slot(key);
    while (slots_[i].key != key) {
      if (slots_[i].key == nullptr) return;
      i = (i + 1) & mask_;
    }
    // Backward shift: move later members of the probe run into the hole when their home
    // slot does not lie strictly between the hole and their current slot.
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask_; slots_[j].key != nullptr; j = (j + 1) & mask_) {
      const std::size_t home = slot(slots_[j].key);
      const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = entry{};
    --size_;
  }

  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i)
      if (slots_[i].key) f(slots_[i].key, slots_[i].value);
  }

 private:
  struct entry {
    const K* key = nullptr;
    V* value = nullptr;
  };

  std::size_t slot(const K* key) const noexcept {
    // Fibonacci hashing: heap pointers share low bits, the multiply spreads them.
    const auto h = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(key)) * 0x9E3779B97F4A7C15ull;
    return static_cast<std::size_t>(h >> shift_) & mask_;
  }

  void place(const K* key, V* value) noexcept {
    std::size_t i = slot(key);
    while (slots_[i].key != nullptr) i = (i + 1) & mask_;
    slots_[i] = entry{key, value};
  }

  void grow() {
    const std::size_t new_capacity = capacity_ ? capacity_ * 2 : 16;
    auto old = std::move(slots_);
    const std::size_t old_capacity = capacity_;
    slots_ = make_array<entry>(new_capacity);
    capacity_ = new_capacity;
    mask_ = new_capacity - 1;
    unsigned bits = 0;
    while ((std::size_t{1} << bits) < new_capacity) ++bits;
    shift_ = 64 - bits;
    for (std::size_t i = 0; i < old_capacity; ++i)
      if (old[i].key) place(old[i].key, old[i].value);
  }

  unique_array<entry> slots_;
  std::size_t capacity_ = 0;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
  unsigned shift_ = 64;
};

}  // namespace detail
TETHER_END_NAMESPACE
