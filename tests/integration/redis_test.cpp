// The Redis hub (redis_hub.hpp, docs/redis.md) against a real redis-server that each test
// starts on a free loopback port and kills by PID: several instances (each a server, a
// broker, an endpoint and a hub, as separate processes would have them) relay every
// message to every SSE client in the same order with the same ids; a client resumes on
// another instance; an instance that starts late fills its history from the stream; and
// Redis killed and restarted mid-run costs no crash, no stream, and no message that got
// an id. The last test does the same with examples/redis_chat as separate processes, one
// on each engine (--lean), both ways round.
//
// The other cases run on both engines (issue 9), each body compiled once
// (TT_ENGINES_TEST_CASE): the hub and the broker are engine-neutral, and only an instance's
// server and broker endpoint are built per engine (instance_front).
#include <tether/redis_hub.hpp>
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"
#include "../support/redis.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// The body of a chunked reply, chunk framing removed (as far as it has arrived).
std::string redis_dechunk(const std::string& reply) {
  std::string body;
  auto p = reply.find("\r\n\r\n");
  if (p == std::string::npos) return body;
  for (p += 4; p < reply.size();) {
    const auto eol = reply.find("\r\n", p);
    if (eol == std::string::npos) break;
    const auto n = std::stoul(reply.substr(p, eol - p), nullptr, 16);
    if (n == 0 || eol + 2 + n > reply.size()) break;
    body += reply.substr(eol + 2, n);
    p = eol + 2 + n + 2;
  }
  return body;
}

struct frame {
  std::uint64_t id = 0;
  std::string data;
  bool operator==(const frame&) const = default;
};

/// The complete SSE frames ("id: N\ndata: X\n\n") of a stream, in order.
std::vector<frame> frames_of(const std::string& reply) {
  std::vector<frame> out;
  const std::string body = redis_dechunk(reply);
  std::size_t p = 0;
  for (;;) {
    const auto end = body.find("\n\n", p);
    if (end == std::string::npos) break;
    frame f;
    std::istringstream lines(body.substr(p, end - p));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("id: ", 0) == 0) f.id = std::stoull(line.substr(4));
      else if (line.rfind("data: ", 0) == 0) f.data = line.substr(6);
    }
    out.push_back(std::move(f));
    p = end + 2;
  }
  return out;
}

const std::string sse_get = "GET /events HTTP/1.1\r\nHost: t\r\n\r\n";
std::string sse_resume(std::uint64_t last) {
  return "GET /events HTTP/1.1\r\nHost: t\r\nLast-Event-ID: " + std::to_string(last) + "\r\n\r\n";
}

tether::redis_options options_for(const tt::redis_process& redis, std::string prefix) {
  tether::redis_options o;
  o.port = redis.port();
  o.prefix = std::move(prefix);
  o.retry_min = 20ms;
  o.retry_max = 200ms;
  o.connect_timeout = tt::scaled(1000ms);
  o.command_timeout = tt::scaled(1000ms);
  return o;
}

/// An instance's server and its broker endpoint, on either engine.
struct instance_front {
  std::uint16_t port = 0;
  instance_front() = default;
  instance_front(const instance_front&) = delete;
  instance_front& operator=(const instance_front&) = delete;
  virtual ~instance_front() = default;
  virtual std::size_t streams() const = 0;
  virtual const tether::endpoint_stats& stats() const = 0;
};
template <class Server>
struct instance_front_on final : instance_front {
  Server srv;
  typename Server::broker_endpoint endpoint;

  instance_front_on(tether::event_loop& loop, tether::broker& broker) : srv{loop}, endpoint{broker, loop} {
    (void)srv.route("/events", [this](typename Server::request& req) { REQUIRE_FALSE(endpoint.subscribe(req, "chat")); });
    (void)srv.route("/hello", [](typename Server::request& req) { (void)req.reply(200, "hello"); });
    port = *srv.bind("127.0.0.1", 0);
  }
  std::size_t streams() const override { return endpoint.streams(); }
  const tether::endpoint_stats& stats() const override { return endpoint.stats(); }
};

