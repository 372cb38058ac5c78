// bench/hangup_latency.cpp - how promptly tether tells a server that its client left.
//
// For each phase a request can be in (held without a reply, streaming, idle keep-alive
// after a reply) and each way of leaving (RST, FIN), a loopback client connects, brings
// the request into that phase, leaves, and the time from its close() to the close
// callback is recorded. Prints percentiles, and fails unless every hang-up was noticed
// exactly once. The client lives in the same process and loop, so the figure is the
// notification path itself (kernel + libevent + tether), not scheduling between
// processes.
//
// Usage: hangup_latency [TRIALS]     (default 200 per phase and way)
#include <tether/tether.hpp>

#include "../tests/support/loopback.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

using clk = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const int trials = argc > 1 ? std::atoi(argv[1]) : 200;
  if (trials <= 0 || trials > 100000) {
    std::fputs("usage: hangup_latency [TRIALS]\n", stderr);
    return 2;
  }
  tether::event_loop loop;
  tether::server srv{loop};
  std::vector<tether::request_handle> kept;
  clk::time_point closed_at;
  int handled = 0, closes = 0;
  auto watch = [&](tether::request& req) {
    ++handled;
    (void)req.connection().on_close([&](const tether::close_event&) noexcept {
      closed_at = clk::now();
      ++closes;
    });
  };
  (void)srv.route("/held", [&](tether::request& req) {
    watch(req);
    kept.push_back(req.hold());
  });
  (void)srv.route("/stream", [&](tether::request& req) {
    watch(req);
    (void)req.start(200);
    (void)req.send_chunk("x");
    kept.push_back(req.hold());
  });
  (void)srv.route("/idle", [&](tether::request& req) {
    watch(req);
    (void)req.reply(200, "done");
  });
  const auto port = srv.bind("127.0.0.1", 0);
  if (!port) return 1;

  bool ok = true;
  std::printf("| phase | client leaves by | trials | noticed | p50 µs | p99 µs | max µs |\n|---|---|---|---|---|---|---|\n");
  for (const char* phase : {"held", "stream", "idle"}) {
    for (const bool rst : {true, false}) {
      std::vector<double> us;
      int noticed = 0;
      for (int i = 0; i < trials; ++i) {
        tt::client c(*port);
        c.send(std::string("GET /") + phase + " HTTP/1.1\r\nHost: b\r\n\r\n");
        const int h = handled, before = closes;
        if (!tt::run_until(loop, [&] { return handled == h + 1; })) break;
        if (std::string_view(phase) != "held" && !c.wait_for(loop, std::string_view(phase) == "idle" ? "done" : "\r\nx\r\n")) break;
        const auto t0 = clk::now();
        if (rst) c.reset();
        else c.close();
        if (!tt::run_until(loop, [&] { return closes == before + 1; })) continue;
        tt::run_for(loop, std::chrono::milliseconds(1));  // a second callback would show here
        if (closes != before + 1) {
          std::fprintf(stderr, "hangup_latency: %s/%s: %d close callbacks\n", phase, rst ? "RST" : "FIN", closes - before);
          ok = false;
        }
        ++noticed;
        us.push_back(std::chrono::duration<double, std::micro>(closed_at - t0).count());
        kept.clear();
      }
      std::sort(us.begin(), us.end());
      if (noticed != trials || us.empty()) ok = false;
      const auto pct = [&](double p) { return us.empty() ? 0.0 : us[static_cast<std::size_t>(p * static_cast<double>(us.size() - 1))]; };
      std::printf("| %s | %s | %d | %d | %.0f | %.0f | %.0f |\n", phase, rst ? "RST" : "FIN", trials, noticed, pct(0.5),
                  pct(0.99), us.empty() ? 0.0 : us.back());
    }
  }
  return ok ? 0 : 1;
}
