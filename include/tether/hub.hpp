// tether/hub.hpp - one source fanned out to many streams.
//
// A hub owns its subscribers' streams. publish() writes the same bytes to each of them
// (encode once into shared_bytes: under reference_buffer every subscriber gets them
// without a copy, or with a cheaper one for at most 960 bytes). Each subscriber's connection applies the server's buffer policy on
// its own: under bounded<..., drop/coalesce/disconnect> a slow subscriber loses,
// replaces or is cut off from its own backlog without holding the others back.
//
// A subscriber whose client hangs up (or whose stream ends) leaves the hub at once: the
// hub hears the end of its exchange before the connection's close callback runs, and
// destroys the stream there. Destroying the hub ends every stream still subscribed.
/// @file
/// tether::basic_hub: one source fanned out to many streams; a subscriber whose client
/// hangs up leaves at once. See docs/hub.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/node_pool.hpp>
#include <tether/error.hpp>

#include <cstddef>
#include <type_traits>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// What publish() did.
struct publish_result {
  std::size_t delivered = 0;  ///< queued for the subscriber
  std::size_t refused = 0;    ///< errc::would_block: the subscriber's output is full (bounded<wait>)
  std::size_t dropped = 0;    ///< errc::dropped (bounded<drop>)
  std::size_t failed = 0;     ///< any other error (the subscriber was leaving)
};

/// A set of subscribed streams that publish() writes the same bytes to. `Stream` is
/// basic_stream, basic_sse_stream or basic_multipart_stream of one server type (anything
/// with write(...) and handle()).
///
/// The hub owns what subscribe() takes, and a subscriber leaves it, its stream destroyed,
/// the moment its exchange ends (client gone, stream ended, server gone). Use it on the
/// loop's thread of its streams; destroying it (or clear()) ends every stream still
/// subscribed. Not copyable, not movable. Subscribers are pooled: after warm-up,
/// subscribing allocates nothing. See docs/hub.md.
template <class Stream>
class basic_hub {
 public:
  basic_hub() = default;
  basic_hub(const basic_hub&) = delete;
  basic_hub& operator=(const basic_hub&) = delete;
  ~basic_hub() { clear(); }

  /// Takes ownership of `stream` (left empty, moved from): an empty error_code means it is
  /// subscribed, and the hub destroys it when its exchange ends. Errors: errc::peer_gone
  /// (or reply_finished) if the stream has already ended; it is destroyed and nothing is
  /// subscribed. Throws std::bad_alloc if no node can be allocated. A stream of another
  /// type (another server's) does not compile: name the hub after the stream's server.
  template <class S>
  [[nodiscard]] std::error_code subscribe(S&& stream) {
    if constexpr (!std::is_same_v<std::remove_cvref_t<S>, Stream>) {
      static_assert(std::is_same_v<std::remove_cvref_t<S>, Stream>,
                    "tether: this hub holds streams of another type (another server's) than the one given: name "
                    "the hub after the stream's server, server_t::hub<server_t::sse_stream> "
                    "(tether::hub<tether::sse_stream> is tether::server's) (docs/push.md#helpers-follow-the-server)");
      return {};
    } else if constexpr (std::is_lvalue_reference_v<S>) {
      static_assert(!std::is_lvalue_reference_v<S>,
                    "tether: hub::subscribe takes the stream over: pass it with std::move(stream) (docs/hub.md)");
      return {};
    } else {
      return adopt(std::move(stream));
    }
  }

  /// Writes `bodies` (one chunk: shared_bytes, static_bytes, bytes, file ranges, as the
  /// buffer policy accepts) to every subscriber, and counts what happened to each. A
  /// subscriber whose write ends its exchange leaves; the others still get the chunk.
  template <class... Bodies>
  publish_result publish(const Bodies&... bodies) {
    publish_result r;
    for (node* n = head_; n;) {
      node* next = n->next;  // a failed write may end the exchange and unsubscribe n
      const auto ec = n->stream.write(bodies...);
      if (!ec) ++r.delivered;
      else if (ec == errc::would_block) ++r.refused;
      else if (ec == errc::dropped) ++r.dropped;
      else ++r.failed;
      n = next;
    }
    return r;
  }

  /// Calls `f(stream)` for every subscriber (`Stream&`). A write in `f` may end the
  /// stream it is given (a limit closes the connection and the subscriber leaves): the
  /// walk has already read the next one. `f` must not subscribe, unsubscribe or clear(),
  /// and must not end another subscriber's stream.
  template <class F>
  void for_each(F&& f) {
    for (node* n = head_; n;) {
      node* next = n->next;  // f may end n's stream, which unlinks and frees n
      f(n->stream);
      n = next;
    }
  }

  /// Subscribers now.
  std::size_t size() const noexcept { return count_; }
  /// True if no stream is subscribed.
  bool empty() const noexcept { return count_ == 0; }

  /// Unsubscribes and destroys every stream (which ends their replies).
  void clear() {
    while (head_) unsubscribe(head_);
  }

 private:
  [[nodiscard]] std::error_code adopt(Stream&& stream) {
    auto n = acquire();
    n->stream = std::move(stream);
    if (auto ec = n->stream.handle().watch(*n)) {
      recycle(n);
      return ec;
    }
    n->prev = nullptr;
    n->next = head_;
    if (head_) head_->prev = n;
    head_ = n;
    ++count_;
    return {};
  }

  struct node : detail::exchange_watcher {
    Stream stream;
    node* prev = nullptr;
    node* next = nullptr;
    basic_hub* hub = nullptr;
  };

  node* acquire() {
    node* n = pool_.acquire();
    n->hub = this;
    n->notify = &on_exchange_end;
    return n;
  }
  void recycle(node* n) noexcept {
    detail::watcher_list::unlink(*n);
    pool_.release(n);  // destroys the stream: ends a live reply, frees nothing libevent owns
  }
  void unsubscribe(node* n) noexcept {
    if (n->prev) n->prev->next = n->next;
    else head_ = n->next;
    if (n->next) n->next->prev = n->prev;
    --count_;
    recycle(n);
  }

  static void on_exchange_end(detail::exchange_watcher* w, close_reason, bool) noexcept {
    auto* n = static_cast<node*>(w);
    n->hub->unsubscribe(n);
  }

  detail::node_pool<node> pool_;
  node* head_ = nullptr;
  std::size_t count_ = 0;
};

/// A hub of streams (basic_stream, basic_sse_stream, basic_multipart_stream).
template <class Stream>
using hub = basic_hub<Stream>;

TETHER_END_NAMESPACE
