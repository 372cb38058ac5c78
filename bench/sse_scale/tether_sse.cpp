// bench/sse_scale/tether_sse.cpp - the tether side of the SSE scale benchmark: the same
// server as c_sse.c, written with tether.
//
//   GET /events  an SSE stream, subscribed to one hub
//   GET /stats   one line of counters (format in proc_self.h, shared with c_sse.c;
//                ?trim: malloc_trim first)
//   SIGUSR1      prints the same line on stdout
//   SIGTERM/INT  stops the loop and exits (the server's destructor closes every stream)
//
// One timer publishes an event to the hub once a second: the event is encoded once into
// shared_bytes and, under reference_buffer, every subscriber's output references those
// bytes instead of holding a copy. Every stream's connection has a close callback that
// counts closes per reason; a second close of one connection would count as a duplicate.
//
// Usage: tether_sse PORT [--copy | --lean]  (--copy: copy_buffer instead of reference_buffer;
//                                      --lean: the lean engine, docs/engine.md;
//                                      environment: SSE_TICK_MS, the period in ms, default 1000)
#include <tether/tether.hpp>

#include "proc_self.h"

#include <event2/event.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

sse_counters counters{};
// closed[id]: the close callback of stream `id` ran (kept until exit, as c_sse.c does).
std::vector<std::uint8_t> closed;

void count_close(std::uint32_t id, tether::close_reason why) noexcept {
  ++counters.closes;
  if (closed[id]) {
    ++counters.dup;
    return;
  }
  closed[id] = 1;
  if (why == tether::close_reason::peer_closed) ++counters.peer_closed;
  else if (why == tether::close_reason::peer_reset) ++counters.peer_reset;
  else ++counters.other;
}

std::string stats_line() {
  char line[512];
  const int n = sse_format_stats(line, sizeof line, &counters);
  return std::string(line, n > 0 ? static_cast<std::size_t>(n) : 0);
}

template <class BufferPolicy>
int serve(std::uint16_t port, const char* policy_name) {
  using server = tether::basic_server<tether::eager_close<>, BufferPolicy>;

  tether::event_loop loop;
  server srv{loop};
  // The benchmark opens 10,000 streams plus its /stats requests: past the default
  // max_connections (docs/limits.md), which c_sse.c does not have either.
  srv.set_max_connections(tether::unlimited);
  typename server::template hub<> streams;  // of server::sse_stream

  (void)srv.route("/events", [&](typename server::request& req) {
    const auto id = static_cast<std::uint32_t>(closed.size());
    closed.push_back(0);
    (void)req.connection().on_close([id](const tether::close_event& e) noexcept { count_close(id, e.reason); });
    auto s = tether::sse_stream::start(req);  // the request's server decides the type
    if (!s) return;
    ++counters.started;
    (void)streams.subscribe(std::move(*s));
  });
  (void)srv.route("/stats", [&](typename server::request& req) {
    counters.open = streams.size();
    if (req.query() == std::string_view("trim")) sse_maybe_trim("?trim");
    (void)req.output_headers().add("Content-Type", "text/plain");
    (void)req.reply(200, stats_line());
  });

  tether::timer tick{loop, [&] {
    const std::string id = std::to_string(counters.published + 1);
    const std::string now = std::to_string(static_cast<long long>(std::time(nullptr)));
    ++counters.published;
    if (auto event = tether::sse::encode({.id = id, .event = "tick", .data = now}))
      counters.delivered += streams.publish(*event).delivered;
  }};
  const char* tick_env = std::getenv("SSE_TICK_MS");
  const long tick_ms = tick_env && std::atol(tick_env) > 0 ? std::atol(tick_env) : 1000;
  tick.start_periodic(std::chrono::milliseconds(tick_ms));

  // Signals through the loop (libevent's signal events), as c_sse.c does.
  struct signal_context {
    tether::event_loop* loop;
    typename server::template hub<>* streams;
    static void on_signal(evutil_socket_t sig, short, void* self) {
      auto* ctx = static_cast<signal_context*>(self);
      if (sig == SIGUSR1) {
        counters.open = ctx->streams->size();
        std::fputs(stats_line().c_str(), stdout);
        std::fflush(stdout);
        return;
      }
      ctx->loop->stop();
    }
  };
  signal_context ctx{&loop, &streams};
  tether::unique_event sigs[3] = {
      tether::unique_event{evsignal_new(loop.native(), SIGUSR1, &signal_context::on_signal, &ctx)},
      tether::unique_event{evsignal_new(loop.native(), SIGTERM, &signal_context::on_signal, &ctx)},
      tether::unique_event{evsignal_new(loop.native(), SIGINT, &signal_context::on_signal, &ctx)}};
  for (auto& s : sigs) event_add(s.get(), nullptr);

  auto bound = srv.bind("127.0.0.1", port);
  if (!bound) {
    std::fprintf(stderr, "tether_sse: cannot listen on 127.0.0.1:%u: %s\n", unsigned{port}, bound.error().message().c_str());
    return 1;
  }
  std::printf("tether_sse (%s): listening on 127.0.0.1:%u\n", policy_name, unsigned{*bound});
  std::fflush(stdout);
  loop.run();
  return 0;
}

