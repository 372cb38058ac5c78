// Example: Server-Sent Events. Every client of /clock gets the time once a second, as
// an SSE event with an id; a browser that reconnects sends the last id it saw
// (Last-Event-ID) and first gets the ticks it missed, from the clock channel's history
// (the last minute). Clients that go away leave the moment the server notices; each
// tick is encoded once and the same bytes go to every client.
//
// Open http://127.0.0.1:8080/ in a browser: the page shows the ticks as they arrive
// (an EventSource on /clock). A page of another origin may read /clock only if this
// server allows its origin (CORS, docs/cors.md): with `--allow-origin ORIGIN`, given once
// per origin ('*' allows every origin). Two clocks show it in one browser:
//   $ sse_clock 8080 &                                        # serves the page
//   $ sse_clock 8090 --allow-origin http://127.0.0.1:8080 &   # serves the events
//   open http://127.0.0.1:8080/?source=http://127.0.0.1:8090  # the page reads 8090's clock
//
// Usage: sse_clock [PORT] [--allow-origin ORIGIN]... [--interval MS] [--lean]
//                                     (default port 8080, a tick every 1000 ms)
//        sse_clock --once [--lean]    (a self-test on an ephemeral port, then exit)
//   --lean   the same program on the lean engine, tether's own HTTP/1.1 core
//            (docs/engine.md): one server type changes, nothing else.
//   $ curl -N http://127.0.0.1:8080/clock
//   id: 1
//   event: tick
//   data: 2026-11-25T10:00:00Z
//   $ curl -N -H 'Last-Event-ID: 1' http://127.0.0.1:8080/clock     # ticks 2, 3... at once
// SIGTERM or Ctrl-C drains it (docs/drain.md): every client gets a last `event: bye`
// and the end of its stream, and the server exits with status 0. (On the lean engine,
// whose drain does not take drain_options yet, the streams are closed at the deadline.)
#include <tether/tether.hpp>

#include "support/self_client.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

using namespace std::chrono_literals;
// Fan-out: an event is encoded once; every stream references those bytes (or, for events
// of at most 960 bytes such as these, gets a copy: cheaper than a reference in libevent).
// The server type is named once; every helper comes from it (server::broker_endpoint).
using server = tether::basic_server<tether::eager_close<>, tether::reference_buffer>;
// The same policies on the lean engine (--lean).
using lean_server = tether::basic_server<tether::eager_close<>, tether::reference_buffer, tether::close_function<>,
                                         tether::lean_engine>;

// The page at /: an EventSource on this server's /clock, or on another clock's
// (?source=http://host:port), which answers only if it allows this page's origin.
constexpr std::string_view page = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tether: sse_clock</title>
<style>body { font-family: sans-serif; margin: 2em; } #ticks { font-family: monospace; }</style></head>
<body>
<h1>sse_clock</h1>
<p>Source: <code id="source"></code>, <span id="status">connecting</span>, <span id="count">0</span> events</p>
<ol id="ticks"></ol>
<script>
const source = (new URLSearchParams(location.search).get('source') || '') + '/clock';
const status = document.getElementById('status');
const count = document.getElementById('count');
const ticks = document.getElementById('ticks');
document.getElementById('source').textContent = source;
let events;
function connect() {
  events = new EventSource(source);
  events.onopen = () => { status.textContent = 'open'; };
  // A refused cross-origin request closes the source for good: no retry, no event.
  events.onerror = () => { status.textContent = events.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'; };
  events.addEventListener('tick', (e) => {
    count.textContent = Number(count.textContent) + 1;
    const item = document.createElement('li');
    item.textContent = 'event ' + e.lastEventId + ': ' + e.data;
    ticks.prepend(item);
    if (ticks.children.length > 10) ticks.lastChild.remove();
  });
}
connect();
// Leaving the page closes the stream, so the server hears at once that this client left
// (a browser may otherwise keep the page, stream open, in its back/forward cache).
addEventListener('pagehide', () => { events.close(); status.textContent = 'closed'; });
addEventListener('pageshow', (e) => { if (e.persisted) connect(); });
</script>
</body></html>
)";

