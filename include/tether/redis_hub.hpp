// tether/redis_hub.hpp - a broker whose messages travel through Redis, so that every
// process (on every machine) that shares the Redis delivers every message, with the same
// ids, and a client resumes with Last-Event-ID on any of them.
/// @file
/// tether::redis_hub: a broker's messages through Redis pub/sub (docs/redis.md). Needs
/// hiredis (libhiredis-dev) in the program that includes it; nothing else in tether does.
//
// How a message travels. hub.publish(channel, data) sends one EVAL to Redis. The script
// runs atomically: it takes the message's id, appends the message to one Redis stream
// (PREFIX:stream, trimmed to stream_length entries, every channel together) and
// PUBLISHes it on one pub/sub channel (PREFIX:events). Every hub is subscribed to that
// channel and relays what it receives into its process's broker (broker::relay), whose
// endpoints deliver it on every loop as if it had been published locally. The publisher's
// own process gets the message back the same way, so every process sees the same ids in
// the same order: Redis runs one script at a time and sends a subscriber's messages in
// the order they were published.
//
// Why a stream and not a list with INCR. Ids must grow across processes and across a
// Redis restart that loses its data (the tests run Redis with no persistence): the broker
// skips any id not above the last it saw, so a counter that restarts at 1 would silence
// every process until it passed the old ids. The script therefore takes the id from
// Redis's clock, in microseconds, and one more than the stream's newest entry if the
// clock has not moved on: ids are plain integers (SSE ids, Last-Event-ID, long-poll ids
// as the broker has them), they grow across restarts, and they come from one clock,
// Redis's, never the processes'. The stream then does for free what a list would need
// code for: it is indexed by those ids, so a catch-up is one XRANGE from the last id a
// process has; it refuses an id that does not grow; and XADD trims it in the same call.
//
// Catch-up. On connecting (and on every reconnect) a hub subscribes first and, once
// Redis confirms, reads the stream after the newest id its broker has (XRANGE). Messages
// that arrive on the subscription meanwhile wait; then the stream's entries are relayed,
// then the waiting ones, and the broker skips what it already had. Published before the
// XRANGE ran: in the stream; after the SUBSCRIBE took effect: on the subscription; so
// nothing falls between. A process that starts fills its broker's history from the
// stream the same way, so a client that reconnects to it resumes without a gap.
//
// When Redis goes away. The hub never blocks its loop: connections are non-blocking
// (hiredis's async API on the loop, through its libevent adapter), publishes are refused
// at once while it is not connected (errc::redis_unavailable; the caller answers 503),
// and it reconnects from a timer with back-off. It says so once per episode through its
// event sink (server_event_kind::redis_lost, then redis_restored), and counts every
// publish it could not relay. Local subscribers keep their streams and get what was
// missed once Redis is back and the catch-up runs.
//
// One hub serves one broker and lives on one loop: create, use and destroy it on that
// loop's thread (the broker delivers to endpoints on every loop). Do not destroy it from
// inside one of its own callbacks.
#pragma once

#include <tether/broker.hpp>
#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/libevent_use.hpp>
#include <tether/detail/owner.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/inplace_function.hpp>
#include <tether/server_event.hpp>
#include <tether/sse.hpp>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

TETHER_BEGIN_NAMESPACE

/// Where a redis_hub finds Redis and how it behaves when Redis is away.
struct redis_options {
  /// Redis's address: an IP address (a host name is resolved with a blocking call).
  std::string host = "127.0.0.1";
  /// Redis's port.
  std::uint16_t port = 6379;
  /// Names in Redis: the stream `PREFIX:stream` and the pub/sub channel `PREFIX:events`.
  /// Hubs with the same prefix on the same Redis share their messages.
  std::string prefix = "tether";
  /// Messages the stream keeps for catch-up, every channel together (at least 1).
  std::size_t stream_length = 10000;
  /// Connecting, subscribing and catching up must take no longer, or the attempt counts
  /// as failed.
  std::chrono::milliseconds connect_timeout{2000};
  /// Once connected, Redis must answer each command within this, or the connection
  /// counts as lost (a Redis that is stopped or hangs, not only one that is gone). An idle
  /// hub sends a PING every half of it to find out.
  std::chrono::milliseconds command_timeout{2000};
  /// The first retry after a failure; each next one waits twice as long, up to retry_max.
  std::chrono::milliseconds retry_min{100};
  /// The longest wait between two attempts.
  std::chrono::milliseconds retry_max{5000};
  /// Publishes awaiting Redis's answer; beyond it publish() refuses (errc::redis_unavailable).
  std::size_t max_in_flight = 10000;
};