/// What one process of a service has: a server, a broker, its endpoint and its hub.
struct instance {
  tether::broker broker{{.history = 64, .external_ids = true}};
  std::unique_ptr<instance_front> front;  // the server and the endpoint: after the broker, before the hub
  tether::redis_hub hub;
  std::vector<tether::server_event> events;  // what the hub reported (strings not kept)
  std::uint16_t port = 0;

  instance(tether::event_loop& loop, const tether::redis_options& o, tt::engine_kind engine)
      : front(tt::with_engine(engine, [&]<class Engine>(std::type_identity<Engine>) -> std::unique_ptr<instance_front> {
          return std::make_unique<instance_front_on<tt::server_on<Engine>>>(loop, broker);
        })),
        hub{broker, loop, o} {
    hub.on_event([this](const tether::server_event& e) {
      events.push_back(e);
      events.back().what = {};
    });
    port = front->port;
  }
  std::size_t streams() const { return front->streams(); }
  const tether::endpoint_stats& endpoint_stats() const { return front->stats(); }
  std::size_t count(tether::server_event_kind k) const {
    return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [k](const auto& e) { return e.kind == k; }));
  }
};

/// Publishes `data` through `i`'s hub; the id lands in `ids` (0 on failure).
void publish(instance& i, const std::string& data, std::vector<std::uint64_t>& ids) {
  const std::size_t slot = ids.size();
  ids.push_back(0);
  REQUIRE_FALSE(i.hub.publish("chat", data, {}, [&ids, slot](tether::result<std::uint64_t> id) {
    REQUIRE(id);
    ids[slot] = *id;
  }));
}
bool all_acked(const std::vector<std::uint64_t>& ids) {
  return std::none_of(ids.begin(), ids.end(), [](std::uint64_t id) { return id == 0; });
}

}  // namespace

TT_ENGINES_TEST_CASE("redis hub: three instances relay every message to every SSE client, in order, with the same ids",
                     "[redis]") {
  if (!tt::redis_process::binary()) {
    WARN("redis-server is not installed; skipped");
    return;
  }
  tt::redis_process redis;
  tether::event_loop loop;
  std::vector<std::unique_ptr<instance>> inst;
  for (int i = 0; i < 3; ++i) inst.push_back(std::make_unique<instance>(loop, options_for(redis, "fanout"), engine));
  REQUIRE(tt::run_until(loop, [&] { return std::all_of(inst.begin(), inst.end(), [](auto& i) { return i->hub.ready(); }); }));

  std::vector<std::unique_ptr<tt::client>> clients;
  for (auto& i : inst)
    for (int k = 0; k < 2; ++k) {
      clients.push_back(std::make_unique<tt::client>(i->port));
      clients.back()->send(sse_get);
    }
  REQUIRE(tt::run_until(loop, [&] { return std::all_of(inst.begin(), inst.end(), [](auto& i) { return i->streams() == 2; }); }));

  constexpr int n = 30;
  std::vector<std::uint64_t> ids;
  for (int m = 0; m < n; ++m) publish(*inst[static_cast<std::size_t>(m % 3)], "m" + std::to_string(m), ids);
  REQUIRE(tt::run_until(loop, [&] { return all_acked(ids); }));
  REQUIRE(tt::run_until(loop, [&] {
    return std::all_of(clients.begin(), clients.end(), [](auto& c) {
      c->pump();
      return frames_of(c->data()).size() >= n;
    });
  }));

  const auto reference = frames_of(clients.front()->data());
  REQUIRE(reference.size() == n);
  for (auto& c : clients) CHECK(frames_of(c->data()) == reference);  // same ids, same order, everywhere
  for (std::size_t k = 1; k < reference.size(); ++k) CHECK(reference[k - 1].id < reference[k].id);
  // Each publisher's messages in the order it published them, each with the id Redis acknowledged.
  for (int publisher = 0; publisher < 3; ++publisher) {
    std::vector<int> order;
    for (const auto& f : reference) {
      const int m = std::stoi(f.data.substr(1));
      if (m % 3 == publisher) order.push_back(m);
      CHECK(f.id == ids[static_cast<std::size_t>(m)]);
    }
    CHECK(std::is_sorted(order.begin(), order.end()));
    CHECK(order.size() == n / 3);
  }
  for (auto& i : inst) {
    CHECK(i->hub.stats().received == n);
    CHECK(i->hub.stats().not_relayed == 0);
    CHECK(i->hub.stats().connects == 1);
    CHECK(i->endpoint_stats().delivered == 2 * n);
    CHECK(i->events.empty());
  }
  CHECK(inst[0]->hub.stats().published == n / 3);
}

