// tether/buffer_policy.hpp - how reply bytes get into libevent's buffers, and how much
// of them a slow client may hold.
//
// A buffer policy answers two questions for a server:
//  1. How is a body or chunk queued? By copy (evbuffer_add), by reference
//     (evbuffer_add_reference: libevent releases the owner when it has written the
//     bytes), or as a file range (evbuffer_add_file_segment: the kernel's sendfile).
//  2. How much may wait for a client that reads slowly? Without a bound, a client that
//     stops reading while a stream keeps producing grows the server without limit
//     (+37 MB in 3 s measured with 64 KiB chunks every 10 ms). `bounded` caps it.
//
// The family, side by side:
//
//   | policy                       | string_view  | shared_bytes / static_bytes | file_range   | slow client            |
//   |------------------------------|--------------|-----------------------------|--------------|------------------------|
//   | copy_buffer (default)        | copy         | copy                        | (rejected)   | unbounded              |
//   | reference_buffer             | copy         | by reference, no copy (*)   | (rejected)   | unbounded              |
//   | file_buffer                  | copy         | by reference, no copy (*)   | sendfile     | unbounded              |
//   | bounded<Inner, High, Low, A> | as Inner     | as Inner                    | as Inner     | refuse/drop/coalesce/  |
//   |                              |              |                             |              | disconnect above High  |
//
// (*) Payloads of at most 960 bytes are copied: one libevent chain holds them, and a
//     reference would cost two (see detail::reference_min).
//
// Whole replies (reply()) are queued as the policy says but never refused: a bound
// applies to streamed chunks, where a producer can wait.
/// @file
/// Buffer policies: how reply bytes are queued (copy, by reference, sendfile) and how much
/// a slow client may hold (tether::bounded). See docs/buffers/.
#pragma once

#include <tether/bytes.hpp>
#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/error.hpp>
#include <tether/file.hpp>

#include <event2/buffer.h>

#include <unistd.h>

#include <concepts>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

// ----- what happens to a chunk offered above the high-water mark --------------------

/// What a bounded policy does with a chunk offered while the client's output is above
/// the high-water mark.
namespace slow_consumer {
/// Refuse it: the send returns errc::would_block and the producer waits for the
/// writable notification (output back at or below the low-water mark).
struct wait {};
/// Discard it: the send returns errc::dropped. For streams where a late frame is worthless.
struct drop {};
/// Keep only the latest: the chunk replaces any chunk already waiting, and goes out once
/// the output falls to the low-water mark. The send returns success. For "always show
/// the newest frame" streams (camera feeds, dashboards).
struct coalesce {};
/// Refuse it as `wait` does, and close the connection (close_reason::slow_consumer) if
/// the output stays above the low-water mark for `Milliseconds`.
template <long Milliseconds>
struct disconnect {
  /// How long the output may stay above the low-water mark before the client is cut off.
  static constexpr std::chrono::milliseconds deadline{Milliseconds};
};
}  // namespace slow_consumer

namespace detail {
template <class A>
struct is_disconnect : std::false_type {};
template <long Ms>
struct is_disconnect<slow_consumer::disconnect<Ms>> : std::true_type {};
}  // namespace detail

/// A type `A` is a slow_consumer_action if it is one of slow_consumer::wait, drop,
/// coalesce or disconnect<Ms>.
template <class A>
concept slow_consumer_action = std::same_as<A, slow_consumer::wait> || std::same_as<A, slow_consumer::drop> ||
                               std::same_as<A, slow_consumer::coalesce> || detail::is_disconnect<A>::value;

// ----- the concept ------------------------------------------------------------------

/// The flow control of a policy that never refuses: everything offered is queued.
struct unbounded_flow {
  /// False: every chunk offered is queued, whatever the client has not read yet (the
  /// server's max_pending_output still applies).
  static constexpr bool bounded = false;
};

/// The flow control of bounded<>: see that class.
template <std::size_t High, std::size_t Low, slow_consumer_action Action>
struct bounded_flow {
  /// True: chunks offered above `high_water` bytes of unwritten output go to `action`.
  static constexpr bool bounded = true;
  /// Bytes of unwritten output above which a chunk is refused, dropped, parked or timed.
  static constexpr std::size_t high_water = High;
  /// Bytes of unwritten output at or below which producers are told to resume.
  static constexpr std::size_t low_water = Low;
  /// What a chunk offered above the high-water mark gets (slow_consumer::wait, drop,
  /// coalesce or disconnect<Ms>).
  using action = Action;
};

namespace detail {
template <class F>
concept flow_control = requires {
  { F::bounded } -> std::convertible_to<bool>;
};
}  // namespace detail

