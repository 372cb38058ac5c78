// tether/broker_endpoint.hpp - a broker's subscribers on one loop: SSE streams and held
// long-polls, resumed from the id a client last saw.
//
// Each loop that serves subscribers holds one endpoint (in a server_group: created by the
// setup callable, which returns it so that it lives as long as the loop). The endpoint
// owns this loop's subscribers and delivers to them on this loop's thread: the broker
// queues each message once per endpoint and wakes it through an eventfd; the endpoint
// takes the whole queue under one short lock, then walks its own lists without any.
//
//   * subscribe(req, channels): starts an SSE stream, replays the channels' messages
//     after the client's Last-Event-ID that are still in history, then streams new ones.
//     Every frame carries its "id:" line, so a browser's EventSource resumes by itself.
//   * poll(req, channels, last): a long-poll. If a message after `last` is in history, it
//     is the answer, at once; otherwise the request is held until the next message (200)
//     or the deadline (204). The reply carries the message's id in an Event-Id header:
//     the client sends it back as `last` and gets the next message it has not seen, so a
//     client that was away between polls loses nothing the history still holds.
//
// A subscriber may listen to several channels; it gets every message once, in id order.
// At a channel's cap the request is answered 503 with Retry-After (errc::channel_full);
// a malformed channel name gets 400. A client that hangs up leaves at once (before the
// connection's close callback), and the channel's count, which covers every loop, drops.
/// @file
/// tether::basic_broker_endpoint: one loop's broker subscribers (SSE streams and held
/// long-polls), resumed from the last id a client saw. See docs/push.md.
#pragma once

#include <tether/broker.hpp>
#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/node_pool.hpp>
#include <tether/detail/owner.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/inplace_function.hpp>
#include <tether/request.hpp>
#include <tether/sse.hpp>

#include <event2/event.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

TETHER_BEGIN_NAMESPACE

/// How an endpoint treats its subscribers.
struct endpoint_options {
  /// A held long-poll is answered 204 No Content after this long.
  std::chrono::milliseconds poll_timeout{25000};
  /// An SSE comment every so often keeps proxies from timing streams out (0: none).
  std::chrono::milliseconds heartbeat{0};
  /// Retry-After (seconds) on a 503 at a channel's cap.
  std::chrono::seconds retry_after{5};
  /// Content-Type of long-poll replies.
  const char* poll_content_type = "text/plain; charset=utf-8";
  /// Channels one subscriber may name at once.
  std::size_t max_channels_per_subscriber = 16;
};

/// What an endpoint did, on its loop, since it was created.
struct endpoint_stats {
  std::uint64_t delivered = 0;  ///< frames queued to streams and long-polls answered with a message
  std::uint64_t replayed = 0;   ///< of those, messages from history on a resume
  std::uint64_t refused = 0;    ///< errc::would_block (bounded<wait>)
  std::uint64_t dropped = 0;    ///< errc::dropped (bounded<drop>)
  std::uint64_t failed = 0;     ///< other write errors (the subscriber was leaving)
  std::uint64_t gaps = 0;       ///< resumes after messages the history no longer holds
  std::uint64_t rejected = 0;   ///< subscriptions refused (cap, channel count, bad name)
};

/// A broker's subscribers on one loop: SSE streams and held long-polls, delivered to on
/// this loop's thread.
///
/// Create one per loop that serves subscribers, on that loop's thread, after its broker and
/// loop, and destroy it before both (in a server_group, the setup callable returns it so
/// it lives as long as its loop). subscribe() and poll() answer the request themselves when
/// they refuse it (400 or 503) and return why. Destroying the endpoint answers its held
/// long-polls 204, ends its streams and leaves every channel. Not copyable, not movable.
/// tether::broker_endpoint is the type for tether::server.
template <class Config>
class basic_broker_endpoint : private detail::broker_inbox {
 public:
  /// The request subscribe() and poll() take.
  using request_type = request_t<Config>;
  /// The handle a held long-poll is kept by.
  using handle_type = request_handle_t<Config>;
  /// The SSE stream a subscriber gets.
  using stream_type = basic_sse_stream<Config>;
  /// The clock long-poll deadlines are measured on.
  using clock = std::chrono::steady_clock;
  /// Called on this loop's thread as f(channel, subscribers on every loop now).
  using notify_function = inplace_function<void(std::string_view, std::size_t)>;

