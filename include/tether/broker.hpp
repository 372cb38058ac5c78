// tether/broker.hpp - named channels with history, published from any thread, delivered
// by every loop to its own subscribers.
//
// A broker is the part of a pub/sub service that every loop shares: a registry of
// channels named at run time, each with a bounded history, and one sequence of message
// ids. Subscribers live on loops; each loop that has any holds a broker_endpoint
// (broker_endpoint.hpp), which owns its SSE streams and held long-polls and delivers on
// its own thread. The broker never touches a connection.
//
// publish(channel, data) may run on any thread, one that runs no loop included. Under
// the broker's lock it takes the next id, encodes the SSE frame once ("id: N", "event:",
// "data:" lines) into one immutable, reference-counted block, appends the message to the
// channel's history and hands one reference to each endpoint that has subscribers on the
// channel: a push onto that endpoint's queue and, if the endpoint is not already awake,
// one write to its eventfd. Nothing is taken per subscriber; every loop writes the same
// bytes. Because ids are taken and queues filled under one lock, every endpoint sees
// messages in id order: per publisher, per channel and across channels.
//
// Ids come from one sequence per broker, so they grow across all channels: a connection
// subscribed to several channels resumes from one id (SSE's Last-Event-ID), and the
// messages it missed on each channel are the ones with larger ids still in history.
/// @file
/// tether::broker: named channels with a bounded history and one sequence of message ids,
/// published from any thread. See docs/push.md (the broker).
//
// With broker_options::external_ids the ids come from elsewhere instead, through relay()
// (a redis_hub takes them from Redis, so that every process has the same ones): the
// broker keeps them as given and skips any that does not grow.
#pragma once

#include <tether/bytes.hpp>
#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/error.hpp>
#include <tether/sse.hpp>
#include <tether/wakeup.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

TETHER_BEGIN_NAMESPACE

/// What a broker keeps and allows.
struct broker_options {
  /// Messages kept per channel for subscribers that come back (0: none).
  std::size_t history = 64;
  /// Messages older than this are not replayed (0: kept until the history is full).
  std::chrono::milliseconds history_ttl{0};
  /// Subscribers per channel, on all loops together (0: no cap); per-channel caps
  /// override it (broker::set_max_subscribers).
  std::size_t max_subscribers = 0;
  /// Channels (0: no cap). At the cap, a new channel takes the place of the idle channel
  /// (no subscribers) whose last message is oldest; with none idle, it is refused.
  std::size_t max_channels = 100000;
  /// Longest channel name, in bytes.
  std::size_t max_name = 256;
  /// Ids are given by someone else, through broker::relay (a redis_hub: docs/redis.md),
  /// and publish() refuses. Such ids grow across processes and restarts, so a client's
  /// Last-Event-ID above this broker's newest id is one another process gave out: the
  /// client has seen it, and gets only what comes after it.
  bool external_ids = false;
};

