// Example: Server-Sent Events. Every client of /clock gets the time once a second, as
// an SSE event; a reconnecting browser resumes from its Last-Event-ID. Clients that go
// away leave the hub the moment the server notices, and the hub shares one encoded copy
// of each event between all of them.
//
// Usage: sse_clock [PORT]             (default 8080)
//        sse_clock --once             (serve one client on an ephemeral port, then exit)
//   $ curl -N http://127.0.0.1:8080/clock
//   id: 1
//   event: tick
//   data: 2026-11-25T10:00:00Z
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
using server = tether::basic_server<tether::eager_close<>, tether::reference_buffer>;
using sse_stream = tether::basic_sse_stream<server::config>;

int main(int argc, char** argv) {
  const bool once = argc > 1 && std::string_view(argv[1]) == "--once";
  const std::uint16_t port = once ? 0 : example::port_arg(argc, argv, 1, "8080");
  if (!once && port == 0) return 1;

  tether::event_loop loop;
  server srv{loop};
  tether::hub<sse_stream> clients;
  unsigned long next_id = 1;

  srv.route("/clock", [&](server::request& req) {
    if (auto last = tether::sse::last_event_id(req)) std::printf("client resumes after event %.*s\n", int(last->size()), last->data());
    auto stream = sse_stream::start(req);
    if (stream) (void)clients.subscribe(std::move(*stream));
  });

  tether::timer tick{loop, [&] {
    char now[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    const std::string id = std::to_string(next_id++);
    if (auto event = tether::sse::encode({.id = id, .event = "tick", .data = now})) clients.publish(*event);
  }};
  tick.start_periodic(once ? 10ms : 1s);

  auto bound = srv.bind(once ? "127.0.0.1" : "0.0.0.0", port);
  if (!bound) {
    std::fprintf(stderr, "sse_clock: %s\n", bound.error().message().c_str());
    return 1;
  }
  if (once) {
    example::self_client c(*bound, "GET /clock HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const bool got = c.wait_for(loop, "event: tick\ndata: ");
    std::printf("%s\n", got ? "sse_clock: received an event" : "sse_clock: no event");
    return got ? 0 : 1;
  }
  std::printf("sse_clock: curl -N http://127.0.0.1:%u/clock\n", unsigned{*bound});
  std::fflush(stdout);
  loop.run();
}