/// What a redis_hub did since it was created.
struct redis_stats {
  std::uint64_t published = 0;    ///< publishes Redis acknowledged with an id
  std::uint64_t not_relayed = 0;  ///< publishes refused (Redis away) or failed (no answer, an error)
  std::uint64_t received = 0;     ///< messages relayed into the broker, live and caught up
  std::uint64_t caught_up = 0;    ///< of those, read from the stream after (re)connecting
  std::uint64_t duplicates = 0;   ///< messages skipped because the broker already had them
  std::uint64_t rejected = 0;     ///< messages from Redis that were malformed or that the broker refused
  std::uint64_t connects = 0;     ///< times the hub became ready (connected and caught up)
  std::uint64_t episodes = 0;     ///< times Redis was lost or could not be reached (redis_lost events)
};

/// A broker's messages through Redis; see the file comment and docs/redis.md.
class redis_hub {
 public:
  /// Called when a publish is answered: the message's id, or why there is none
  /// (errc::redis_failed, errc::cancelled when the hub is destroyed first).
  using completion = inplace_function<void(result<std::uint64_t>), 4 * sizeof(void*)>;
  /// What the hub keeps its event sink in (server_event_sink).
  using sink_type = server_event_sink;

  /// Relays `b`'s messages through the Redis that `options` names, on `loop`; connecting
  /// starts when the loop runs (publishes are refused until ready()). `b` must have been made with
  /// broker_options::external_ids: its ids come from Redis. Throws std::invalid_argument
  /// otherwise, std::bad_alloc if libevent cannot create the hub's timers.
  redis_hub(broker& b, event_loop& loop, redis_options options = {})
      : broker_(b), loop_(loop), options_(std::move(options)) {
    if (!b.options().external_ids)
      throw std::invalid_argument("tether::redis_hub: the broker needs broker_options::external_ids");
    options_.stream_length = std::max<std::size_t>(options_.stream_length, 1);
    options_.retry_min = std::max(options_.retry_min, std::chrono::milliseconds(1));
    options_.retry_max = std::max(options_.retry_max, options_.retry_min);
    stream_key_ = options_.prefix + ":stream";
    channel_ = options_.prefix + ":events";
    where_ = options_.host + ":" + std::to_string(options_.port);
    length_ = std::to_string(options_.stream_length);
    detail::note_libevent_use();
    retry_timer_.reset(event_new(loop.native(), -1, 0, &on_retry_timer, this));
    deadline_.reset(event_new(loop.native(), -1, 0, &on_deadline, this));
    watchdog_.reset(event_new(loop.native(), -1, EV_PERSIST, &on_watchdog, this));
    reaper_.reset(event_new(loop.native(), -1, 0, &on_reap, this));
    if (!retry_timer_ || !deadline_ || !reaper_ || !watchdog_) throw std::bad_alloc{};
    options_.command_timeout = std::max(options_.command_timeout, std::chrono::milliseconds(10));
    delay_ = options_.retry_min;
    // The first attempt runs from the loop, after the caller has set its event sink.
    event_active(retry_timer_.get(), EV_TIMEOUT, 0);
  }
  redis_hub(const redis_hub&) = delete;
  redis_hub& operator=(const redis_hub&) = delete;
  /// Closes both connections; publishes still awaiting an answer complete with
  /// errc::cancelled.
  ~redis_hub() {
    closing_ = true;
    doom(cmd_);
    doom(sub_);
    reap();
  }

  /// Publishes `data` on `channel` as an event of type `event` (empty: "message") to every
  /// hub on this Redis with this prefix, this one included. Returns at once: an error
  /// means nothing was sent (errc::invalid_argument: a bad channel name or event type;
  /// errc::redis_unavailable: not connected, counted in stats().not_relayed). The id
  /// comes later, to `done` if given.
  [[nodiscard]] std::error_code publish(std::string_view channel, std::string_view data, std::string_view event = {}) {
    return send(channel, data, event, completion{});
  }
  /// As above; `done(result<std::uint64_t>)` is called once, on this loop, with the id
  /// Redis gave the message or why it failed (only when publish returned no error).
  template <class F>
  [[nodiscard]] std::error_code publish(std::string_view channel, std::string_view data, std::string_view event, F&& done) {
    return send(channel, data, event, completion(std::forward<F>(done)));
  }