TT_ENGINES_TEST_CASE("redis hub: a client resumes on another instance, and an instance that starts late resumes clients too",
                     "[redis]") {
  if (!tt::redis_process::binary()) {
    WARN("redis-server is not installed; skipped");
    return;
  }
  tt::redis_process redis;
  tether::event_loop loop;
  auto a = std::make_unique<instance>(loop, options_for(redis, "resume"), engine);
  auto b = std::make_unique<instance>(loop, options_for(redis, "resume"), engine);
  REQUIRE(tt::run_until(loop, [&] { return a->hub.ready() && b->hub.ready(); }));

  auto first = std::make_unique<tt::client>(a->port);
  first->send(sse_get);
  REQUIRE(tt::run_until(loop, [&] { return a->streams() == 1; }));
  std::vector<std::uint64_t> ids;
  for (int m = 0; m < 10; ++m) publish(*a, "m" + std::to_string(m), ids);
  REQUIRE(tt::run_until(loop, [&] {
    first->pump();
    return frames_of(first->data()).size() == 10;
  }));
  const std::uint64_t seen = frames_of(first->data()).back().id;
  CHECK(seen == ids.back());
  first->reset();  // the client's network blips
  REQUIRE(tt::run_until(loop, [&] { return a->streams() == 0; }));

  for (int m = 10; m < 20; ++m) publish(*b, "m" + std::to_string(m), ids);  // meanwhile, through the other instance
  REQUIRE(tt::run_until(loop, [&] { return all_acked(ids) && b->broker.last_id() == ids.back(); }));

  // It comes back to the OTHER instance with the last id it saw: messages 10..19, once each.
  tt::client back(b->port);
  back.send(sse_resume(seen));
  REQUIRE(tt::run_until(loop, [&] {
    back.pump();
    return frames_of(back.data()).size() >= 10;
  }));
  publish(*a, "m20", ids);
  REQUIRE(tt::run_until(loop, [&] {
    back.pump();
    return frames_of(back.data()).size() >= 11;
  }));
  tt::run_for(loop, 20ms);
  back.pump();
  auto got = frames_of(back.data());
  REQUIRE(got.size() == 11);
  for (std::size_t k = 0; k < got.size(); ++k) {
    CHECK(got[k].data == "m" + std::to_string(10 + k));
    CHECK(got[k].id == ids[10 + k]);
  }
  CHECK(b->endpoint_stats().replayed == 10);
  CHECK(b->endpoint_stats().gaps == 0);

  // A third instance starts now: it reads the stream before it is ready, so a client that
  // saw message 4 (on another instance) resumes on it from message 5.
  auto late = std::make_unique<instance>(loop, options_for(redis, "resume"), engine);
  CHECK_FALSE(late->hub.ready());
  CHECK(late->hub.publish("chat", "too early") == tether::errc::redis_unavailable);
  REQUIRE(tt::run_until(loop, [&] { return late->hub.ready(); }));
  CHECK(late->hub.stats().caught_up == 21);
  CHECK(late->broker.history_size("chat") == 21);
  tt::client fresh(late->port);
  fresh.send(sse_resume(ids[4]));
  REQUIRE(tt::run_until(loop, [&] {
    fresh.pump();
    return frames_of(fresh.data()).size() >= 16;
  }));
  got = frames_of(fresh.data());
  REQUIRE(got.size() == 16);
  CHECK(got.front().data == "m5");
  CHECK(got.back().data == "m20");
  CHECK(late->hub.stats().not_relayed == 1);  // the publish before it was ready
}

