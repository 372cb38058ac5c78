// Example: a chat served by as many processes as you like, on as many machines, through
// Redis. Every instance relays every message to all of its SSE clients, in the same order
// and with the same ids, whichever instance it was posted to; a browser that reconnects
// to ANY instance with Last-Event-ID first gets what it missed. If Redis goes away the
// instances keep their clients' streams, answer posts 503, say so once on stderr, and
// catch up when Redis is back (docs/redis.md).
//
// Usage: redis_chat [--lean] PORT [REDIS_HOST:REDIS_PORT]      (default Redis: 127.0.0.1:6379)
//   --lean  the same instance on the lean engine (tether::lean_server, docs/engine.md)
//   $ redis_chat 8081 & redis_chat 8082 &
//   $ curl -N http://127.0.0.1:8082/events
//   $ curl -d 'hello' http://127.0.0.1:8081/publish      # 202, body: the message's id
//   id: 1764590000123456                                  (on the 8082 stream)
//   data: hello
//   $ curl http://127.0.0.1:8081/stats                    # counters, one per line
//
// Needs hiredis (libhiredis-dev) and a redis-server.
#include <tether/redis_hub.hpp>
#include <tether/tether.hpp>

#include "support/self_client.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

namespace {

// One program for both engines: the handlers take the server's own request type.
template <class Server>
int serve(std::uint16_t port, const tether::redis_options& redis) {
  tether::event_loop loop;
  Server srv{loop};
  // Ids come from Redis; each instance keeps the last 1,000 messages for clients that
  // come back (and Redis the last 10,000, for instances that come back).
  tether::broker chat{{.history = 1000, .external_ids = true}};
  typename Server::broker_endpoint clients{chat, loop, {.heartbeat = 15s}};
  tether::redis_hub hub{chat, loop, redis};
  hub.on_event([&srv](const tether::server_event& e) { srv.report(e); });  // "lost Redis", once

  (void)srv.route("/events", [&](typename Server::request& req) { (void)clients.subscribe(req, "chat"); });

  (void)srv.route("/publish", tether::method::post, [&](typename Server::request& req) {
    // Answered once Redis has numbered the message: 202 with its id, or 503.
    auto h = req.hold();
    auto ec = hub.publish("chat", req.body().to_string(), {}, [h](tether::result<std::uint64_t> id) mutable {
      if (!id) {
        (void)h.add_header("Retry-After", "1");
        (void)h.reply(503, std::string_view("Redis failed\n"));
        return;
      }
      char text[24];
      const auto r = std::to_chars(text, text + sizeof text - 1, *id);
      *r.ptr = '\n';
      (void)h.reply(202, std::string_view(text, static_cast<std::size_t>(r.ptr + 1 - text)));
    });
    if (ec) {  // nothing was sent (Redis is away); the callback was dropped unused
      (void)h.add_header("Retry-After", "1");
      (void)h.reply(ec == tether::errc::invalid_argument ? 400 : 503, std::string_view(ec.message() + "\n"));
    }
  });

  (void)srv.route("/stats", [&](typename Server::request& req) {
    const auto& s = hub.stats();
    std::string out;
    const auto line = [&out](const char* name, std::uint64_t v) {
      out.append(name).append(" ").append(std::to_string(v)).append("\n");
    };
    line("ready", hub.ready() ? 1 : 0);
    line("published", s.published);
    line("not_relayed", s.not_relayed);
    line("received", s.received);
    line("caught_up", s.caught_up);
    line("duplicates", s.duplicates);
    line("episodes", s.episodes);
    line("connects", s.connects);
    line("streams", clients.streams());
    line("last_id", chat.last_id());
    (void)req.reply(200, out);
  });

  auto bound = srv.bind("0.0.0.0", port);
  if (!bound) {
    std::fprintf(stderr, "redis_chat: %s\n", bound.error().message().c_str());
    return 1;
  }
  // SIGTERM or SIGINT: end the SSE streams cleanly, then exit 0 (docs/drain.md).
  tether::drain_on_signals stop{loop, srv, std::chrono::seconds(10)};
  std::printf("redis_chat: listening on port %u, Redis %s\n", unsigned{*bound}, hub.address().c_str());
  std::fflush(stdout);
  loop.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool lean = example::take_flag(argc, argv, "--lean");  // the rest as without it
  if (argc < 2) {
    std::fprintf(stderr, "usage: redis_chat [--lean] PORT [REDIS_HOST:REDIS_PORT]\n");
    return 2;
  }
  const std::uint16_t port = example::port_arg(argc, argv, 1, "8080");
  if (port == 0) return 2;
  tether::redis_options redis;
  redis.prefix = "redis_chat";
  if (argc > 2) {
    const std::string_view where = argv[2];
    const auto colon = where.rfind(':');
    const auto redis_port = tether::parse_port(colon == std::string_view::npos ? "" : where.substr(colon + 1));
    if (colon == 0 || !redis_port) {
      std::fprintf(stderr, "redis_chat: expected REDIS_HOST:REDIS_PORT, got %s\n", argv[2]);
      return 2;
    }
    redis.host = std::string(where.substr(0, colon));
    redis.port = *redis_port;
  }
  return lean ? serve<tether::lean_server>(port, redis) : serve<tether::server>(port, redis);
}