namespace {

template <class Server>
int serve(bool once, std::uint16_t port, const std::optional<tether::cors>& cors, long interval_ms) {
  tether::event_loop loop;
  Server srv{loop};
  tether::broker clock{{.history = 60}};                  // a minute of ticks for clients that come back
  typename Server::broker_endpoint clients{clock, loop};  // this loop's subscribers

  (void)srv.route("/", tether::method::get, [](auto& req) {
    (void)req.output_headers().set("Content-Type", "text/html; charset=utf-8");
    (void)req.reply(200, page);
  });
  auto on_clock = [&](auto& req) {
    if (auto last = tether::sse::last_event_id(req)) std::printf("client resumes after event %.*s\n", int(last->size()), last->data());
    // The close callback runs once per connection, the moment the client leaves.
    (void)req.connection().on_close([](const tether::close_event& e) noexcept {
      std::printf("sse_clock: a client left (%s)\n", std::string(tether::to_string(e.reason)).c_str());
      std::fflush(stdout);
    });
    (void)clients.subscribe(req, "clock");       // replays what it missed, then streams
  };
  if (cors) (void)srv.route("/clock", cors->wrap(on_clock));
  else (void)srv.route("/clock", on_clock);

  tether::timer tick{loop, [&] {
    char now[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    (void)clock.publish("clock", now, "tick");   // the broker numbers it: id 1, 2, 3...
  }};
  tick.start_periodic(once ? 10ms : std::chrono::milliseconds(interval_ms));

  auto bound = srv.bind(once ? "127.0.0.1" : "0.0.0.0", once ? 0 : port);
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
  // A last event before each stream ends; `retry` tells EventSource when to come back.
  if constexpr (requires { srv.set_drain_options({}); }) {
    srv.set_drain_options({.last_words = [](typename Server::request_handle& h) {
      (void)h.send_chunk(tether::static_bytes("event: bye\nretry: 5000\ndata: server restarting\n\n"));
    }});
  }
  tether::drain_on_signals stop{loop, srv, 10s};
  std::printf("sse_clock: open http://127.0.0.1:%u/ or curl -N http://127.0.0.1:%u/clock\n", unsigned{*bound}, unsigned{*bound});
  std::fflush(stdout);
  loop.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool once = false;
  bool lean = false;
  std::optional<std::uint16_t> port;
  tether::cors_options allowed;
  long interval_ms = 1000;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--once") {
      once = true;
    } else if (arg == "--lean") {
      lean = true;
    } else if (arg == "--allow-origin" && i + 1 < argc) {
      if (std::string_view(argv[++i]) == "*") allowed.any_origin = true;
      else allowed.origins.emplace_back(argv[i]);
    } else if (arg == "--interval" && i + 1 < argc) {
      interval_ms = std::strtol(argv[++i], nullptr, 10);
      if (interval_ms <= 0) {
        std::fprintf(stderr, "sse_clock: --interval takes a number of milliseconds\n");
        return 1;
      }
    } else if (!port && !arg.starts_with("-")) {
      port = example::port_arg(argc, argv, i, "8080");
      if (*port == 0) return 1;
    } else {
      std::fprintf(stderr, "usage: sse_clock [PORT] [--allow-origin ORIGIN]... [--interval MS] [--lean] | --once [--lean]\n");
      return 1;
    }
  }
  // Other origins' pages may read /clock only if they are listed (docs/cors.md).
  std::optional<tether::cors> cors;
  if (allowed.any_origin || !allowed.origins.empty()) {
    auto made = tether::cors::make(allowed);
    if (!made) {
      std::fprintf(stderr, "sse_clock: %s\n", std::string(tether::cors::problem(allowed)).c_str());
      return 1;
    }
    cors = std::move(*made);
  }

  const std::uint16_t p = port.value_or(8080);
  return lean ? serve<lean_server>(once, p, cors, interval_ms) : serve<server>(once, p, cors, interval_ms);
}