  /// Serves `b`'s subscribers on `loop`. Create and destroy it on the loop's thread.
  /// Throws std::bad_alloc if libevent cannot create its events.
  basic_broker_endpoint(broker& b, event_loop& loop, endpoint_options options = {})
      : broker_(b), loop_(loop), options_(options) {
    detail::note_libevent_use();
    wake_event_.reset(event_new(loop.native(), wake_.fd(), EV_READ | EV_PERSIST, &on_wake, this));
    poll_timer_.reset(event_new(loop.native(), -1, 0, &on_poll_timer, this));
    if (!wake_event_ || !poll_timer_ || event_add(wake_event_.get(), nullptr) != 0) throw std::bad_alloc{};
  }
  basic_broker_endpoint(const basic_broker_endpoint&) = delete;
  basic_broker_endpoint& operator=(const basic_broker_endpoint&) = delete;
  /// Answers held long-polls 204, ends every stream, and leaves every channel.
  ~basic_broker_endpoint() {
    while (oldest_poll_) expire(oldest_poll_);
    while (!locals_.empty()) {
      local_channel& lc = *locals_.begin()->second;
      if (lc.head) drop(lc.head->sub);
      else release_local(&lc);
    }
  }

  // ----- SSE ------------------------------------------------------------------------

  /// Starts an SSE stream on `req` subscribed to `channels`, replaying what the client
  /// missed after `last_id` (see the file comment). Errors (the request is answered):
  /// errc::invalid_argument (400: a bad or repeated channel name, too many channels),
  /// errc::channel_full or errc::too_many_channels (503 with Retry-After), or the
  /// stream's own (errc::peer_gone...).
  [[nodiscard]] std::error_code subscribe(request_type& req, std::span<const std::string_view> channels,
                            std::optional<std::uint64_t> last_id) {
    detail::join_result joined;
    if (auto ec = join(req, channels, last_id, joined)) return ec;
    auto started = stream_type::start(req);
    if (!started) {
      undo(joined);
      return started.error();
    }
    subscriber* s = acquire(false);
    s->stream = std::move(*started);
    for (const auto& m : joined.replay) {
      const auto ec = write(s, *m);
      if (!ec) ++stats_.replayed;
      else if (ec != errc::would_block && ec != errc::dropped) break;
    }
    if (auto ec = s->stream.handle().watch(*s)) {  // the stream ended during the replay
      undo(joined);
      release(s);
      return ec;
    }
    if (options_.heartbeat.count() > 0) (void)s->stream.heartbeat(loop_, options_.heartbeat);
    s->last = joined.last_id;
    link_all(s, joined);
    ++streams_;
    return {};
  }
  /// As above; the last id is the request's Last-Event-ID header (what EventSource sends).
  [[nodiscard]] std::error_code subscribe(request_type& req, std::span<const std::string_view> channels) {
    return subscribe(req, channels, header_id(req));
  }
  /// subscribe(req, {"news", "alerts"}): several channels, resumed from Last-Event-ID.
  [[nodiscard]] std::error_code subscribe(request_type& req, std::initializer_list<std::string_view> channels) {
    return subscribe(req, std::span<const std::string_view>(channels.begin(), channels.size()), header_id(req));
  }
  /// One channel, resumed from the request's Last-Event-ID header.
  [[nodiscard]] std::error_code subscribe(request_type& req, std::string_view channel) {
    return subscribe(req, std::span<const std::string_view>(&channel, 1), header_id(req));
  }
  /// One channel, resumed after `last_id` (none: new messages only).
  [[nodiscard]] std::error_code subscribe(request_type& req, std::string_view channel, std::optional<std::uint64_t> last_id) {
    return subscribe(req, std::span<const std::string_view>(&channel, 1), last_id);
  }

  // ----- long-poll ------------------------------------------------------------------

  /// Answers `req` with the oldest message after `last_id` on `channels` still in
  /// history, or holds it until the next one (200) or the deadline (204). The reply's
  /// Event-Id header is the message's id. Without `last_id` only messages published
  /// from now on answer. Errors as subscribe().
  [[nodiscard]] std::error_code poll(request_type& req, std::span<const std::string_view> channels,
                       std::optional<std::uint64_t> last_id) {
    detail::join_result joined;
    if (auto ec = join(req, channels, last_id, joined)) return ec;
    if (!joined.replay.empty()) {  // answered from history: never held, never counted
      const auto& m = *joined.replay.front();
      undo(joined);
      ++stats_.replayed;
      return reply_with(req, m);
    }
    subscriber* s = acquire(true);
    s->handle = req.hold();
    std::error_code ec = s->handle ? s->handle.watch(*s) : make_error_code(errc::libevent_failure);
    if (ec) {
      undo(joined);
      release(s);
      return ec;
    }
    s->last = joined.last_id;
    s->expires = clock::now() + options_.poll_timeout;
    link_all(s, joined);
    ++waiting_;
    push_poll(s);
    return {};
  }
  /// One channel; as poll(req, channels, last_id).
  [[nodiscard]] std::error_code poll(request_type& req, std::string_view channel, std::optional<std::uint64_t> last_id) {
    return poll(req, std::span<const std::string_view>(&channel, 1), last_id);
  }
  /// poll(req, {"a", "b"}, last): several channels; as poll(req, channels, last_id).
  [[nodiscard]] std::error_code poll(request_type& req, std::initializer_list<std::string_view> channels,
                       std::optional<std::uint64_t> last_id) {
    return poll(req, std::span<const std::string_view>(channels.begin(), channels.size()), last_id);
  }