TT_ENGINES_TEST_CASE("redis hub: an instance that starts while messages flow merges its catch-up with live ones, each once",
                     "[redis]") {
  if (!tt::redis_process::binary()) {
    WARN("redis-server is not installed; skipped");
    return;
  }
  tt::redis_process redis;
  tether::event_loop loop;
  auto a = std::make_unique<instance>(loop, options_for(redis, "merge"), engine);
  REQUIRE(tt::run_until(loop, [&] { return a->hub.ready(); }));
  // A publisher that never stops: some messages land between a new hub's SUBSCRIBE and its
  // XRANGE, so they come both ways, and the broker must keep each once.
  std::uint64_t sent = 0, acked = 0;
  tether::timer flow{loop, [&] {
    for (int k = 0; k < 4; ++k)
      if (!a->hub.publish("chat", "m" + std::to_string(sent), {}, [&acked](tether::result<std::uint64_t> id) { acked += id ? 1 : 0; })) ++sent;
  }};
  flow.start_periodic(0ms);  // every loop iteration
  std::uint64_t overlaps = 0;
  for (int attempt = 0; attempt < 50 && overlaps == 0; ++attempt) {
    auto late = std::make_unique<instance>(loop, options_for(redis, "merge"), engine);
    REQUIRE(tt::run_until(loop, [&] { return late->hub.ready(); }));
    tt::run_for(loop, 5ms);
    flow.stop();
    REQUIRE(tt::run_until(loop, [&] {
      return acked == sent && a->hub.stats().received == acked && late->broker.last_id() == a->broker.last_id();
    }));
    // Every message published so far is in the stream (it holds 10,000): the late hub got
    // each exactly once, some from the stream, the rest live.
    CHECK(late->hub.stats().received == acked);
    CHECK(late->hub.stats().rejected == 0);
    overlaps += late->hub.stats().duplicates;
    flow.start_periodic(0ms);  // every loop iteration
  }
  flow.stop();
  CHECK(overlaps > 0);  // the merge was exercised, not only the easy cases
  CHECK(a->hub.stats().duplicates == 0);
}