/// A type `P` models buffer_policy if:
/// 1. `P::append(evbuffer*, std::string_view)` is a noexcept call returning
///    std::error_code: it queues a body or chunk given as plain bytes;
/// 2. `P::flow` names its flow control: `unbounded_flow`, or `bounded_flow<High, Low, A>`.
///
/// A policy may accept more payload types by adding `append` overloads (see
/// `buffer_policy_accepts`); tether's reply calls take any type the policy accepts.
///
/// @see docs/concepts/buffer_policy.md
template <class P>
concept buffer_policy = requires(evbuffer* b, std::string_view bytes) {
  { P::append(b, bytes) } noexcept -> std::same_as<std::error_code>;  // 1. queue bytes
  typename P::flow;                                                    // 2. flow control
} && detail::flow_control<typename P::flow>;

/// True if policy `P` can queue a payload of type `Body`.
template <class P, class Body>
concept buffer_policy_accepts = requires(evbuffer* b, Body&& body) {
  { P::append(b, std::forward<Body>(body)) } noexcept -> std::same_as<std::error_code>;
};

namespace detail {
[[nodiscard]] inline std::error_code to_error(int rc) noexcept {
  return rc == 0 ? std::error_code{} : make_error_code(errc::libevent_failure);
}
[[nodiscard]] inline std::error_code copy_bytes(evbuffer* b, std::string_view bytes) noexcept {
  if (bytes.empty()) return {};
  return to_error(evbuffer_add(b, bytes.data(), bytes.size()));
}

// evhttp appends "\r\n" after every chunk with evbuffer_add, which writes into the last
// chain holding data; when that chain is immutable (a reference or a file range) it
// allocates a new chain as large as the immutable one (1 MiB for a 1 MiB reference,
// offset + length for a file range). Ending every zero-copy append with the payload's
// last few bytes in a small, writable chain keeps that append cheap.
inline constexpr std::size_t zero_copy_tail = 16;

// libevent allocates every buffer chain at least 1 KiB large (976 bytes of payload after
// its header on 64-bit), a reference's chain included. A referenced payload costs that
// chain plus the tail's, two allocations; a payload one chain holds costs one when
// copied. So reference_buffer copies payloads up to this size: less memory and time per
// send (bench/sse_scale: 1 KiB less per subscriber and event for a 40-byte SSE event).
inline constexpr std::size_t reference_min = 960;

/// Copies `tail` into a fresh small chain at the end of `b` (evbuffer_reserve_space
/// allocates for the requested size, unlike evbuffer_add).
[[nodiscard]] inline std::error_code append_small_tail(evbuffer* b, const char* tail, std::size_t n) noexcept {
  if (n == 0) return {};
  evbuffer_iovec v{};
  if (evbuffer_reserve_space(b, static_cast<ev_ssize_t>(n), &v, 1) < 1 || v.iov_len < n)
    return make_error_code(errc::libevent_failure);
  std::memcpy(v.iov_base, tail, n);
  v.iov_len = n;
  return to_error(evbuffer_commit_space(b, &v, 1));
}
}  // namespace detail

// ----- the policies -----------------------------------------------------------------

/// Copies every body and chunk into libevent's buffer (evbuffer_add): the caller's bytes
/// may die as soon as the call returns. The default, and exactly what hand-written C does.
struct copy_buffer {
  /// Never refuses a chunk (see unbounded_flow).
  using flow = unbounded_flow;
  /// Copies `bytes` to the end of `b`. Error: errc::libevent_failure if libevent cannot allocate.
  [[nodiscard]] static std::error_code append(evbuffer* b, std::string_view bytes) noexcept { return detail::copy_bytes(b, bytes); }
};

/// Queues shared_bytes and static_bytes by reference (evbuffer_add_reference): no copy;
/// libevent releases its reference on a shared_bytes block once the bytes are written
/// (or the connection is gone). Plain bytes are copied: nothing would keep them alive.
/// Payloads of at most 960 bytes are copied too: libevent's smallest chain holds them,
/// and a reference would cost a chain of the same size plus one for its tail.
struct reference_buffer {
  /// Never refuses a chunk (see unbounded_flow).
  using flow = unbounded_flow;
  /// Copies plain bytes: nothing would keep them alive until libevent writes them.
  /// Error: errc::libevent_failure if libevent cannot allocate.
  [[nodiscard]] static std::error_code append(evbuffer* b, std::string_view bytes) noexcept { return detail::copy_bytes(b, bytes); }
  /// Queues `bytes` by reference, holding one count on the block until libevent has written
  /// them or dropped the connection (at most 960 bytes: copied).
  /// Error: errc::libevent_failure if libevent cannot allocate.
  [[nodiscard]] static std::error_code append(evbuffer* b, const shared_bytes& bytes) noexcept {
    const std::string_view v = bytes.view();
    if (v.size() <= detail::reference_min) return detail::copy_bytes(b, v);
    const std::size_t body = v.size() - detail::zero_copy_tail;
    const void* token = bytes.retain_for_libevent();
    if (evbuffer_add_reference(b, v.data(), body, &shared_bytes::cleanup, const_cast<void*>(token)) != 0) {
      shared_bytes::cleanup(nullptr, 0, const_cast<void*>(token));
      return make_error_code(errc::libevent_failure);
    }
    return detail::append_small_tail(b, v.data() + body, detail::zero_copy_tail);
  }
  /// Queues `bytes` by reference with no bookkeeping: they live for the whole program (at
  /// most 960 bytes: copied). Error: errc::libevent_failure if libevent cannot allocate.
  [[nodiscard]] static std::error_code append(evbuffer* b, static_bytes bytes) noexcept {
    const std::string_view v = bytes.view();
    if (v.size() <= detail::reference_min) return detail::copy_bytes(b, v);
    const std::size_t body = v.size() - detail::zero_copy_tail;
    if (evbuffer_add_reference(b, v.data(), body, nullptr, nullptr) != 0) return make_error_code(errc::libevent_failure);
    return detail::append_small_tail(b, v.data() + body, detail::zero_copy_tail);
  }
};