/// Parses a message id as sent back by a client ("42"): decimal digits only.
inline std::optional<std::uint64_t> parse_message_id(std::string_view text) noexcept {
  std::uint64_t v = 0;
  if (text.empty() || text.size() > 20) return std::nullopt;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

namespace detail {

/// One published message; immutable once published, shared by history and every loop.
struct broker_message {
  std::uint64_t id = 0;
  std::uint64_t channel = 0;  // the channel's key (never reused)
  shared_bytes data;          // the body as published (long-poll replies)
  shared_bytes sse;           // its event-stream frame, id line included
  std::chrono::steady_clock::time_point at{};
};
using message_ptr = std::shared_ptr<const broker_message>;

/// What an endpoint is to the broker: a queue the broker fills under its lock and an
/// eventfd it signals. The endpoint drains the queue on its loop's thread.
class broker_inbox {
 public:
  broker_inbox() = default;
  broker_inbox(const broker_inbox&) = delete;
  broker_inbox& operator=(const broker_inbox&) = delete;

  /// Any thread.
  void push(const message_ptr& m) {
    {
      const std::lock_guard lock(mutex_);
      pending_.push_back(m);
    }
    wake_.signal();
  }

 protected:
  /// The endpoint's thread: swaps the queue with `into` (empty, capacity kept).
  void take(std::vector<message_ptr>& into) {
    const std::lock_guard lock(mutex_);
    pending_.swap(into);
  }
  wake_fd wake_;

 private:
  std::mutex mutex_;
  std::vector<message_ptr> pending_;
};

struct broker_channel {
  std::string name;
  std::uint64_t key = 0;
  std::deque<message_ptr> history;          // oldest first
  std::uint64_t evicted_upto = 0;           // newest id dropped from history
  std::uint64_t last_id = 0;                // newest id published here
  std::size_t cap = 0;                      // 0: the broker's max_subscribers
  std::atomic<std::size_t> subscribers{0};  // on every loop; decremented without the lock
  std::vector<broker_inbox*> interested;    // endpoints with subscribers here
};
using channel_ptr = std::shared_ptr<broker_channel>;

/// What broker::join tells an endpoint.
struct join_result {
  std::vector<channel_ptr> channels;  // in the order asked
  std::vector<bool> newly_interested;
  std::vector<message_ptr> replay;    // missed messages, in id order
  std::uint64_t last_id = 0;          // the newest id the subscriber counts as seen
  bool gap = false;                   // some missed messages are no longer in history
};

}  // namespace detail

/// Named channels with history; see the file comment. Thread-safe. Endpoints keep a
/// reference to it: destroy them (stop their loops) before the broker.
class broker {
 public:
  /// A broker with no channel yet; `options` sets history, caps and limits (broker_options).
  explicit broker(broker_options options = {}) : options_(options) {}
  broker(const broker&) = delete;
  broker& operator=(const broker&) = delete;

  /// Publishes `data` on `channel` (created if it does not exist) as an event of type
  /// `event` (empty: the default "message"). Any thread. Returns the message's id.
  /// Errors: errc::invalid_argument (a channel name that is empty, too long or holds a
  /// control character; an event type with a line break), errc::too_many_channels (at
  /// max_channels with no idle channel to replace); errc::invalid_argument on a broker
  /// with external_ids, whose ids come through relay().
  result<std::uint64_t> publish(std::string_view channel, std::string_view data, std::string_view event = {}) {
    if (options_.external_ids) return errc::invalid_argument;
    return add(0, channel, data, event);
  }

  /// Delivers a message whose id was given elsewhere (by Redis, for a redis_hub) as
  /// publish() does. Any thread. Ids must grow: a message whose id is not above the
  /// newest this broker has seen is a duplicate (a catch-up that overlaps what was
  /// already relayed) and is skipped, with the result 0. Errors as publish(), and
  /// errc::invalid_argument for the id 0; the id counts as seen even then.
  result<std::uint64_t> relay(std::uint64_t id, std::string_view channel, std::string_view data,
                              std::string_view event = {}) {
    if (id == 0) return errc::invalid_argument;
    return add(id, channel, data, event);
  }

  /// Subscribers of `channel` on every loop now (0 for a channel that does not exist).
  std::size_t subscribers(std::string_view channel) const {
    const std::lock_guard lock(mutex_);
    const auto it = channels_.find(channel);
    return it == channels_.end() ? 0 : it->second->subscribers.load(std::memory_order_relaxed);
  }
  /// Messages in `channel`'s history now.
  std::size_t history_size(std::string_view channel) const {
    const std::lock_guard lock(mutex_);
    const auto it = channels_.find(channel);
    return it == channels_.end() ? 0 : it->second->history.size();
  }
  /// Channels that exist now.
  std::size_t channels() const {
    const std::lock_guard lock(mutex_);
    return channels_.size();
  }
  /// The newest id given out (0 before the first publish).
  std::uint64_t last_id() const {
    const std::lock_guard lock(mutex_);
    return last_id_;
  }
  /// Caps `channel`'s subscribers at `n` (0: the broker's max_subscribers), creating it
  /// if needed. Subscribers beyond a lowered cap stay; new ones are refused until the
  /// count is under it. Errors as publish.
  [[nodiscard]] std::error_code set_max_subscribers(std::string_view channel, std::size_t n) {
    if (!valid_name(channel)) return make_error_code(errc::invalid_argument);
    const std::lock_guard lock(mutex_);
    detail::broker_channel* ch = find(channel);
    if (!ch) {
      if (!room_for(1)) return make_error_code(errc::too_many_channels);
      ch = create(channel);
    }
    ch->cap = n;
    return {};
  }

  /// The options the broker was made with.
  const broker_options& options() const noexcept { return options_; }

  /// A channel name is 1..max_name bytes with no control characters.
  bool valid_name(std::string_view name) const noexcept {
    if (name.empty() || name.size() > options_.max_name) return false;
    for (unsigned char c : name)
      if (c < 0x20 || c == 0x7f) return false;
    return true;
  }

 private:
  template <class Config>
  friend class basic_broker_endpoint;

  struct name_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  /// Adds one subscriber to each of `names` for `inbox` (an endpoint), or to none:
  /// errc::channel_full when one is at its cap, errc::too_many_channels when a new one
  /// cannot be made. Registers the endpoint's interest where it had none, and collects
  /// the messages after `last` (if it names a message this broker gave out).
  [[nodiscard]] std::error_code join(std::span<const std::string_view> names, std::optional<std::uint64_t> last,
                       detail::broker_inbox* inbox, detail::join_result& out) {
    const auto now = std::chrono::steady_clock::now();
    const std::lock_guard lock(mutex_);
    std::size_t missing = 0;
    for (auto name : names) {
      detail::broker_channel* ch = find(name);
      if (!ch) {
        ++missing;
      } else {
        const std::size_t cap = ch->cap ? ch->cap : options_.max_subscribers;
        if (cap != 0 && ch->subscribers.load(std::memory_order_relaxed) >= cap) return make_error_code(errc::channel_full);
      }
    }
    if (missing && !room_for(missing)) return make_error_code(errc::too_many_channels);
    out.last_id = last_id_;
    const bool resume = last && *last < last_id_;
    if (last && *last > last_id_ && options_.external_ids) out.last_id = *last;
    for (auto name : names) {
      detail::broker_channel* ch = find(name);
      if (!ch) ch = create(name);
      ch->subscribers.fetch_add(1, std::memory_order_relaxed);
      const bool added = std::find(ch->interested.begin(), ch->interested.end(), inbox) == ch->interested.end();
      if (added) ch->interested.push_back(inbox);
      out.channels.push_back(channels_.find(name)->second);
      out.newly_interested.push_back(added);
      if (!resume) continue;
      trim(*ch, now);
      if (ch->evicted_upto > *last) out.gap = true;
      for (auto it = ch->history.rbegin(); it != ch->history.rend() && (*it)->id > *last; ++it) out.replay.push_back(*it);
    }
    std::sort(out.replay.begin(), out.replay.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
    return {};
  }

  /// An endpoint has no subscribers left on `ch`: stop queueing its messages there.
  void lose_interest(detail::broker_channel& ch, detail::broker_inbox* inbox) {
    const std::lock_guard lock(mutex_);
    std::erase(ch.interested, inbox);
    maybe_erase(ch);
  }

  /// Called after a subscriber's count was given back (without the lock).
  void maybe_erase_channel(detail::broker_channel& ch) {
    const std::lock_guard lock(mutex_);
    maybe_erase(ch);
  }

  /// publish (`given` 0: the next id of this broker's sequence) and relay (`given`).
  result<std::uint64_t> add(std::uint64_t given, std::string_view channel, std::string_view data, std::string_view event) {
    const bool valid = valid_name(channel) && sse::detail::single_line(event);
    if (!valid && given == 0) return errc::invalid_argument;
    thread_local std::string body;  // the frame after its id line, encoded outside the lock
    body.clear();
    if (valid)
      if (auto ec = sse::encode_to(body, {.event = event, .data = data})) return ec;
    shared_bytes payload(data);
    const auto now = std::chrono::steady_clock::now();

    const std::lock_guard lock(mutex_);
    if (given != 0 && given <= last_id_) return std::uint64_t{0};
    const std::uint64_t id = given != 0 ? given : last_id_ + 1;
    if (given != 0) last_id_ = id;  // a relayed id is seen even if the message is refused
    if (!valid) return errc::invalid_argument;
    detail::broker_channel* ch = find(channel);
    if (!ch && options_.history == 0) return last_id_ = id;  // no history, so no subscriber either
    if (!ch) {
      if (!room_for(1)) return errc::too_many_channels;
      ch = create(channel);
    }
    last_id_ = id;
    char digits[24];
    const auto r = std::to_chars(digits, digits + sizeof digits, id);
    std::string frame;
    frame.reserve(5 + static_cast<std::size_t>(r.ptr - digits) + body.size());
    frame.append("id: ").append(digits, r.ptr).append("\n").append(body);
    auto m = std::make_shared<detail::broker_message>();
    m->id = id;
    m->channel = ch->key;
    m->data = std::move(payload);
    m->sse = shared_bytes(frame);
    m->at = now;
    detail::message_ptr msg = std::move(m);
    ch->last_id = id;
    if (options_.history != 0) {
      ch->history.push_back(msg);
      trim(*ch, now);
    }
    for (detail::broker_inbox* inbox : ch->interested) inbox->push(msg);
    return id;
  }

  // ----- under mutex_ -----------------------------------------------------------------

  detail::broker_channel* find(std::string_view name) const {
    const auto it = channels_.find(name);
    return it == channels_.end() ? nullptr : it->second.get();
  }
  detail::broker_channel* create(std::string_view name) {
    auto ch = std::make_shared<detail::broker_channel>();
    ch->name = std::string(name);
    ch->key = ++last_key_;
    auto* raw = ch.get();
    channels_.emplace(ch->name, std::move(ch));
    return raw;
  }
  static bool idle(const detail::broker_channel& ch) noexcept {
    return ch.interested.empty() && ch.subscribers.load(std::memory_order_relaxed) == 0;
  }
  /// Makes room for `n` new channels, replacing idle ones (oldest last message first).
  bool room_for(std::size_t n) {
    if (options_.max_channels == 0) return true;
    while (channels_.size() + n > options_.max_channels) {
      auto victim = channels_.end();
      for (auto it = channels_.begin(); it != channels_.end(); ++it)
        if (idle(*it->second) && (victim == channels_.end() || it->second->last_id < victim->second->last_id)) victim = it;
      if (victim == channels_.end()) return false;
      channels_.erase(victim);
    }
    return true;
  }
  /// Drops a channel that has nothing left: no subscribers, no interest, no history.
  void maybe_erase(detail::broker_channel& ch) {
    if (!idle(ch) || !ch.history.empty() || ch.cap != 0) return;
    const auto it = channels_.find(std::string_view(ch.name));
    if (it != channels_.end() && it->second.get() == &ch) channels_.erase(it);
  }
  void trim(detail::broker_channel& ch, std::chrono::steady_clock::time_point now) {
    while (ch.history.size() > options_.history ||
           (!ch.history.empty() && options_.history_ttl.count() > 0 && now - ch.history.front()->at > options_.history_ttl)) {
      ch.evicted_upto = ch.history.front()->id;
      ch.history.pop_front();
    }
  }

  broker_options options_;
  mutable std::mutex mutex_;
  std::uint64_t last_id_ = 0;
  std::uint64_t last_key_ = 0;
  std::unordered_map<std::string, detail::channel_ptr, name_hash, std::equal_to<>> channels_;
};

TETHER_END_NAMESPACE