  /// Connected to Redis, subscribed and caught up: publishes are accepted.
  bool ready() const noexcept { return state_ == state::ready; }
  /// Counters since the hub was created.
  const redis_stats& stats() const noexcept { return stats_; }
  /// Publishes sent and not answered yet.
  std::size_t in_flight() const noexcept { return in_flight_; }
  /// The broker the hub relays into.
  broker& owner() noexcept { return broker_; }
  /// Where the hub looks for Redis ("127.0.0.1:6379").
  const std::string& address() const noexcept { return where_; }

  /// Sends the hub's events (server_event_kind::redis_lost and redis_restored) to `sink`,
  /// a callable `void(const server_event&)` of at most three pointers, e.g. a lambda that
  /// hands them to the server's sink: `[&srv](const auto& e) { srv.report(e); }`. The
  /// default, log_server_event, writes one line to stderr for each.
  template <class Sink>
  void on_event(Sink&& sink) {
    sink_ = sink_type(std::forward<Sink>(sink));
  }

 private:
  enum class state : std::uint8_t { down, connecting, ready };

  struct pending_publish {
    redis_hub* hub;
    completion done;
  };

  // ----- connecting -------------------------------------------------------------------

  void connect() {
    state_ = state::connecting;
    early_.clear();
    catching_up_ = false;
    cmd_ = open();
    sub_ = cmd_ ? open() : nullptr;
    if (!cmd_ || !sub_) return fail(what_.empty() ? std::string_view("cannot create a connection") : what_);
    const char* argv[] = {"SUBSCRIBE", channel_.c_str()};
    const std::size_t lens[] = {9, channel_.size()};
    if (redisAsyncCommandArgv(sub_, &on_subscription, this, 2, argv, lens) != REDIS_OK) return fail("SUBSCRIBE");
    arm(deadline_.get(), options_.connect_timeout);
  }

  redisAsyncContext* open() {
    what_.clear();
    redisAsyncContext* ac = redisAsyncConnect(options_.host.c_str(), options_.port);
    if (!ac) return nullptr;
    if (ac->err) {
      what_ = ac->errstr;
      redisAsyncFree(ac);
      return nullptr;
    }
    ac->data = this;
    if (redisLibeventAttach(ac, loop_.native()) != REDIS_OK) {
      redisAsyncFree(ac);
      return nullptr;
    }
    redisAsyncSetConnectCallback(ac, &on_connect);
    redisAsyncSetDisconnectCallback(ac, &on_disconnect);
    return ac;
  }

  // A connection attempt ended (status REDIS_ERR: it failed, and hiredis frees `ac`).
  static void on_connect(const redisAsyncContext* ac, int status) {
    auto* h = static_cast<redis_hub*>(ac->data);
    if (status == REDIS_OK) return;
    h->forget(ac);
    if (!h->closing_) h->fail(ac->errstr);
  }
  // A connected connection ended; hiredis frees `ac` when this returns.
  static void on_disconnect(const redisAsyncContext* ac, int status) {
    auto* h = static_cast<redis_hub*>(ac->data);
    const bool ours = ac == h->cmd_ || ac == h->sub_;
    h->forget(ac);
    if (ours && !h->closing_) h->fail(status == REDIS_OK ? "connection closed" : ac->errstr);
  }

