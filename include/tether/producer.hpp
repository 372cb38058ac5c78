// tether/producer.hpp - a periodic producer bound to one stream.
//
// A producer calls `f(stream)` every `interval` while the stream lives. Its type is a
// template parameter and it is stored by value: a captureless lambda costs nothing.
//  * When `f` returns errc::would_block (a bounded policy refused the write), the
//    producer pauses and resumes when the output is writable again.
//  * When the stream ends (client gone, server gone, reply completed), the producer stops
//    at once, before the connection's close callback runs: it never writes into a dead
//    connection and holds nothing afterwards.
//
//     tether::producer clock{loop, stream, 1s, [](auto& s) { return s.send({.data = now()}); }};
/// @file
/// tether::producer: calls a function on a stream at a fixed interval, pauses when the
/// output is full and stops when the stream ends.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/connection_core.hpp>
#include <tether/detail/owner.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/reply_hook.hpp>

#include <event2/event.h>

#include <concepts>
#include <new>
#include <system_error>
#include <type_traits>

TETHER_BEGIN_NAMESPACE

/// Calls `f(stream)` every `interval` while `stream` lives: a periodic producer bound to one
/// stream (a clock, a metrics feed).
///
/// If `f` returns errc::would_block (a bounded buffer policy refused the write), the
/// producer pauses and resumes when the output drains; if it returns errc::peer_gone or
/// errc::reply_finished, or the stream ends for any reason, it stops at once, before the
/// connection's close callback runs, and never ticks again. `f` is stored by value (a
/// captureless lambda costs nothing); an exception escaping it is caught and reported.
/// The stream must stay where it is (not moved) while the producer lives; destroy the
/// producer before its loop. Not copyable, not movable.
///
///     tether::producer clock{loop, stream, 1s, [](tether::stream& s) { return s.write("tick\n"); }};
template <class Stream, class F>
  requires std::invocable<F&, Stream&>
class producer {
 public:
  /// Starts calling `f(stream)` every `interval` on `loop` (the first call after one
  /// interval). A stream that has already ended is never called. Throws std::bad_alloc if
  /// libevent cannot allocate the timer.
  template <class Rep, class Period>
  producer(event_loop& loop, Stream& stream, std::chrono::duration<Rep, Period> interval, F f)
      : stream_(&stream), f_(std::move(f)), timer_(event_new(loop.native(), -1, EV_PERSIST, &on_tick, this)) {
    if (!timer_) throw std::bad_alloc{};
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(interval).count();
    interval_ = timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    hook_.on_end([this](close_reason, bool) { stop(); });
    hook_.on_writable([this] {
      if (paused_) {
        paused_ = false;
        event_add(timer_.get(), &interval_);
      }
    });
    if (!stream.handle().attach(hook_)) {
      running_ = true;
      event_add(timer_.get(), &interval_);
    }
  }
  producer(const producer&) = delete;  // libevent and the stream's hook point at it
  producer& operator=(const producer&) = delete;

  /// Stops for good.
  void stop() noexcept {
    running_ = paused_ = false;
    event_del(timer_.get());
    hook_.detach();
  }
  /// True until the stream ends or stop() (also while paused).
  bool running() const noexcept { return running_; }
  /// True while waiting for a bounded output to drain.
  bool paused() const noexcept { return paused_; }
  /// Ticks run so far.
  std::uint64_t ticks() const noexcept { return ticks_; }

  /// The stored callable, to reach its state.
  F& callback() noexcept { return f_; }

 private:
  static void on_tick(evutil_socket_t, short, void* self) noexcept {
    auto* p = static_cast<producer*>(self);
    if (!p->running_) return;
    ++p->ticks_;
    try {
      if constexpr (std::is_convertible_v<std::invoke_result_t<F&, Stream&>, std::error_code>) {
        const std::error_code ec = p->f_(*p->stream_);
        if (ec == errc::would_block) {
          p->paused_ = true;
          event_del(p->timer_.get());
        } else if (ec == errc::peer_gone || ec == errc::reply_finished) {
          p->stop();
        }
      } else {
        p->f_(*p->stream_);
      }
    } catch (...) {
      detail::report_exception("a producer callback");
    }
  }

  Stream* stream_;
  [[no_unique_address]] F f_;
  detail::unique_event timer_;
  reply_hook hook_;
  timeval interval_{};
  std::uint64_t ticks_ = 0;
  bool running_ = false;
  bool paused_ = false;
};

template <class Stream, class Rep, class Period, class F>
producer(event_loop&, Stream&, std::chrono::duration<Rep, Period>, F) -> producer<Stream, F>;

TETHER_END_NAMESPACE