TT_ENGINES_TEST_CASE("redis hub: Redis killed and restarted mid-run: no crash, streams kept, said once, counted, resumed",
                     "[redis]") {
  if (!tt::redis_process::binary()) {
    WARN("redis-server is not installed; skipped");
    return;
  }
  tt::redis_process redis;
  tether::event_loop loop;
  auto a = std::make_unique<instance>(loop, options_for(redis, "restart"), engine);
  auto b = std::make_unique<instance>(loop, options_for(redis, "restart"), engine);
  REQUIRE(tt::run_until(loop, [&] { return a->hub.ready() && b->hub.ready(); }));
  tt::client on_a(a->port), on_b(b->port);
  on_a.send(sse_get);
  on_b.send(sse_get);
  REQUIRE(tt::run_until(loop, [&] { return a->streams() == 1 && b->streams() == 1; }));

  std::vector<std::uint64_t> ids;
  for (int m = 0; m < 5; ++m) publish(m % 2 ? *b : *a, "m" + std::to_string(m), ids);
  REQUIRE(tt::run_until(loop, [&] { return all_acked(ids); }));
  REQUIRE(tt::run_until(loop, [&] {
    on_a.pump();
    on_b.pump();
    return frames_of(on_a.data()).size() == 5 && frames_of(on_b.data()).size() == 5;
  }));

  // A publish on its way when Redis dies: its caller learns it failed, and it is counted.
  std::optional<std::error_code> in_flight;
  REQUIRE_FALSE(a->hub.publish("chat", "dies with redis", {}, [&](tether::result<std::uint64_t> id) {
    in_flight = id ? std::error_code{} : id.error();
  }));
  redis.kill();
  REQUIRE(tt::run_until(loop, [&] { return !a->hub.ready() && !b->hub.ready() && in_flight.has_value(); }));
  CHECK(*in_flight == tether::errc::redis_failed);

  // Redis is away: publishes are refused at once and counted; the servers keep serving
  // and keep their streams; the hubs retry, and say so once.
  CHECK(a->hub.publish("chat", "refused") == tether::errc::redis_unavailable);
  CHECK(a->hub.publish("chat", "refused too") == tether::errc::redis_unavailable);
  CHECK(a->hub.stats().not_relayed == 3);
  tt::client hello(a->port);
  hello.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(hello.wait_for(loop, "\r\n\r\nhello"));
  tt::run_for(loop, 300ms);  // several attempts at 20, 40, 80... ms
  for (auto* i : {a.get(), b.get()}) {
    CHECK(i->count(tether::server_event_kind::redis_lost) == 1);
    CHECK(i->count(tether::server_event_kind::redis_restored) == 0);
    CHECK(i->hub.stats().episodes == 1);
    CHECK(i->streams() == 1);
  }
  on_a.pump();
  on_b.pump();
  CHECK_FALSE(on_a.eof());
  CHECK_FALSE(on_b.eof());

  REQUIRE(redis.restart());  // empty: no persistence, as in the test's own configuration
  REQUIRE(tt::run_until(loop, [&] { return a->hub.ready() && b->hub.ready(); }));
  for (auto* i : {a.get(), b.get()}) {
    REQUIRE(i->count(tether::server_event_kind::redis_restored) == 1);
    const auto& restored = i->events.back();
    CHECK(restored.kind == tether::server_event_kind::redis_restored);
    CHECK(restored.retries >= 1);
    CHECK(restored.duration >= 200ms);
    CHECK(i->hub.stats().connects == 2);
  }
  CHECK(a->events.back().count == 3);  // what a could not relay during the episode
  CHECK(b->events.back().count == 0);

  // Publishing again: ids keep growing although Redis forgot everything, and both
  // clients get every message that got an id, once, in order.
  for (int m = 5; m < 10; ++m) publish(m % 2 ? *b : *a, "m" + std::to_string(m), ids);
  REQUIRE(tt::run_until(loop, [&] {
    on_a.pump();
    on_b.pump();
    return frames_of(on_a.data()).size() >= 10 && frames_of(on_b.data()).size() >= 10;
  }));
  const auto got = frames_of(on_a.data());
  CHECK(got == frames_of(on_b.data()));
  REQUIRE(got.size() == 10);
  // The two publishers' messages may interleave (two connections to Redis); each one's
  // are in its order, and every message before the restart comes before every one after.
  std::vector<int> from_a, from_b;
  for (std::size_t k = 0; k < got.size(); ++k) {
    const int m = std::stoi(got[k].data.substr(1));
    CHECK((k < 5) == (m < 5));
    (m % 2 ? from_b : from_a).push_back(m);
    CHECK(got[k].id == ids[static_cast<std::size_t>(m)]);
    if (k > 0) CHECK(got[k - 1].id < got[k].id);
  }
  CHECK(from_a == std::vector<int>{0, 2, 4, 6, 8});
  CHECK(from_b == std::vector<int>{1, 3, 5, 7, 9});
  CHECK(a->count(tether::server_event_kind::redis_lost) == 1);
}