  // The subscription: Redis's confirmation, then every message, then nullptr at the end.
  static void on_subscription(redisAsyncContext* ac, void* r, void* self) {
    auto* h = static_cast<redis_hub*>(self);
    const auto* reply = static_cast<const redisReply*>(r);
    if (!reply || ac != h->sub_ || h->closing_) return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING) {
      ++h->stats_.rejected;
      return;
    }
    const std::string_view kind(reply->element[0]->str, reply->element[0]->len);
    if (kind == "subscribe") return h->catch_up();
    if (kind != "message" || reply->element[2]->type != REDIS_REPLY_STRING) return;
    const std::string_view payload(reply->element[2]->str, reply->element[2]->len);
    if (h->state_ == state::ready) h->relay_payload(payload, false);
    else h->early_.emplace_back(payload);
  }

  void catch_up() {
    if (!cmd_ || catching_up_) return;
    catching_up_ = true;
    const std::uint64_t last = broker_.last_id();
    const std::string from = last == 0 ? std::string("-") : std::to_string(last + 1);
    const char* argv[] = {"XRANGE", stream_key_.c_str(), from.c_str(), "+", "COUNT", length_.c_str()};
    const std::size_t lens[] = {6, stream_key_.size(), from.size(), 1, 5, length_.size()};
    if (redisAsyncCommandArgv(cmd_, &on_catch_up, this, 6, argv, lens) != REDIS_OK) return fail("XRANGE");
    sent();
  }

  static void on_catch_up(redisAsyncContext* ac, void* r, void* self) {
    auto* h = static_cast<redis_hub*>(self);
    const auto* reply = static_cast<const redisReply*>(r);
    h->answered(ac);
    if (!reply || ac != h->cmd_ || h->closing_) return;  // the connection is going: fail() comes
    if (reply->type != REDIS_REPLY_ARRAY) return h->fail(reply->type == REDIS_REPLY_ERROR ? reply->str : "XRANGE");
    for (std::size_t i = 0; i < reply->elements; ++i) h->relay_entry(*reply->element[i]);
    for (const auto& payload : h->early_) h->relay_payload(payload, false);
    h->early_.clear();
    h->early_.shrink_to_fit();
    h->became_ready();
  }

  void became_ready() {
    event_del(deadline_.get());
    arm(watchdog_.get(), options_.command_timeout / 4);
    state_ = state::ready;
    ++stats_.connects;
    delay_ = options_.retry_min;
    if (!lost_) return;
    lost_ = false;
    server_event e{server_event_kind::redis_restored};
    e.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - lost_at_);
    e.retries = retries_;
    e.count = stats_.not_relayed - not_relayed_at_loss_;
    e.what = where_;
    report(e);
  }

  // ----- failing and retrying ---------------------------------------------------------

  /// The attempt or the connection failed: drop both connections (later, outside
  /// hiredis's callbacks), say so if this starts an episode, retry after the back-off.
  void fail(std::string_view why) {
    if (closing_ || state_ == state::down) return;
    state_ = state::down;
    event_del(watchdog_.get());
    outstanding_ = 0;
    const std::uint64_t unanswered = std::exchange(unanswered_, 0);
    catching_up_ = false;
    event_del(deadline_.get());
    doom(cmd_);
    doom(sub_);
    event_active(reaper_.get(), EV_TIMEOUT, 0);
    if (!lost_) {
      lost_ = true;
      lost_at_ = std::chrono::steady_clock::now();
      retries_ = 0;
      not_relayed_at_loss_ = stats_.not_relayed - unanswered;
      ++stats_.episodes;
      std::string text = where_;
      if (!why.empty()) text.append(": ").append(why);
      server_event e{server_event_kind::redis_lost};
      e.error = make_error_code(errc::redis_unavailable);
      e.duration = delay_;
      e.what = text;
      report(e);
    } else {
      ++retries_;
    }
    arm(retry_timer_.get(), delay_);
    delay_ = std::min(delay_ * 2, options_.retry_max);
  }

  void doom(redisAsyncContext*& ac) {
    if (!ac) return;
    doomed_.push_back(ac);
    ac = nullptr;
  }
  /// hiredis frees `ac` itself: forget it wherever it is.
  void forget(const redisAsyncContext* ac) noexcept {
    if (ac == cmd_) cmd_ = nullptr;
    if (ac == sub_) sub_ = nullptr;
    std::erase(doomed_, ac);
  }
  /// Frees the connections fail() gave up; their pending publishes complete with an error.
  void reap() noexcept {
    std::vector<redisAsyncContext*> now;
    now.swap(doomed_);
    for (redisAsyncContext* ac : now) redisAsyncFree(ac);
  }

  static void on_reap(evutil_socket_t, short, void* self) { static_cast<redis_hub*>(self)->reap(); }
  static void on_retry_timer(evutil_socket_t, short, void* self) {
    auto* h = static_cast<redis_hub*>(self);
    h->reap();
    h->connect();
  }
  static void on_deadline(evutil_socket_t, short, void* self) {
    static_cast<redis_hub*>(self)->fail("no answer within the connect timeout");
  }

  static void arm(event* ev, std::chrono::milliseconds d) noexcept {
    const auto ms = std::max<long long>(d.count(), 0);
    const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    event_add(ev, &tv);
  }

  void report(const server_event& e) noexcept {
    try {
      if (sink_) sink_(e);
    } catch (...) {
      detail::report_exception("a redis_hub event sink");
    }
  }

  // ----- a Redis that does not answer ------------------------------------------------

  /// A command went out on the command connection.
  void sent() noexcept {
    if (outstanding_++ == 0) progress_ = std::chrono::steady_clock::now();
  }
  /// The command connection answered (`ac` may be one given up already: not counted).
  void answered(const redisAsyncContext* ac) noexcept {
    if (ac != cmd_ || outstanding_ == 0) return;
    --outstanding_;
    progress_ = std::chrono::steady_clock::now();
  }
  static void on_pong(redisAsyncContext* ac, void*, void* self) { static_cast<redis_hub*>(self)->answered(ac); }
  /// Every quarter of command_timeout while ready: a command unanswered for longer than
  /// command_timeout ends the connection; an idle one gets a PING at half of it.
  static void on_watchdog(evutil_socket_t, short, void* self) {
    auto* h = static_cast<redis_hub*>(self);
    if (h->state_ != state::ready || !h->cmd_) return;
    const auto quiet = std::chrono::steady_clock::now() - h->progress_;
    if (h->outstanding_ > 0 && quiet > h->options_.command_timeout)
      return h->fail("no answer within the command timeout");
    if (h->outstanding_ == 0 && quiet > h->options_.command_timeout / 2) {
      if (redisAsyncCommand(h->cmd_, &on_pong, h, "PING") != REDIS_OK) return h->fail("PING");
      h->sent();
    }
  }

  // ----- publishing -------------------------------------------------------------------

  // KEYS[1] the stream; ARGV: maxlen, channel, event, data, the pub/sub channel. The id is
  // Redis's clock in microseconds, or one more than the newest entry's (see the file
  // comment); both fit a Lua number exactly (below 2^53).
  static constexpr std::string_view script =
      "local t = redis.call('TIME')\n"
      "local id = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
      "local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)\n"
      "if top[1] then\n"
      "  local last = tonumber(string.match(top[1][1], '^(%d+)'))\n"
      "  if last >= id then id = last + 1 end\n"
      "end\n"
      "local s = string.format('%.0f', id)\n"
      "redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], s .. '-0', 'c', ARGV[2], 'e', ARGV[3], 'd', ARGV[4])\n"
      "redis.call('PUBLISH', ARGV[5], s .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4])\n"
      "return s\n";

  [[nodiscard]] std::error_code send(std::string_view channel, std::string_view data, std::string_view event, completion done) {
    if (!broker_.valid_name(channel) || !sse::detail::single_line(event)) return make_error_code(errc::invalid_argument);
    if (state_ != state::ready || !cmd_ || in_flight_ >= options_.max_in_flight) {
      ++stats_.not_relayed;
      return make_error_code(errc::redis_unavailable);
    }
    auto node = std::make_unique<pending_publish>(pending_publish{this, std::move(done)});
    const auto text = [](std::string_view v) { return v.empty() ? "" : v.data(); };  // never a null pointer
    const char* argv[] = {"EVAL", script.data(), "1", stream_key_.c_str(), length_.c_str(),
                          channel.data(), text(event), text(data), channel_.c_str()};
    const std::size_t lens[] = {4, script.size(), 1, stream_key_.size(), length_.size(),
                                channel.size(), event.size(), data.size(), channel_.size()};
    if (redisAsyncCommandArgv(cmd_, &on_published, node.get(), 9, argv, lens) != REDIS_OK) {
      ++stats_.not_relayed;
      return make_error_code(errc::redis_unavailable);
    }
    sent();
    node.release();
    ++in_flight_;
    return {};
  }

  static void on_published(redisAsyncContext* ac, void* r, void* privdata) {
    std::unique_ptr<pending_publish> node(static_cast<pending_publish*>(privdata));
    redis_hub* h = node->hub;
    const auto* reply = static_cast<const redisReply*>(r);
    h->answered(ac);
    --h->in_flight_;
    // No answer while still ready: the connection is ending, and fail() comes next; the
    // publish belongs to the episode it starts.
    if (!reply && h->state_ == state::ready && !h->closing_) ++h->unanswered_;
    std::uint64_t id = 0;
    if (reply && reply->type == REDIS_REPLY_STRING) id = parse_message_id(std::string_view(reply->str, reply->len)).value_or(0);
    if (id != 0) ++h->stats_.published;
    else ++h->stats_.not_relayed;
    if (!node->done) return;
    try {
      if (id != 0) node->done(id);
      else node->done(make_error_code(h->closing_ ? errc::cancelled : errc::redis_failed));
    } catch (...) {
      detail::report_exception("a redis_hub publish completion");
    }
  }

  // ----- receiving --------------------------------------------------------------------

  /// "<id>\n<channel>\n<event>\n<data>", as the script publishes it.
  void relay_payload(std::string_view p, bool from_stream) {
    const auto a = p.find('\n');
    const auto b = a == std::string_view::npos ? a : p.find('\n', a + 1);
    const auto c = b == std::string_view::npos ? b : p.find('\n', b + 1);
    if (c == std::string_view::npos) {
      ++stats_.rejected;
      return;
    }
    relay(p.substr(0, a), p.substr(a + 1, b - a - 1), p.substr(b + 1, c - b - 1), p.substr(c + 1), from_stream);
  }

  /// One XRANGE entry: ["<id>-0", ["c", channel, "e", event, "d", data]].
  void relay_entry(const redisReply& entry) {
    if (entry.type != REDIS_REPLY_ARRAY || entry.elements != 2 || entry.element[0]->type != REDIS_REPLY_STRING ||
        entry.element[1]->type != REDIS_REPLY_ARRAY) {
      ++stats_.rejected;
      return;
    }
    std::string_view id(entry.element[0]->str, entry.element[0]->len);
    id = id.substr(0, id.find('-'));
    std::string_view fields[3];  // c, e, d
    bool seen[3] = {false, false, false};
    const redisReply& kv = *entry.element[1];
    for (std::size_t i = 0; i + 1 < kv.elements; i += 2) {
      if (kv.element[i]->type != REDIS_REPLY_STRING || kv.element[i + 1]->type != REDIS_REPLY_STRING) continue;
      const std::string_view k(kv.element[i]->str, kv.element[i]->len);
      const int slot = k == "c" ? 0 : k == "e" ? 1 : k == "d" ? 2 : -1;
      if (slot < 0) continue;
      fields[slot] = std::string_view(kv.element[i + 1]->str, kv.element[i + 1]->len);
      seen[slot] = true;
    }
    if (!seen[0] || !seen[2]) {
      ++stats_.rejected;
      return;
    }
    relay(id, fields[0], fields[1], fields[2], true);
  }

  void relay(std::string_view id_text, std::string_view channel, std::string_view event, std::string_view data,
             bool from_stream) {
    const auto id = parse_message_id(id_text);
    if (!id || *id == 0) {
      ++stats_.rejected;
      return;
    }
    const auto r = broker_.relay(*id, channel, data, event);
    if (!r) ++stats_.rejected;
    else if (*r == 0) ++stats_.duplicates;
    else {
      ++stats_.received;
      if (from_stream) ++stats_.caught_up;
    }
  }

  broker& broker_;
  event_loop& loop_;
  redis_options options_;
  std::string stream_key_;
  std::string channel_;
  std::string where_;
  std::string length_;
  std::string what_;  // why a connection could not even be created
  detail::unique_event retry_timer_;
  detail::unique_event deadline_;
  detail::unique_event watchdog_;
  detail::unique_event reaper_;
  redisAsyncContext* cmd_ = nullptr;  // publishes and catch-ups
  redisAsyncContext* sub_ = nullptr;  // the subscription (a subscribed connection runs nothing else)
  std::vector<redisAsyncContext*> doomed_;
  std::vector<std::string> early_;  // live messages that arrived during a catch-up
  state state_ = state::down;
  bool catching_up_ = false;
  bool closing_ = false;
  bool lost_ = false;
  std::chrono::steady_clock::time_point lost_at_{};
  std::chrono::milliseconds delay_{};
  std::uint32_t retries_ = 0;
  std::uint64_t not_relayed_at_loss_ = 0;
  std::uint64_t unanswered_ = 0;  // publishes whose connection ended before fail() ran
  std::size_t in_flight_ = 0;
  std::size_t outstanding_ = 0;  // commands on cmd_ not answered yet (publishes, XRANGE, PING)
  std::chrono::steady_clock::time_point progress_{};  // when cmd_ last answered, or became busy
  redis_stats stats_;
  sink_type sink_{&log_server_event};
};

TETHER_END_NAMESPACE