  // ----- what is going on -----------------------------------------------------------

  /// SSE streams on this loop.
  std::size_t streams() const noexcept { return streams_; }
  /// Long-polls held on this loop.
  std::size_t waiting() const noexcept { return waiting_; }
  /// What this endpoint delivered, replayed, refused and dropped since it was created.
  const endpoint_stats& stats() const noexcept { return stats_; }
  /// The broker this endpoint serves (to publish from a handler, for instance).
  broker& owner() noexcept { return broker_; }

  /// f(channel, subscribers on every loop) when a subscriber of this loop joins a channel.
  template <class F>
  void on_join(F&& f) {
    on_join_ = notify_function(std::forward<F>(f));
  }
  /// f(channel, subscribers on every loop) when one of this loop's subscribers leaves a
  /// channel: its client hung up, its stream ended, its long-poll was answered or timed
  /// out, or the endpoint is going away.
  template <class F>
  void on_leave(F&& f) {
    on_leave_ = notify_function(std::forward<F>(f));
  }

 private:
  struct local_channel;
  struct subscriber;

  // One subscriber in one channel's list.
  struct link {
    link* prev = nullptr;
    link* next = nullptr;
    link* sibling = nullptr;  // the subscriber's next link
    subscriber* sub = nullptr;
    local_channel* channel = nullptr;
  };

  struct subscriber : detail::exchange_watcher {
    basic_broker_endpoint* endpoint = nullptr;
    std::uint64_t last = 0;  // newest id this subscriber has been sent (or skipped)
    link* links = nullptr;
    bool is_poll = false;
    stream_type stream;  // SSE
    handle_type handle;  // long-poll
    clock::time_point expires{};
    subscriber* older = nullptr;
    subscriber* newer = nullptr;
  };

  // This loop's side of one channel; it exists while the broker queues the channel's
  // messages here, i.e. while this loop has subscribers on it.
  struct local_channel {
    detail::channel_ptr shared;
    link* head = nullptr;
    std::size_t count = 0;
  };

  static std::optional<std::uint64_t> header_id(request_type& req) noexcept {
    const auto h = sse::last_event_id(req);
    return h ? parse_message_id(*h) : std::nullopt;
  }

  // ----- joining and leaving ----------------------------------------------------------

  [[nodiscard]] std::error_code join(request_type& req, std::span<const std::string_view> names, std::optional<std::uint64_t> last,
                       detail::join_result& out) {
    bool ok = !names.empty() && names.size() <= options_.max_channels_per_subscriber;
    for (std::size_t i = 0; ok && i < names.size(); ++i) {
      ok = broker_.valid_name(names[i]);
      for (std::size_t j = 0; ok && j < i; ++j) ok = names[j] != names[i];
    }
    // (Not send_error: libevent drops every header set before it, Retry-After too.)
    if (!ok) {
      ++stats_.rejected;
      (void)req.reply(400, "Bad channel", std::string_view("bad channel name\n"));
      return make_error_code(errc::invalid_argument);
    }
    if (auto ec = broker_.join(names, last, this, out)) {
      ++stats_.rejected;
      char seconds[24];
      const auto r = std::to_chars(seconds, seconds + sizeof seconds - 1, options_.retry_after.count());
      *r.ptr = '\0';
      (void)req.output_headers().set("Retry-After", seconds);
      if (ec == errc::channel_full) (void)req.reply(503, "Channel full", std::string_view("channel full\n"));
      else (void)req.reply(503, "Too many channels", std::string_view("too many channels\n"));
      return ec;
    }
    if (last && out.gap) ++stats_.gaps;
    // The broker queues these channels' messages here from now on: this loop needs
    // their local side even if the subscription fails below (undo releases it).
    for (std::size_t i = 0; i < out.channels.size(); ++i) {
      if (!out.newly_interested[i]) continue;
      auto lc = std::make_unique<local_channel>();
      lc->shared = out.channels[i];
      locals_[out.channels[i]->key] = std::move(lc);
    }
    return {};
  }