TT_ENGINES_TEST_CASE("redis hub: a Redis that stops answering (SIGSTOP) is lost after command_timeout, idle or busy",
                     "[redis]") {
  if (!tt::redis_process::binary()) {
    WARN("redis-server is not installed; skipped");
    return;
  }
  tt::redis_process redis;
  tether::event_loop loop;
  auto o = options_for(redis, "stall");
  o.command_timeout = tt::scaled(200ms);
  o.connect_timeout = tt::scaled(300ms);
  auto a = std::make_unique<instance>(loop, o, engine);
  REQUIRE(tt::run_until(loop, [&] { return a->hub.ready(); }));
  tt::client on_a(a->port);
  on_a.send(sse_get);
  REQUIRE(tt::run_until(loop, [&] { return a->streams() == 1; }));
  std::vector<std::uint64_t> ids;
  publish(*a, "m0", ids);
  REQUIRE(tt::run_until(loop, [&] {
    on_a.pump();
    return frames_of(on_a.data()).size() == 1;
  }));

  // Idle: nothing is in flight, so only the hub's PING can find out.
  redis.signal(SIGSTOP);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(tt::run_until(loop, [&] { return !a->hub.ready(); }));
  CHECK(std::chrono::steady_clock::now() - t0 >= tt::scaled(200ms));
  CHECK(a->count(tether::server_event_kind::redis_lost) == 1);
  tt::run_for(loop, 400ms);  // attempts connect (the kernel accepts) but get no answer
  CHECK(a->count(tether::server_event_kind::redis_lost) == 1);
  CHECK(a->streams() == 1);
  redis.signal(SIGCONT);
  REQUIRE(tt::run_until(loop, [&] { return a->hub.ready(); }));
  CHECK(a->count(tether::server_event_kind::redis_restored) == 1);

  // Busy: a publish waits for an answer that does not come; it fails, and is counted.
  std::optional<std::error_code> stalled;
  redis.signal(SIGSTOP);
  REQUIRE_FALSE(a->hub.publish("chat", "stalled", {}, [&](tether::result<std::uint64_t> id) {
    stalled = id ? std::error_code{} : id.error();
  }));
  REQUIRE(tt::run_until(loop, [&] { return stalled.has_value(); }));
  CHECK(*stalled == tether::errc::redis_failed);
  CHECK_FALSE(a->hub.ready());
  CHECK(a->count(tether::server_event_kind::redis_lost) == 2);
  redis.signal(SIGCONT);
  REQUIRE(tt::run_until(loop, [&] { return a->hub.ready(); }));
  CHECK(a->count(tether::server_event_kind::redis_restored) == 2);
  CHECK(a->events.back().count == 1);

  publish(*a, "m1", ids);
  REQUIRE(tt::run_until(loop, [&] {
    on_a.pump();
    const auto f = frames_of(on_a.data());
    return all_acked(ids) && !f.empty() && f.back().data == "m1";
  }));
  const auto got = frames_of(on_a.data());
  // "stalled" may have been run by Redis once it went on (its answer was given up): if so
  // it arrives too, in id order.
  CHECK(got.front().data == "m0");
  CHECK(got.back().data == "m1");
  for (std::size_t k = 1; k < got.size(); ++k) CHECK(got[k - 1].id < got[k].id);
  CHECK_FALSE(on_a.eof());
}

