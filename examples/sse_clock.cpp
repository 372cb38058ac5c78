// Example: Server-Sent Events. Every client of /clock gets the time once a second, as
// an SSE event with an id; a browser that reconnects sends the last id it saw
// (Last-Event-ID) and first gets the ticks it missed, from the clock channel's history
// (the last minute). Clients that go away leave the moment the server notices; each
// tick is encoded once and the same bytes go to every client.
//
// Usage: sse_clock [PORT]             (default 8080)
//        sse_clock --once             (a self-test on an ephemeral port, then exit)
//   $ curl -N http://127.0.0.1:8080/clock
//   id: 1
//   event: tick
//   data: 2026-11-25T10:00:00Z
//   $ curl -N -H 'Last-Event-ID: 1' http://127.0.0.1:8080/clock     # ticks 2, 3... at once
#include <tether/tether.hpp>

#include "support/self_client.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

using namespace std::chrono_literals;
// Fan-out: an event is encoded once; every stream references those bytes (or, for events
// of at most 960 bytes such as these, gets a copy: cheaper than a reference in libevent).
// The server type is named once; every helper comes from it (server::broker_endpoint).
using server = tether::basic_server<tether::eager_close<>, tether::reference_buffer>;

int main(int argc, char** argv) {
  const bool once = argc > 1 && std::string_view(argv[1]) == "--once";
  const std::uint16_t port = once ? 0 : example::port_arg(argc, argv, 1, "8080");
  if (!once && port == 0) return 1;

  tether::event_loop loop;
  server srv{loop};
  tether::broker clock{{.history = 60}};         // a minute of ticks for clients that come back
  server::broker_endpoint clients{clock, loop};         // this loop's subscribers

  (void)srv.route("/clock", [&](server::request& req) {
    if (auto last = tether::sse::last_event_id(req)) std::printf("client resumes after event %.*s\n", int(last->size()), last->data());
    (void)clients.subscribe(req, "clock");       // replays what it missed, then streams
  });

  tether::timer tick{loop, [&] {
    char now[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    (void)clock.publish("clock", now, "tick");   // the broker numbers it: id 1, 2, 3...
  }};
  tick.start_periodic(once ? 10ms : 1s);

  auto bound = srv.bind(once ? "127.0.0.1" : "0.0.0.0", port);
  if (!bound) {
    std::fprintf(stderr, "sse_clock: %s\n", bound.error().message().c_str());
    return 1;
  }
  if (once) {
    example::self_client c(*bound, "GET /clock HTTP/1.1\r\nHost: localhost\r\n\r\n");
    bool got = c.wait_for(loop, "event: tick\ndata: ") && c.wait_for(loop, "id: 2\nevent: tick");
    // A client that saw tick 1 comes back: tick 2 comes from history before any new one.
    example::self_client back(*bound, "GET /clock HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: 1\r\n\r\n");
    got = got && back.wait_for(loop, "id: 2\nevent: tick");
    std::printf("%s\n", got ? "sse_clock: received events, and a returning client what it missed" : "sse_clock: no event");
    return got ? 0 : 1;
  }
  std::printf("sse_clock: curl -N http://127.0.0.1:%u/clock\n", unsigned{*bound});
  std::fflush(stdout);
  loop.run();
}