// The same server on the lean engine (docs/engine.md). Hubs are not served there yet: the
// streams are a vector, and a publish writes the shared bytes to each one still alive
// (one writev per stream whose socket takes it) and drops those that ended.
int serve_lean(std::uint16_t port) {
  using server = tether::lean_server;
  tether::event_loop loop;
  server srv{loop};
  srv.set_max_connections(tether::unlimited);
  std::vector<server::sse_stream> streams;

  (void)srv.route("/events", [&](server::request& req) {
    const auto id = static_cast<std::uint32_t>(closed.size());
    closed.push_back(0);
    (void)req.connection().on_close([id](const tether::close_event& e) noexcept { count_close(id, e.reason); });
    auto s = server::sse_stream::start(req);
    if (!s) return;
    ++counters.started;
    streams.push_back(std::move(*s));
  });
  auto prune = [&] {
    for (std::size_t i = 0; i < streams.size();) {
      if (streams[i].alive()) {
        ++i;
        continue;
      }
      streams[i] = std::move(streams.back());
      streams.pop_back();
    }
  };
  (void)srv.route("/stats", [&](server::request& req) {
    prune();
    counters.open = streams.size();
    if (req.query() == std::string_view("trim")) sse_maybe_trim("?trim");
    (void)req.output_headers().add("Content-Type", "text/plain");
    (void)req.reply(200, stats_line());
  });

  tether::timer tick{loop, [&] {
    const std::string id = std::to_string(counters.published + 1);
    const std::string now = std::to_string(static_cast<long long>(std::time(nullptr)));
    ++counters.published;
    prune();
    if (auto event = tether::sse::encode({.id = id, .event = "tick", .data = now}))
      for (auto& s : streams)
        if (!s.send(*event)) ++counters.delivered;
  }};
  const char* tick_env = std::getenv("SSE_TICK_MS");
  const long tick_ms = tick_env && std::atol(tick_env) > 0 ? std::atol(tick_env) : 1000;
  tick.start_periodic(std::chrono::milliseconds(tick_ms));

  struct signal_context {
    tether::event_loop* loop;
    std::vector<server::sse_stream>* streams;
    static void on_signal(evutil_socket_t sig, short, void* self) {
      auto* ctx = static_cast<signal_context*>(self);
      if (sig == SIGUSR1) {
        counters.open = ctx->streams->size();
        std::fputs(stats_line().c_str(), stdout);
        std::fflush(stdout);
        return;
      }
      ctx->loop->stop();
    }
  };
  signal_context ctx{&loop, &streams};
  tether::unique_event sigs[3] = {
      tether::unique_event{evsignal_new(loop.native(), SIGUSR1, &signal_context::on_signal, &ctx)},
      tether::unique_event{evsignal_new(loop.native(), SIGTERM, &signal_context::on_signal, &ctx)},
      tether::unique_event{evsignal_new(loop.native(), SIGINT, &signal_context::on_signal, &ctx)}};
  for (auto& s : sigs) event_add(s.get(), nullptr);

  auto bound = srv.bind("127.0.0.1", port);
  if (!bound) {
    std::fprintf(stderr, "tether_sse: cannot listen on 127.0.0.1:%u: %s\n", unsigned{port}, bound.error().message().c_str());
    return 1;
  }
  std::printf("tether_sse (lean engine): listening on 127.0.0.1:%u\n", unsigned{*bound});
  std::fflush(stdout);
  loop.run();
  streams.clear();  // before the server: the streams' handles refer to its connections
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto port = tether::parse_port(argc > 1 ? argv[1] : "");
  const std::string_view option = argc > 2 ? argv[2] : "";
  const bool copy = option == "--copy", lean = option == "--lean";
  if (!port || argc > 3 || (argc == 3 && !copy && !lean)) {
    std::fprintf(stderr, "usage: tether_sse PORT [--copy | --lean]\n");
    return 2;
  }
  closed.reserve(1024);
  if (lean) return serve_lean(*port);
  return copy ? serve<tether::copy_buffer>(*port, "copy_buffer") : serve<tether::reference_buffer>(*port, "reference_buffer");
}