  /// Gives back the counts join() took, for a subscription that did not happen.
  void undo(const detail::join_result& j) noexcept {
    for (const auto& ch : j.channels) {
      ch->subscribers.fetch_sub(1, std::memory_order_relaxed);
      local_channel* lc = local(ch->key);
      if (lc && lc->count == 0) release_local(lc);
      else if (!lc) broker_.maybe_erase_channel(*ch);
    }
  }

  void link_all(subscriber* s, const detail::join_result& j) {
    for (const auto& ch : j.channels) {
      local_channel* lc = local(ch->key);
      link* l = links_.acquire();
      l->sub = s;
      l->channel = lc;
      l->next = lc->head;
      if (lc->head) lc->head->prev = l;
      lc->head = l;
      ++lc->count;
      l->sibling = s->links;
      s->links = l;
      if (on_join_) notify(on_join_, *ch);
    }
  }

  /// The subscriber leaves every channel (counts, notifications), then is freed.
  void leave(subscriber* s) noexcept {
    while (link* l = s->links) {
      s->links = l->sibling;
      local_channel* lc = l->channel;
      if (l->prev) l->prev->next = l->next;
      else lc->head = l->next;
      if (l->next) l->next->prev = l->prev;
      --lc->count;
      lc->shared->subscribers.fetch_sub(1, std::memory_order_relaxed);
      if (on_leave_) notify(on_leave_, *lc->shared);
      links_.release(l);
      if (lc->count == 0) release_local(lc);
    }
    if (s->is_poll) --waiting_;
    else --streams_;
    release(s);
  }

  void notify(notify_function& f, const detail::broker_channel& ch) noexcept {
    try {
      f(ch.name, ch.subscribers.load(std::memory_order_relaxed));
    } catch (...) {
      detail::report_exception("a broker endpoint's join or leave callback");
    }
  }

  local_channel* local(std::uint64_t key) const noexcept {
    const auto it = locals_.find(key);
    return it == locals_.end() ? nullptr : it->second.get();
  }
  /// No subscriber of this loop is left on the channel: the broker stops queueing its
  /// messages here. While a batch is delivered the lists are walked, so it waits.
  void release_local(local_channel* lc) noexcept {
    if (delivering_) {
      to_release_.push_back(lc->shared->key);
      return;
    }
    broker_.lose_interest(*lc->shared, this);
    locals_.erase(lc->shared->key);
  }

  /// Ends a subscription from this side (the endpoint is going away).
  void drop(subscriber* s) noexcept {
    detail::watcher_list::unlink(*s);
    if (s->is_poll) remove_poll(s);
    leave(s);
  }

  subscriber* acquire(bool is_poll) {
    subscriber* s = subs_.acquire();
    s->endpoint = this;
    s->notify = &on_exchange_end;
    s->is_poll = is_poll;
    return s;
  }
  /// Frees the node; an SSE stream still open is ended by its destructor.
  void release(subscriber* s) noexcept {
    detail::watcher_list::unlink(*s);
    subs_.release(s);
  }

  // The subscriber's exchange ended: its client hung up, its stream or poll was
  // answered elsewhere, or the server is going away.
  static void on_exchange_end(detail::exchange_watcher* w, close_reason, bool) noexcept {
    auto* s = static_cast<subscriber*>(w);
    basic_broker_endpoint* e = s->endpoint;
    if (s->is_poll) e->remove_poll(s);
    e->leave(s);
  }

  // ----- delivery -------------------------------------------------------------------

  /// Queues one frame to an SSE subscriber (as the server's buffer policy says).
  [[nodiscard]] std::error_code write(subscriber* s, const detail::broker_message& m) noexcept {
    const auto ec = s->stream.write(m.sse);
    if (!ec) ++stats_.delivered;
    else if (ec == errc::would_block) ++stats_.refused;
    else if (ec == errc::dropped) ++stats_.dropped;
    else ++stats_.failed;
    return ec;
  }

  [[nodiscard]] std::error_code reply_with(request_type& req, const detail::broker_message& m) {
    char id[24];
    const auto r = std::to_chars(id, id + sizeof id - 1, m.id);
    *r.ptr = '\0';
    auto h = req.output_headers();
    (void)h.set("Event-Id", id);
    (void)h.set("Cache-Control", "no-cache");
    if (options_.poll_content_type) (void)h.set("Content-Type", options_.poll_content_type);
    const auto ec = req.reply(200, m.data);
    if (!ec) ++stats_.delivered;
    return ec;
  }

