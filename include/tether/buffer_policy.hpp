// tether/buffer_policy.hpp - how reply bytes get into libevent's buffers.
#pragma once

#include <tether/config.hpp>
#include <tether/error.hpp>

#include <event2/buffer.h>

#include <concepts>
#include <string_view>
#include <system_error>

TETHER_BEGIN_NAMESPACE

/// A type `P` models buffer_policy if:
/// 1. `P::append(evbuffer*, std::string_view)` is a noexcept call returning
///    std::error_code: it queues the bytes of a reply body or chunk.
///
/// @see docs/concepts/buffer_policy.md
template <class P>
concept buffer_policy = requires(evbuffer* b, std::string_view bytes) {
  { P::append(b, bytes) } noexcept -> std::same_as<std::error_code>;  // 1. queue bytes
};

/// Copies every body and chunk into libevent's buffer (evbuffer_add): the caller's bytes
/// may die as soon as the call returns. The default, and exactly what hand-written C does.
struct copy_buffer {
  static std::error_code append(evbuffer* b, std::string_view bytes) noexcept {
    if (bytes.empty()) return {};
    return evbuffer_add(b, bytes.data(), bytes.size()) == 0 ? std::error_code{}
                                                             : make_error_code(errc::libevent_failure);
  }
};

TETHER_END_NAMESPACE
