// Example: a long-poll chat. GET /poll waits (up to 25 s) for the next message;
// POST /send with a body delivers it to everyone waiting. A client that closes its tab
// while waiting is noticed at once and leaves the room; nobody answers it.
//
// Usage: long_poll_chat [PORT]        (default 8082)
//        long_poll_chat --once        (one waiter, one message, then exit)
//   $ curl http://127.0.0.1:8082/poll &                      # waits
//   $ curl -d 'hello' http://127.0.0.1:8082/send              # the first curl prints hello
#include <tether/tether.hpp>

#include "support/self_client.hpp"

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const bool once = argc > 1 && std::string_view(argv[1]) == "--once";
  const std::uint16_t port = once ? 0 : example::port_arg(argc, argv, 1, "8082");
  if (!once && port == 0) return 1;

  tether::event_loop loop;
  tether::server srv{loop};
  tether::long_poll room{loop, 25s};  // then 204 No Content: the client polls again

  srv.route("/poll", [&](tether::request& req) {
    if (req.method() != tether::method::get) return (void)req.send_error(405);
    if (auto ec = room.wait(req)) req.send_error(503);
  });
  srv.route("/send", [&](tether::request& req) {
    if (req.method() != tether::method::post) return (void)req.send_error(405);
    const std::string message = req.body().to_string();
    const std::size_t delivered = room.notify_all(message);
    req.reply(200, "delivered to " + std::to_string(delivered) + "\n");
  });

  auto bound = srv.bind(once ? "127.0.0.1" : "0.0.0.0", port);
  if (!bound) {
    std::fprintf(stderr, "long_poll_chat: %s\n", bound.error().message().c_str());
    return 1;
  }
  if (once) {
    example::self_client waiter(*bound, "GET /poll HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::optional<example::self_client> sender;  // posts once the waiter is in the room
    tether::timer send_when_waiting{loop, [&] {
      if (room.waiting() == 1 && !sender)
        sender.emplace(*bound, "POST /send HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
    }};
    send_when_waiting.start_periodic(1ms);
    const bool got = waiter.wait_for(loop, "\r\n\r\nhello");
    std::printf("%s\n", got ? "long_poll_chat: the waiter got the message" : "long_poll_chat: nothing arrived");
    return got ? 0 : 1;
  }
  std::printf("long_poll_chat: curl http://127.0.0.1:%u/poll\n", unsigned{*bound});
  std::fflush(stdout);
  loop.run();
}
