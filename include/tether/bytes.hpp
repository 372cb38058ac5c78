// tether/bytes.hpp - byte payloads that libevent can send without copying them.
//
// * shared_bytes: an immutable, reference-counted block. One allocation when made; every
//   copy is a count increment. Queued by reference (evbuffer_add_reference) under
//   reference_buffer and file_buffer, so one frame fanned out to 10,000 streams is stored
//   once; libevent drops its reference when it has written the bytes.
// * static_bytes: bytes that live for the whole program (literals, tables). Queued by
//   reference with no bookkeeping at all.
// Under copy_buffer both are simply copied (they convert to std::string_view).
/// @file
/// Payloads libevent can send without copying: tether::shared_bytes (reference-counted) and
/// tether::static_bytes (lives for the whole program).
#pragma once

#include <tether/config.hpp>
#include <tether/detail/sync.hpp>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// Bytes that outlive the program's use of them (string literals, static tables).
class static_bytes {
 public:
  /// Wraps `bytes`, which must stay valid and unchanged for as long as any reply may still
  /// be sending them (in practice: the whole program), since they are queued by reference.
  constexpr explicit static_bytes(std::string_view bytes) noexcept : bytes_(bytes) {}
  /// The bytes.
  constexpr std::string_view view() const noexcept { return bytes_; }
  /// The bytes; lets copying policies (copy_buffer) take static_bytes like plain bytes.
  constexpr operator std::string_view() const noexcept { return bytes_; }  // NOLINT: copy policies copy

 private:
  std::string_view bytes_;
};

/// An immutable, reference-counted byte block (thread-safe counts).
class shared_bytes {
 public:
  shared_bytes() noexcept = default;
  /// Copies `bytes` into a new block. Throws std::bad_alloc.
  explicit shared_bytes(std::string_view bytes) : block_(block::make(bytes)) {}

  /// Shares `o`'s block: one atomic count increment, no copy of the bytes.
  shared_bytes(const shared_bytes& o) noexcept : block_(o.block_) { retain(block_); }
  /// Takes over `o`'s block; `o` becomes empty.
  shared_bytes(shared_bytes&& o) noexcept : block_(std::exchange(o.block_, nullptr)) {}
  /// Shares `o`'s block; the block held before is released (freed if it was the last holder).
  shared_bytes& operator=(shared_bytes o) noexcept {
    std::swap(block_, o.block_);
    return *this;
  }
  ~shared_bytes() { release(block_); }

  /// The bytes (empty for an empty shared_bytes). Valid while this object (or a copy) lives.
  std::string_view view() const noexcept { return block_ ? std::string_view(block_->data(), block_->size) : std::string_view{}; }
  /// The bytes; lets copying policies (copy_buffer) take shared_bytes like plain bytes.
  operator std::string_view() const noexcept { return view(); }  // NOLINT: copy policies copy
  /// The number of bytes.
  std::size_t size() const noexcept { return block_ ? block_->size : 0; }
  /// True if there are no bytes (default-constructed, moved from, or made from "").
  bool empty() const noexcept { return size() == 0; }
  /// How many shared_bytes and libevent buffers hold this block (for tests and metrics).
  long use_count() const noexcept { return block_ ? block_->refs.load(detail::order::relaxed) : 0; }

  /// Hands one reference to libevent: evbuffer_add_reference(buf, data, size,
  /// &shared_bytes::cleanup, token). libevent calls cleanup when done with the bytes.
  const void* retain_for_libevent() const noexcept {
    retain(block_);
    return block_;
  }
  /// libevent's evbuffer_add_reference cleanup callback: releases the reference that
  /// retain_for_libevent() returned as `token`.
  static void cleanup(const void*, std::size_t, void* token) noexcept { release(static_cast<block*>(token)); }

 private:
  struct block {
    detail::atomic_value<long> refs;
    std::size_t size;
    char* data() noexcept { return reinterpret_cast<char*>(this + 1); }
    static block* make(std::string_view bytes) {
      void* p = std::malloc(sizeof(block) + bytes.size());
      if (!p) throw std::bad_alloc{};
      auto* b = ::new (p) block{{1}, bytes.size()};
      if (!bytes.empty()) std::memcpy(b->data(), bytes.data(), bytes.size());
      return b;
    }
  };
  static void retain(block* b) noexcept {
    if (b) b->refs.fetch_add(1, detail::order::relaxed);
  }
  static void release(block* b) noexcept {
    if (b && b->refs.fetch_sub(1, detail::order::acq_rel) == 1) {
      b->~block();
      std::free(b);
    }
  }

  block* block_ = nullptr;
};

TETHER_END_NAMESPACE
