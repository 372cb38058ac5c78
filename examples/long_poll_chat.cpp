// Example: a chat with rooms, served by several loops. GET /poll waits (up to 25 s) for
// the next message of a room; a client that comes back with the id of the last message
// it saw gets what was said in between, from the room's history, at once. The same
// rooms stream as Server-Sent Events on /events. POST /send publishes; any loop's
// clients get it. A client that closes its tab while waiting leaves the room at once.
//
// Usage: long_poll_chat [--lean] [--threads N] [PORT]   (default: 2 loops, port 8082)
//        long_poll_chat [--lean] --once                 (a self-test on an ephemeral port)
//   --lean  the same chat on the lean engine (tether::lean_server, docs/engine.md)
//   $ curl 'http://127.0.0.1:8082/poll?room=lobby'                 # waits
//   $ curl -d 'hello' 'http://127.0.0.1:8082/send?room=lobby'      # "message 1"; the first curl prints hello
//   $ curl -d 'again' 'http://127.0.0.1:8082/send?room=lobby'      # nobody waits: kept in history
//   $ curl -i 'http://127.0.0.1:8082/poll?room=lobby&last=1'       # at once: again, Event-Id: 2
//   $ curl -N 'http://127.0.0.1:8082/events?room=lobby'            # the room as an event stream
// SIGTERM or Ctrl-C drains every loop (docs/drain.md): waiting polls get 503 with
// Retry-After, streams end, and it exits with status 0.
#include <tether/tether.hpp>

#include "support/self_client.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

namespace {

/// The value of `name` in a query string ("room=lobby&last=3"), not decoded.
std::string_view query_param(std::optional<std::string_view> query, std::string_view name) {
  for (std::string_view q = query.value_or(""); !q.empty();) {
    const auto amp = q.find('&');
    const std::string_view pair = q.substr(0, amp);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name && pair[name.size()] == '=')
      return pair.substr(name.size() + 1);
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
}

// One program for both engines: the request type is a template parameter.
template <class Request>
std::string_view room_of(const Request& req) {
  const auto room = query_param(req.query(), "room");
  return room.empty() ? "lobby" : room;
}

/// The last id a client saw: ?last=N, or the Last-Event-ID header (EventSource sends it).
template <class Request>
std::optional<std::uint64_t> last_seen(const Request& req) {
  if (const auto last = query_param(req.query(), "last"); !last.empty()) return tether::parse_message_id(last);
  if (const auto header = tether::sse::last_event_id(req)) return tether::parse_message_id(*header);
  return std::nullopt;
}

/// What each loop runs: its own endpoint of the shared broker (Server::broker_endpoint),
/// and the three routes.
template <class Server>
auto chat_routes(tether::broker& rooms) {
  return [&rooms](Server& srv, tether::event_loop& loop) {
    using endpoint_t = typename Server::broker_endpoint;
    auto endpoint = std::make_unique<endpoint_t>(rooms, loop, tether::endpoint_options{.heartbeat = 15s});
    auto* e = endpoint.get();
    (void)srv.route("/poll", tether::method::get, [e](auto& req) { (void)e->poll(req, room_of(req), last_seen(req)); });
    (void)srv.route("/events", tether::method::get, [e](auto& req) {
      (void)e->subscribe(req, room_of(req), last_seen(req));
    });
    (void)srv.route("/send", tether::method::post, [&rooms](auto& req) {
      const auto id = rooms.publish(room_of(req), req.body().to_string());
      if (!id) return (void)req.reply(400, id.error().message() + "\n");
      (void)req.reply(200, "message " + std::to_string(*id) + "\n");
    });
    return endpoint;  // kept while the loop runs, destroyed on its thread
  };
}

template <class Server>
int self_test() {
  tether::broker rooms{{.history = 32}};
  tether::basic_server_group<Server> group{{.threads = 2}};
  auto port = group.start("127.0.0.1", 0, chat_routes<Server>(rooms));
  if (!port) return 1;
  tether::event_loop here;  // only to pump the self-test's clients
  bool ok = true;
  {
    example::self_client waiter(*port, "GET /poll?room=lobby HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tether::timer wait_for_waiter{here, [&] {
      if (rooms.subscribers("lobby") == 1) here.stop();
    }};
    wait_for_waiter.start_periodic(1ms);
    here.run_for(5s);
    wait_for_waiter.stop();
    example::self_client sender(*port, "POST /send?room=lobby HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
    ok = waiter.wait_for(here, "\r\n\r\nhello") && sender.wait_for(here, "message 1");
  }
  {
    example::self_client s1(*port, "POST /send?room=lobby HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nwhile away");
    ok = ok && s1.wait_for(here, "message 2");
    example::self_client back(*port, "GET /poll?room=lobby&last=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    ok = ok && back.wait_for(here, "\r\n\r\nwhile away") && back.data().find("Event-Id: 2\r\n") != std::string::npos;
  }
  std::printf("%s\n", ok ? "long_poll_chat: the waiter got the message, and the returning client what it missed"
                         : "long_poll_chat: a message did not arrive");
  return ok ? 0 : 1;
}

template <class Server>
int serve(unsigned threads, std::uint16_t port) {
  tether::broker rooms{{.history = 100, .max_subscribers = 10000}};
  tether::basic_server_group<Server> group{{.threads = threads, .signal_drain = 10s}};
  auto bound = group.start("0.0.0.0", port, chat_routes<Server>(rooms));
  if (!bound) {
    std::fprintf(stderr, "long_poll_chat: %s\n", bound.error().message().c_str());
    return 1;
  }
  std::printf("long_poll_chat: %u loops; curl 'http://127.0.0.1:%u/poll?room=lobby'\n", group.size(), unsigned{*bound});
  std::fflush(stdout);
  group.join();  // until SIGTERM or SIGINT drained every loop
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool lean = example::take_flag(argc, argv, "--lean");  // the rest as without it
  if (argc > 1 && std::string_view(argv[1]) == "--once")
    return lean ? self_test<tether::lean_server>() : self_test<tether::server>();
  unsigned threads = 2;
  int arg = 1;
  if (argc > 2 && std::string_view(argv[1]) == "--threads") {
    threads = static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10));
    arg = 3;
  }
  const std::uint16_t port = example::port_arg(argc, argv, arg, "8082");
  if (port == 0) return 1;
  return lean ? serve<tether::lean_server>(threads, port) : serve<tether::server>(threads, port);
}