/// Everything reference_buffer does, and file ranges by sendfile(2)
/// (evbuffer_add_file_segment): the file's bytes never enter the heap.
struct file_buffer : reference_buffer {
  /// Never refuses a chunk (see unbounded_flow).
  using flow = unbounded_flow;
  /// Plain bytes, shared_bytes and static_bytes: as reference_buffer.
  using reference_buffer::append;
  /// Queues the range `r` of a file, sent by sendfile(2); the file stays open until it is
  /// written. Errors: errc::file_error (an empty file_range, or its last bytes could not be
  /// read), errc::libevent_failure.
  [[nodiscard]] static std::error_code append(evbuffer* b, const file_range& r) noexcept {
    if (!r.segment) return make_error_code(errc::file_error);
    if (r.length == 0) return {};
    // The last few bytes are read and copied (see detail::zero_copy_tail).
    const std::size_t tail = r.length < detail::zero_copy_tail ? static_cast<std::size_t>(r.length) : detail::zero_copy_tail;
    char last[detail::zero_copy_tail];
    const auto tail_at = static_cast<off_t>(r.offset + r.length - tail);
    if (::pread(r.fd, last, tail, tail_at) != static_cast<ssize_t>(tail)) return make_error_code(errc::file_error);
    if (r.length > tail) {
      // libevent uses sendfile only when the buffer the segment is added to is marked as
      // draining to a socket (EVBUFFER_FLAG_DRAINS_TO_FD); otherwise it maps or reads the
      // file into memory. tether's reply and chunk calls mark `b` only when the connection
      // is a plain socket: a TLS bufferevent encrypts what it peeks from its output, and a
      // sendfile chain holds the segment's bookkeeping there, not the file's bytes.
      if (evbuffer_add_file_segment(b, r.segment, static_cast<ev_off_t>(r.offset), static_cast<ev_off_t>(r.length - tail)) != 0)
        return make_error_code(errc::libevent_failure);
    }
    return detail::append_small_tail(b, last, tail);
  }
};

/// Bounds what a slow client can make the server hold, on top of `Inner`'s way of
/// queueing bytes.
///
/// While a reply streams, a chunk is offered only if the connection's unwritten output
/// is below `High` bytes; otherwise `Action` decides (slow_consumer::wait, drop,
/// coalesce, disconnect<Ms>). Once the client has drained the output to `Low` bytes or
/// fewer, the stream's producer is told it is writable again. So a client that stops
/// reading costs at most `High` bytes plus one chunk (plus one waiting chunk under
/// coalesce), whatever the producer does.
///
/// @tparam Inner  how bytes are queued (copy_buffer, reference_buffer, file_buffer)
/// @tparam High   high-water mark in bytes of unwritten output
/// @tparam Low    low-water mark (<= High) at which producers may resume
/// @tparam Action what to do with chunks offered above High
template <class Inner = copy_buffer, std::size_t High = 256 * 1024, std::size_t Low = High / 4,
          slow_consumer_action Action = slow_consumer::wait>
struct bounded : Inner {
  // Producers resume at Low; Low above High would mean resuming while still over.
  static_assert(Low <= High,
                "tether::bounded: the low-water mark must not exceed the high-water mark (Low <= High): producers "
                "resume at Low, so lower Low or raise High (docs/buffers/bounded.md)");
  static_assert(High > 0, "tether::bounded: the high-water mark must be positive (docs/buffers/bounded.md)");
  /// The policy that queues the bytes (copy_buffer, reference_buffer or file_buffer).
  using inner = Inner;
  /// The bound: `High`, `Low` and `Action` as constants.
  using flow = bounded_flow<High, Low, Action>;
  using Inner::append;
};

namespace detail {
/// True for a bounded<> whose marks its own static_asserts refuse, found without
/// instantiating it (so that a server names only that one error).
template <class P>
struct bad_bounded_marks : std::false_type {};
template <class Inner, std::size_t High, std::size_t Low, class Action>
struct bad_bounded_marks<bounded<Inner, High, Low, Action>> : std::bool_constant<(Low > High) || High == 0> {};
}  // namespace detail

TETHER_END_NAMESPACE