  /// Answers a held long-poll with `m`; the subscriber leaves.
  void answer(subscriber* s, const detail::broker_message& m) noexcept {
    remove_poll(s);
    detail::watcher_list::unlink(*s);  // the reply completes the exchange: not a hang-up
    char id[24];
    const auto r = std::to_chars(id, id + sizeof id - 1, m.id);
    *r.ptr = '\0';
    (void)s->handle.add_header("Event-Id", id);
    (void)s->handle.add_header("Cache-Control", "no-cache");
    if (options_.poll_content_type) (void)s->handle.add_header("Content-Type", options_.poll_content_type);
    if (!s->handle.reply(200, m.data)) ++stats_.delivered;
    else ++stats_.failed;
    leave(s);
  }

  void deliver(const detail::broker_message& m) noexcept {
    local_channel* lc = local(m.channel);
    if (!lc) return;  // queued before this loop's last subscriber left
    for (link* l = lc->head; l;) {
      link* next = l->next;  // answering or a failed write may remove l's subscriber
      subscriber* s = l->sub;
      if (m.id > s->last) {
        s->last = m.id;
        if (s->is_poll) answer(s, m);
        else (void)write(s, m);
      }
      l = next;
    }
  }

  static void on_wake(evutil_socket_t, short, void* self) noexcept {
    auto* e = static_cast<basic_broker_endpoint*>(self);
    e->wake_.consume();
    e->take(e->batch_);
    e->delivering_ = true;
    for (const auto& m : e->batch_) e->deliver(*m);
    e->batch_.clear();  // the last reference to a message may go here, on this thread
    e->delivering_ = false;
    for (std::uint64_t key : e->to_release_)
      if (local_channel* lc = e->local(key); lc && lc->count == 0) e->release_local(lc);
    e->to_release_.clear();
  }

  // ----- long-poll deadlines: one timeout for all, so arrival order is expiry order -----

  void push_poll(subscriber* s) noexcept {
    s->older = newest_poll_;
    s->newer = nullptr;
    if (newest_poll_) newest_poll_->newer = s;
    else oldest_poll_ = s;
    newest_poll_ = s;
    if (s == oldest_poll_) arm();
  }
  void remove_poll(subscriber* s) noexcept {
    const bool was_oldest = s == oldest_poll_;
    if (s->older) s->older->newer = s->newer;
    else oldest_poll_ = s->newer;
    if (s->newer) s->newer->older = s->older;
    else newest_poll_ = s->older;
    s->older = s->newer = nullptr;
    if (was_oldest) arm();
  }
  void expire(subscriber* s) noexcept {
    remove_poll(s);
    detail::watcher_list::unlink(*s);
    (void)s->handle.add_header("Cache-Control", "no-cache");
    (void)s->handle.reply(204);
    leave(s);
  }
  void arm() noexcept {
    event_del(poll_timer_.get());
    if (!oldest_poll_) return;
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(oldest_poll_->expires - clock::now()).count();
    const long us = left > 0 ? static_cast<long>(left) : 0;
    const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    event_add(poll_timer_.get(), &tv);
  }
  static void on_poll_timer(evutil_socket_t, short, void* self) noexcept {
    auto* e = static_cast<basic_broker_endpoint*>(self);
    const auto now = clock::now();
    while (e->oldest_poll_ && e->oldest_poll_->expires <= now) e->expire(e->oldest_poll_);
    e->arm();
  }

  broker& broker_;
  event_loop& loop_;
  endpoint_options options_;
  detail::unique_event wake_event_;
  detail::unique_event poll_timer_;
  std::unordered_map<std::uint64_t, std::unique_ptr<local_channel>> locals_;
  detail::node_pool<subscriber> subs_;
  detail::node_pool<link> links_;
  std::vector<detail::message_ptr> batch_;
  std::vector<std::uint64_t> to_release_;
  subscriber* oldest_poll_ = nullptr;
  subscriber* newest_poll_ = nullptr;
  std::size_t streams_ = 0;
  std::size_t waiting_ = 0;
  bool delivering_ = false;
  endpoint_stats stats_;
  notify_function on_join_;
  notify_function on_leave_;
};

/// basic_broker_endpoint for tether::server.
using broker_endpoint = basic_broker_endpoint<default_config>;

TETHER_END_NAMESPACE