namespace {

/// An example program as a child process, stdout and stderr to files, stopped by PID.
class chat_process {
 public:
  chat_process(const std::string& path, const std::vector<std::string>& args) {
    char tmpl[] = "/tmp/tether-example-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      const int out = ::open((dir_ + "/stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      const int err = ::open((dir_ + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (out >= 0) ::dup2(out, STDOUT_FILENO);
      if (err >= 0) ::dup2(err, STDERR_FILENO);
      std::vector<char*> argv{const_cast<char*>(path.c_str())};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
  }
  chat_process(const chat_process&) = delete;
  chat_process& operator=(const chat_process&) = delete;
  ~chat_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  bool running() {
    int status = 0;
    return pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == 0;
  }
  std::string read(const char* name) const {
    std::ifstream in(dir_ + "/" + name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

std::size_t occurrences(const std::string& s, std::string_view needle) {
  std::size_t n = 0;
  for (auto p = s.find(needle); p != std::string::npos; p = s.find(needle, p + needle.size())) ++n;
  return n;
}

/// One request on a connection of its own; the whole response (the server closes).
std::string request(tether::event_loop& loop, std::uint16_t port, const std::string& head_and_body) {
  try {
    tt::client c(port);
    c.send(head_and_body);
    (void)c.wait_eof(loop, 2000ms);
    return c.data();
  } catch (const std::exception&) {
    return {};  // not listening yet
  }
}
std::string post(tether::event_loop& loop, std::uint16_t port, const std::string& body) {
  return request(loop, port, "POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body);
}
bool example_ready(tether::event_loop& loop, std::uint16_t port) {
  return request(loop, port, "GET /stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").find("ready 1\n") != std::string::npos;
}

}  // namespace

TEST_CASE("redis_chat: two processes relay every message to their SSE clients, through a Redis restart",
          "[redis][example]") {
  const char* path = std::getenv("TETHER_EXAMPLE_REDIS_CHAT");
  if (!path || !tt::redis_process::binary()) {
    WARN("TETHER_EXAMPLE_REDIS_CHAT or redis-server missing; skipped");
    return;
  }
  tt::redis_process redis;
  tether::event_loop loop;  // drives the test's clients only
  const std::uint16_t port_a = tt::free_loopback_port(), port_b = tt::free_loopback_port();
  // One instance on each engine, either way round (the 503 below comes from `a`).
  const bool a_is_lean = GENERATE(false, true);
  INFO((a_is_lean ? "a: --lean, b: evhttp" : "a: evhttp, b: --lean"));
  const std::vector<std::string> lean{"--lean"}, evhttp{};
  auto args = [&](bool lean_one, std::uint16_t port) {
    std::vector<std::string> v = lean_one ? lean : evhttp;
    v.push_back(std::to_string(port));
    v.push_back(redis.address());
    return v;
  };
  chat_process a(path, args(a_is_lean, port_a));
  chat_process b(path, args(!a_is_lean, port_b));
  REQUIRE(tt::run_until(loop, [&] { return example_ready(loop, port_a) && example_ready(loop, port_b); }, 5000ms));

  tt::client on_a(port_a), on_b(port_b);
  on_a.send(sse_get);
  on_b.send(sse_get);
  REQUIRE(on_a.wait_for(loop, "text/event-stream"));
  REQUIRE(on_b.wait_for(loop, "text/event-stream"));
  for (int m = 0; m < 6; ++m) CHECK(post(loop, m % 2 ? port_b : port_a, "m" + std::to_string(m)).rfind("HTTP/1.1 202", 0) == 0);
  const auto six = [&] {
    return tt::run_until(loop, [&] {
      on_a.pump();
      on_b.pump();
      return frames_of(on_a.data()).size() >= 6 && frames_of(on_b.data()).size() >= 6;
    });
  };
  REQUIRE(six());

  redis.kill();
  const auto refused = post(loop, port_a, "lost");
  CHECK(refused.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(refused.find("Retry-After: 1\r\n") != std::string::npos);
  tt::run_for(loop, 500ms);  // several reconnection attempts
  CHECK(a.running());
  CHECK(b.running());
  CHECK(occurrences(a.read("stderr"), "tether: lost Redis") == 1);
  CHECK(occurrences(b.read("stderr"), "tether: lost Redis") == 1);

  REQUIRE(redis.restart());
  REQUIRE(tt::run_until(loop, [&] { return example_ready(loop, port_a) && example_ready(loop, port_b); }, 5000ms));
  CHECK(occurrences(a.read("stderr"), "is back after") == 1);
  CHECK(a.read("stderr").find("1 publishes could not be relayed") != std::string::npos);
  for (int m = 6; m < 10; ++m) CHECK(post(loop, m % 2 ? port_b : port_a, "m" + std::to_string(m)).rfind("HTTP/1.1 202", 0) == 0);
  REQUIRE(tt::run_until(loop, [&] {
    on_a.pump();
    on_b.pump();
    return frames_of(on_a.data()).size() >= 10 && frames_of(on_b.data()).size() >= 10;
  }));
  const auto got = frames_of(on_a.data());
  CHECK(got == frames_of(on_b.data()));
  REQUIRE(got.size() == 10);
  for (std::size_t k = 0; k < got.size(); ++k) CHECK(got[k].data == "m" + std::to_string(k));
  CHECK_FALSE(on_a.eof());
  CHECK_FALSE(on_b.eof());
}
