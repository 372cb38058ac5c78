// Graceful drain (docs/drain.md): under load, every accepted request gets a complete
// response or a clean end (a final chunk, an EOF), and no connection is reset; the
// deadline closes what is left and says so; a server group drains every loop; and every
// example stopped with SIGTERM exits with status 0 ([example], through TETHER_EXAMPLE_*).
// The drain cases run on both engines (TT_ENGINE_SERVERS), and so do the examples that
// take --lean.
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using tt::client;
using tt::run_for;
using tt::run_until;
using tt::scaled;

namespace {

// ----- reading what a client received --------------------------------------------

struct response {
  int status = 0;
  std::string head;  // lower-cased status line and fields
  std::string body;
  bool complete = false;
};

/// Splits `data` into the HTTP/1.1 responses it holds: Content-Length, chunked, or (with
/// neither) delimited by the end of the connection (`eof`). `rest` is what follows the
/// last complete response (a partial one).
std::vector<response> parse_responses(std::string_view data, bool eof, std::string_view* rest = nullptr) {
  std::vector<response> out;
  while (!data.empty()) {
    const auto end_of_head = data.find("\r\n\r\n");
    if (end_of_head == std::string_view::npos) break;
    response r;
    r.head = std::string(data.substr(0, end_of_head + 2));
    for (char& c : r.head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.status = std::atoi(r.head.c_str() + 9);
    std::string_view body = data.substr(end_of_head + 4);
    std::size_t used = 0;
    if (r.head.find("\r\ntransfer-encoding: chunked\r\n") != std::string::npos) {
      for (;;) {
        const auto eol = body.find("\r\n", used);
        if (eol == std::string_view::npos) break;
        const std::size_t size = std::strtoul(std::string(body.substr(used, eol - used)).c_str(), nullptr, 16);
        if (body.size() < eol + 2 + size + 2) break;
        r.body.append(body.substr(eol + 2, size));
        used = eol + 2 + size + 2;
        if (size == 0) {
          r.complete = true;
          break;
        }
      }
    } else if (const auto cl = r.head.find("\r\ncontent-length: "); cl != std::string::npos) {
      const std::size_t size = std::strtoul(r.head.c_str() + cl + 18, nullptr, 10);
      if (body.size() >= size) {
        r.body = std::string(body.substr(0, size));
        used = size;
        r.complete = true;
      }
    } else {
      r.body = std::string(body);
      used = body.size();
      r.complete = eof;
    }
    const bool complete = r.complete;
    out.push_back(std::move(r));
    if (!complete) {
      data = {};
      break;
    }
    data.remove_prefix(end_of_head + 4 + used);
  }
  if (rest) *rest = data;
  return out;
}

bool says_close(const response& r) { return r.head.find("\r\nconnection: close\r\n") != std::string::npos; }

/// A keep-alive client that sends its next request as soon as the last one's response
/// is complete, until a response says `Connection: close` or the server ends.
struct busy_client {
  std::unique_ptr<client> c;
  std::string request;
  int sent = 0;

  busy_client(std::uint16_t port, std::string path)
      : c(std::make_unique<client>(port)), request("GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n") {}

  void drive() {
    if (c->eof()) return;
    c->pump();
    if (c->eof()) return c->close();  // as a browser does: the server's FIN is answered
    const auto got = parse_responses(c->data(), false);
    const int done = static_cast<int>(got.size()) - (got.empty() || got.back().complete ? 0 : 1);
    if (done < sent || (!got.empty() && got.back().complete && says_close(got.back()))) return;
    try {
      c->send(request);
      ++sent;
    } catch (const std::exception&) {  // the server closed meanwhile: nothing was accepted
    }
  }
  std::size_t complete() const {
    std::size_t n = 0;
    for (const auto& r : parse_responses(c->data(), c->eof()))
      if (r.complete) ++n;
    return n;
  }
};

/// The native socket of a request's connection, on either engine.
template <class Request>
int socket_of(Request& req) {
  if constexpr (requires { req.connection().bufferevent(); }) return req.connection().bufferevent()->fd();
  else return req.connection().native();
}

struct close_record {
  tether::close_reason reason;
  bool aborted;
};

}  // namespace

TEMPLATE_TEST_CASE("drain: under load, every accepted request gets a complete response or a clean end, and nothing "
                   "is reset",
                   "[drain]", TT_ENGINE_SERVERS) {
  using Server = TestType;
  tether::event_loop loop;
  Server srv{loop};
  // Held requests and streams kept by the application (a long-poll room and a hub keep
  // them the same way: the drain reaches them through their connections).
  std::vector<typename Server::request_handle> room;
  std::vector<typename Server::stream> streams;
  std::vector<close_record> closes;
  // Still being written when the drain starts (libevent writes at most 16 KiB per
  // callback, and the clients read between loop iterations).
  const std::string big(1024 * 1024, 'x');

  auto record = [&closes](const tether::close_event& e) noexcept { closes.push_back({e.reason, e.aborted}); };
  (void)srv.route("/hello", [](auto& req) { (void)req.reply(200, "hello"); });
  (void)srv.route("/big", [&](auto& req) {
    // A small send buffer, so that the reply is still being written when the drain starts
    // on either engine (the lean engine hands the kernel all it takes at once).
    const int small = 64 * 1024;
    ::setsockopt(socket_of(req), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    (void)req.reply(200, big);
  });
  (void)srv.route("/poll", [&](auto& req) {
    (void)req.connection().on_close(record);
    room.push_back(req.hold());
  });
  (void)srv.route("/stream", [&](auto& req) {
    (void)req.connection().on_close(record);
    if (auto s = Server::stream::start(req)) streams.push_back(std::move(*s));
  });
  auto waiting = [&] {
    return std::count_if(room.begin(), room.end(), [](const auto& h) { return h.alive(); });
  };
  tether::timer tick{loop, [&] {
    for (auto& s : streams)
      if (s.alive()) (void)s.write(std::string_view("tick\n"));
  }};
  tick.start_periodic(2ms);

  bool done = false;
  tether::drain_report report;
  srv.set_drain_options({.last_words = [](typename Server::request_handle& h) {
                           (void)h.send_chunk(std::string_view("bye\n"));
                         },
                         .on_done = [&done, &report](const tether::drain_report& r) {
                           done = true;
                           report = r;
                         },
                         .stop_loop = false});
  const auto port = srv.bind("127.0.0.1", 0);
  REQUIRE(port);

  std::vector<busy_client> hello, bigs;
  for (int i = 0; i < 6; ++i) hello.emplace_back(*port, "/hello");
  for (int i = 0; i < 2; ++i) bigs.emplace_back(*port, "/big");
  std::vector<std::unique_ptr<client>> polls, subscribers;
  for (int i = 0; i < 3; ++i) {
    polls.push_back(std::make_unique<client>(*port));
    polls.back()->send("GET /poll HTTP/1.1\r\nHost: localhost\r\n\r\n");
    subscribers.push_back(std::make_unique<client>(*port));
    subscribers.back()->send("GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
  }
  client old{*port};  // HTTP/1.0: its stream ends when the connection closes
  old.send("GET /stream HTTP/1.0\r\n\r\n");

  auto drive = [&] {
    for (auto& b : hello) b.drive();
    for (auto& b : bigs) b.drive();
    for (auto* c : {&polls, &subscribers})
      for (auto& cl : *c)
        if (!cl->eof() && !cl->pump()) cl->close();
    if (!old.eof() && !old.pump()) old.close();
  };
  // Load: every client busy, every long-poll held, every stream ticking.
  REQUIRE(run_until(loop, [&] {
    drive();
    bool busy = waiting() == 3 && old.occurrences("tick") >= 3;
    for (auto& b : hello) busy = busy && b.complete() >= 5;
    for (auto& s : subscribers) busy = busy && s->occurrences("tick") >= 3;
    // A whole reply half received: the drain must let it finish.
    const auto big_replies = parse_responses(bigs[0].c->data(), false);
    return busy && !big_replies.empty() && !big_replies.back().complete;
  }, 5000ms));
  for (auto& b : bigs) REQUIRE(b.sent >= 1);

  REQUIRE_FALSE(srv.drain(scaled(5s)));  // the 1 MiB replies take a while under valgrind
  CHECK(srv.draining());
  REQUIRE(run_until(loop, [&] {
    drive();
    return done;
  }, 6000ms));
  // Every connection was closed by the server: each client reads to its end.
  auto all_eof = [&] {
    bool eof = old.eof();
    for (auto& b : hello) eof = eof && b.c->eof();
    for (auto& b : bigs) eof = eof && b.c->eof();
    for (auto& c : polls) eof = eof && c->eof();
    for (auto& c : subscribers) eof = eof && c->eof();
    return eof;
  };
  REQUIRE(run_until(loop, [&] {
    drive();
    return all_eof();
  }, 3000ms));

  CHECK_FALSE(report.deadline_passed);
  CHECK(report.closed_at_deadline == 0);
  CHECK(report.held_answered == 3);
  CHECK(report.streams_ended == 4);
  CHECK(srv.drained());
  CHECK(srv.open_connections() == 0);
  INFO("drain took " << report.took.count() << " ms; idle connections closed: " << report.idle_closed);
  if (std::getenv("TETHER_DRAIN_FIGURES"))
    std::printf("drain: took %lld ms, idle closed %zu\n", static_cast<long long>(report.took.count()), report.idle_closed);

  // Whole replies: every one complete and intact.
  std::size_t answered = 0, unanswered = 0, told_close = 0;
  for (auto* group : {&hello, &bigs}) {
    for (auto& b : *group) {
      std::string_view rest;
      const auto got = parse_responses(b.c->data(), true, &rest);
      CHECK_FALSE(b.c->reset_seen());
      CHECK(rest.empty());
      for (const auto& r : got) {
        CHECK(r.complete);
        CHECK(r.status == 200);
        CHECK(r.body.size() == (group == &hello ? 5u : big.size()));
      }
      // Every request sent was answered: the clients are pumped between loop iterations,
      // so a request is in the server's kernel buffer before the drain looks at its
      // connection (which then serves it), or is never sent (the client read the FIN).
      CHECK(static_cast<int>(got.size()) == b.sent);
      if (!got.empty() && says_close(got.back())) ++told_close;
      answered += got.size();
      unanswered += static_cast<std::size_t>(b.sent) - got.size();
    }
  }
  INFO("whole replies answered: " << answered << ", unanswered at an idle close: " << unanswered);
  if (std::getenv("TETHER_DRAIN_FIGURES"))
    std::printf("drain: whole replies answered %zu, unanswered at an idle close %zu\n", answered, unanswered);
  CHECK(answered > 30);
  // A reply made during the drain says the connection ends (else a busy keep-alive
  // client would keep it open); a client whose last reply was made before the drain
  // and read after it saw the idle close instead.
  CHECK(told_close >= 1);

  // Held long-polls: 503 with Retry-After, then the connection ends.
  for (auto& c : polls) {
    CHECK_FALSE(c->reset_seen());
    const auto got = parse_responses(c->data(), true);
    REQUIRE(got.size() == 1);
    CHECK(got[0].complete);
    CHECK(got[0].status == 503);
    CHECK(got[0].head.find("\r\nretry-after: 5\r\n") != std::string::npos);
    CHECK(got[0].body == "server shutting down\n");
  }
  // Streams: the last words, then the final chunk (a complete chunked body), then EOF.
  for (auto& c : subscribers) {
    CHECK_FALSE(c->reset_seen());
    const auto got = parse_responses(c->data(), true);
    REQUIRE(got.size() == 1);
    CHECK(got[0].complete);
    CHECK(got[0].body.ends_with("tick\nbye\n"));
  }
  CHECK_FALSE(old.reset_seen());
  CHECK(old.data().ends_with("tick\nbye\n"));

  // Each tracked connection's close callback ran once, with server_shutdown.
  REQUIRE(closes.size() == 7);
  for (const auto& c : closes) {
    CHECK(c.reason == tether::close_reason::server_shutdown);
    CHECK_FALSE(c.aborted);
  }
  // Nothing listens any more.
  CHECK_THROWS(client{*port});
}

TEMPLATE_TEST_CASE("drain: at the deadline what is left is closed hard, reported, and the loop returns", "[drain]",
                   TT_ENGINE_SERVERS) {
  using Server = TestType;
  tether::event_loop loop;
  Server srv{loop};
  std::vector<close_record> closes;
  std::optional<typename Server::stream> flood;
  const std::string chunk(64 * 1024, 'f');
  (void)srv.route("/flood", [&](auto& req) {
    (void)req.connection().on_close([&closes](const tether::close_event& e) noexcept {
      closes.push_back({e.reason, e.aborted});
    });
    if (auto s = Server::stream::start(req)) flood.emplace(std::move(*s));
  });
  // A client that never reads: the stream's output backs up, its final chunk cannot go.
  tether::timer pump{loop, [&] {
    if (flood && flood->alive() && flood->queued_bytes() < 2 * 1024 * 1024) (void)flood->write(std::string_view(chunk));
  }};
  pump.start_periodic(1ms);
  const auto port = srv.bind("127.0.0.1", 0);
  REQUIRE(port);

  client stalled{*port};
  stalled.send("GET /flood HTTP/1.1\r\nHost: localhost\r\n\r\n");
  client slow_head{*port};  // half a request head: neither idle nor answerable
  slow_head.send("GET /flood HTTP/1.1\r\nHost: loc");
  REQUIRE(run_until(loop, [&] { return flood && flood->queued_bytes() >= 1024 * 1024; }, 5000ms));

  const auto deadline = 300ms;
  REQUIRE_FALSE(srv.drain(deadline));
  const auto t0 = std::chrono::steady_clock::now();
  loop.stop_after(scaled(10s));  // a bound for the test; the drain stops the loop first
  loop.run();
  const auto took = std::chrono::steady_clock::now() - t0;
  pump.stop();

  REQUIRE(srv.drained());
  const auto& report = srv.drain_result();
  CHECK(report.deadline_passed);
  CHECK(report.closed_at_deadline == 2);
  CHECK(report.streams_ended == 1);
  // The deadline's timer runs on the loop's cached clock, read before drain() was called.
  CHECK(took >= deadline - 20ms);
  CHECK(report.took >= deadline - 20ms);
  CHECK(took < scaled(3s));
  CHECK(srv.open_connections() == 0);
  REQUIRE(closes.size() == 1);
  CHECK(closes[0].reason == tether::close_reason::server_shutdown);
  CHECK(closes[0].aborted);  // its reply never reached the client whole
  // The stream's handle: on the evhttp engine it stays the request's until the final chunk
  // is written, and learns the peer is gone; on the lean engine a reply queued whole (the
  // drain's end()) finishes its handles at once (docs/engine.md).
  if (tt::is_lean<Server>()) CHECK_FALSE(flood->alive());
  else CHECK(flood->peer_gone());
  CHECK(slow_head.wait_eof(loop));
}

// A reply sized by the application (start_sized(): Content-Length, then start()) is left
// to finish, on HTTP/1.0 too (the lean engine used to end an HTTP/1.0 one, cutting it
// short); a second drain(0s) closes it.
TEMPLATE_TEST_CASE("drain: a second drain brings the deadline forward (a second SIGTERM)", "[drain]",
                   TT_ENGINE_SERVERS) {
  using Server = TestType;
  const std::string version = GENERATE(std::string("HTTP/1.1"), std::string("HTTP/1.0"));
  INFO(tt::engine_name<Server>() << ", " << version);
  tether::event_loop loop;
  Server srv{loop};
  std::optional<typename Server::stream> slow;  // a reply owed 100 bytes that never come
  bool last_words = false;
  typename Server::drain_options options;
  options.last_words = [&](auto&) { last_words = true; };
  srv.set_drain_options(std::move(options));
  (void)srv.route("/sized", [&](auto& req) {
    auto s = Server::stream::start_sized(req, 100);
    REQUIRE(s);
    REQUIRE_FALSE(s->write("first"));
    slow = std::move(*s);
  });
  const auto port = srv.bind("127.0.0.1", 0);
  REQUIRE(port);
  client c{*port};
  c.send("GET /sized " + version + "\r\nHost: localhost\r\n\r\n");
  REQUIRE(c.wait_for(loop, "\r\n\r\nfirst"));

  REQUIRE_FALSE(srv.drain(10s));
  run_for(loop, 50ms);
  CHECK_FALSE(srv.drained());  // the sized reply is owed 95 bytes: the drain waits
  CHECK(srv.drain_result().streams_ended == 0);
  CHECK_FALSE(last_words);  // no last words either: they would not fit its length
  CHECK(slow->alive());
  REQUIRE_FALSE(srv.drain(0s));
  REQUIRE(run_until(loop, [&] { return srv.drained(); }, 1000ms));
  CHECK(srv.drain_result().deadline_passed);
  CHECK(srv.drain_result().closed_at_deadline == 1);
  CHECK(srv.drain_result().took < 2s);
  CHECK(c.wait_eof(loop));
  CHECK(c.data().ends_with("\r\n\r\nfirst"));  // nothing after the first bytes: cut at the deadline
}

TEMPLATE_TEST_CASE("drain: a server group drains every loop, and join() returns", "[drain][group]",
                   TT_ENGINE_SERVERS) {
  using Server = TestType;
  tether::basic_server_group<Server> group{{.threads = 2}};
  auto port = group.start("127.0.0.1", 0, [](Server& srv) {
    auto streams = std::make_unique<std::vector<typename Server::stream>>();
    (void)srv.route("/stream", [s = streams.get()](auto& req) {
      if (auto st = Server::stream::start(req)) {
        (void)st->write(std::string_view("hello\n"));
        s->push_back(std::move(*st));
      }
    });
    return streams;
  });
  REQUIRE(port);
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(std::make_unique<client>(*port));
    clients.back()->send("GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
  }
  // No loop on this thread: the clients are read with poll(2).
  auto pump_until = [&](auto pred) {
    const auto until = std::chrono::steady_clock::now() + scaled(5s);
    while (!pred() && std::chrono::steady_clock::now() < until) {
      for (auto& c : clients)
        if (!c->eof() && !c->pump()) c->close();
      ::poll(nullptr, 0, 1);
    }
    return pred();
  };
  REQUIRE(pump_until([&] {
    for (auto& c : clients)
      if (c->occurrences("hello\n") == 0) return false;
    return true;
  }));
  const auto t0 = std::chrono::steady_clock::now();
  group.drain(5s);
  CHECK(group.draining());
  // Each loop waits for its clients' FIN after its own (or 2 s): they read meanwhile.
  std::thread joiner([&] { group.join(); });
  const bool all_ended = pump_until([&] {
    for (auto& c : clients)
      if (!c->eof()) return false;
    return true;
  });
  joiner.join();
  REQUIRE(all_ended);
  CHECK(std::chrono::steady_clock::now() - t0 < scaled(1500ms));  // not the 5 s deadline, nor a 2 s linger
  for (auto& c : clients) {
    CHECK_FALSE(c->reset_seen());
    const auto got = parse_responses(c->data(), true);
    REQUIRE(got.size() == 1);
    CHECK(got[0].complete);  // the final chunk arrived
    CHECK(got[0].body == "hello\n");
  }
}

// ----- every example drains on SIGTERM and exits with status 0 -----------------------

namespace {

std::string example_path(const char* name) {
  std::string var = "TETHER_EXAMPLE_";
  for (const char* p = name; *p; ++p) var += static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
  const char* path = std::getenv(var.c_str());
  return path ? path : "";
}

/// An example program run as a child, stdout and stderr discarded into a pipe we drain.
class example_child {
 public:
  example_child(const std::string& path, std::vector<std::string> args) : path_(path) {
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      std::vector<char*> argv{const_cast<char*>(path.c_str())};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
  }
  example_child(const example_child&) = delete;
  example_child& operator=(const example_child&) = delete;
  ~example_child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  /// Waits until the child runs the example (its exec is done) and catches `sig`
  /// (/proc/PID/status, SigCgt): only then does `sig` reach the example's handler. Before
  /// the exec, under valgrind, the forked child is still valgrind's, which catches every
  /// signal and loses it in the exec; after it and before the handler, it kills.
  bool catches(int sig, std::chrono::milliseconds limit) const {
    char want[PATH_MAX];
    if (!::realpath(path_.c_str(), want)) return false;
    const auto until = std::chrono::steady_clock::now() + scaled(limit);
    while (std::chrono::steady_clock::now() < until) {
      if (runs(want) && caught_mask() >> (sig - 1) & 1) return true;
      ::poll(nullptr, 0, 5);
    }
    return false;
  }
  /// The exit status, or -1 if it did not exit normally within `limit`, or -2 if killed
  /// by a signal.
  int wait_exit(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + scaled(limit);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
      }
      ::poll(nullptr, 0, 5);
    }
    return -1;
  }

 private:
  bool runs(const char* want) const {
    char exe[PATH_MAX];
    const std::string link = "/proc/" + std::to_string(pid_) + "/exe";
    const ssize_t n = ::readlink(link.c_str(), exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    return std::string_view{exe} == want;
  }
  unsigned long long caught_mask() const {
    const std::string status = "/proc/" + std::to_string(pid_) + "/status";
    std::FILE* f = std::fopen(status.c_str(), "r");
    if (!f) return 0;
    unsigned long long mask = 0;
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "SigCgt: %llx", &mask) == 1) break;
    std::fclose(f);
    return mask;
  }

  std::string path_;
  pid_t pid_ = -1;
};

/// Connects once the server listens (it binds after its setup).
std::unique_ptr<client> connect_when_listening(std::uint16_t port) {
  const auto until = std::chrono::steady_clock::now() + scaled(5s);
  while (std::chrono::steady_clock::now() < until) {
    try {
      return std::make_unique<client>(port);
    } catch (const std::exception&) {
      ::poll(nullptr, 0, 10);
    }
  }
  return nullptr;
}

template <class Pred>
bool pump_until(client& c, Pred pred, std::chrono::milliseconds limit = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + scaled(limit);
  while (!pred() && std::chrono::steady_clock::now() < until) {
    pollfd p{c.fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
    c.pump();
  }
  return pred();
}

struct example_case {
  const char* name;
  std::vector<std::string> args;  // "PORT" is replaced by the port
  const char* request;
  const char* ready;          // in the response before the signal
  const char* after;          // in what the client received by its end
};

}  // namespace

TEST_CASE("drain: every example stopped with SIGTERM drains and exits with status 0", "[drain][example]") {
  const std::vector<example_case> cases = {
      {"hello", {"PORT"}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello", "hello"},
      {"hello", {"--lean", "PORT"}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello", "hello"},
      {"hello", {"--lean", "--threads", "2", "PORT"}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello", "hello"},
      {"hello", {"--threads", "2", "PORT"}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello", "hello"},
      {"http_closecb", {"PORT"}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "<html>", "<html>\r\n0\r\n\r\n"},
      {"http_closecb", {"--lean", "PORT"}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "<html>", "<html>\r\n0\r\n\r\n"},
      {"sse_clock", {"PORT"}, "GET /clock HTTP/1.1\r\nHost: x\r\n\r\n", "text/event-stream", "event: bye\n"},
      {"multipart_frames", {"PORT"}, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", "multipart/x-mixed-replace", "0\r\n\r\n"},
      {"long_poll_chat", {"--threads", "2", "PORT"}, "GET /events?room=lobby HTTP/1.1\r\nHost: x\r\n\r\n",
       "text/event-stream", "0\r\n\r\n"},
      {"runtime_routes", {"PORT", "/motd=hi"}, "GET /motd HTTP/1.1\r\nHost: x\r\n\r\n", "hi\n", "hi\n"},
      {"static_routes", {"PORT"}, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "200 OK", "200 OK"},
      {"runtime_routes", {"--lean", "PORT", "/motd=hi"}, "GET /motd HTTP/1.1\r\nHost: x\r\n\r\n", "hi\n", "hi\n"},
      {"static_routes", {"--lean", "PORT"}, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "200 OK", "200 OK"},
      {"sse_clock", {"PORT", "--lean"}, "GET /clock HTTP/1.1\r\nHost: x\r\n\r\n", "text/event-stream", "event: bye\n"},
      {"multipart_frames", {"--lean", "PORT"}, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", "multipart/x-mixed-replace",
       "0\r\n\r\n"},
      {"long_poll_chat", {"--lean", "--threads", "2", "PORT"}, "GET /events?room=lobby HTTP/1.1\r\nHost: x\r\n\r\n",
       "text/event-stream", "0\r\n\r\n"},
      {"four_endpoints", {"PORT"}, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n", "text/event-stream", "0\r\n\r\n"},
      {"four_endpoints", {"--lean", "PORT"}, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n", "text/event-stream",
       "0\r\n\r\n"},
  };
  for (const auto& ex : cases) {
    const std::string path = example_path(ex.name);
    if (path.empty()) {
      WARN("TETHER_EXAMPLE_ for " << ex.name << " not set: skipped");
      continue;
    }
    std::string label = ex.name;
    for (const auto& a : ex.args) label += " " + a;
    SECTION(label) {
      const std::uint16_t port = tt::free_port();
      std::vector<std::string> args;
      for (const auto& a : ex.args) args.push_back(a == "PORT" ? std::to_string(port) : a);
      example_child child{path, args};
      auto c = connect_when_listening(port);
      REQUIRE(c);
      c->send(ex.request);
      REQUIRE(pump_until(*c, [&] { return c->data().find(ex.ready) != std::string::npos; }));
      child.signal(SIGTERM);
      REQUIRE(pump_until(*c, [&] { return c->eof(); }));
      CHECK_FALSE(c->reset_seen());
      CHECK(c->data().find(ex.after) != std::string::npos);
      c->close();  // as curl or a browser does at the end: the server waits for it (or 2 s)
      CHECK(child.wait_exit(5s) == 0);
    }
  }
}

TEST_CASE("drain: the client example stopped with SIGTERM while it streams exits with status 0", "[drain][example]") {
  const std::string server_path = example_path("sse_clock");
  const std::string client_path = example_path("client");
  if (server_path.empty() || client_path.empty()) {
    WARN("TETHER_EXAMPLE_SSE_CLOCK or TETHER_EXAMPLE_CLIENT not set: skipped");
    return;
  }
  const std::uint16_t port = tt::free_port();
  example_child server{server_path, {std::to_string(port)}};
  REQUIRE(connect_when_listening(port));
  example_child streaming{client_path, {"--stream", "http://127.0.0.1:" + std::to_string(port) + "/clock"}};
  // Connected and streaming, or still connecting: either way it must end cleanly once
  // its handler is in place.
  REQUIRE(streaming.catches(SIGTERM, 5s));
  streaming.signal(SIGTERM);
  CHECK(streaming.wait_exit(5s) == 0);
  server.signal(SIGTERM);
  CHECK(server.wait_exit(5s) == 0);
}

// ----- one loop per process watches signals -------------------------------------------

namespace {
struct drain_count {
  unsigned calls = 0;
  void drain(std::chrono::milliseconds) noexcept { ++calls; }
};
}  // namespace

TEST_CASE("drain_on_signals: a second loop cannot take the signals from the first (errc::signals_in_use)",
          "[drain][signals]") {
  tether::event_loop first;
  tether::event_loop second;
  drain_count a, b;
  {
    tether::drain_on_signals on_first{first, a, 1s};
    tether::drain_on_signals also_first{first, b, 1s};  // the same loop: both are told
    try {
      tether::drain_on_signals on_second{second, b, 1s};
      FAIL("a drain_on_signals on a second loop was accepted");
    } catch (const std::system_error& e) {
      CHECK(e.code() == tether::errc::signals_in_use);
      CHECK(std::string(e.what()).find("drain the other servers or groups from that one") != std::string::npos);
    }
    REQUIRE(::kill(::getpid(), SIGTERM) == 0);
    REQUIRE(run_until(first, [&] { return a.calls == 1 && b.calls == 1; }, scaled(5s)));
    CHECK(on_first.received() == 1);
    CHECK(on_first.last_signal() == SIGTERM);
  }
  // Both gone: the second loop may watch them now.
  tether::drain_on_signals on_second{second, b, 1s};
  REQUIRE(::kill(::getpid(), SIGINT) == 0);
  REQUIRE(run_until(second, [&] { return b.calls == 2; }, scaled(5s)));
  CHECK(a.calls == 1);
}

TEMPLATE_TEST_CASE("drain: one SIGTERM drains two groups (also_drain); a second group with signal_drain is refused",
                   "[drain][group][signals]", TT_ENGINE_SERVERS) {
  using Server = TestType;
  using group_t = tether::basic_server_group<Server>;
  auto hello = [](Server& srv) { srv.fallback([](auto& req) { (void)req.reply(200, "hello"); }); };
  group_t https{{.threads = 1}};  // first: it outlives the group that drains it (docs/drain.md)
  group_t http{{.threads = 2, .signal_drain = 5s}};
  REQUIRE_FALSE(http.also_drain(https));
  CHECK(http.also_drain(http) == tether::errc::invalid_argument);
  REQUIRE_FALSE(https.also_drain(http));  // a cycle: each passes the deadline on once
  REQUIRE(http.start("127.0.0.1", 0, hello));
  REQUIRE(https.start("127.0.0.1", 0, hello));
  CHECK(http.also_drain(https) == tether::errc::invalid_argument);  // after start()

  group_t third{{.threads = 1, .signal_drain = 5s}};
  auto refused = third.start("127.0.0.1", 0, hello);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == tether::errc::signals_in_use);

  REQUIRE(::kill(::getpid(), SIGTERM) == 0);
  // join() on another thread, bounded: a group that missed the signal is stopped and
  // reported rather than hanging the test.
  tether::detail::atomic_value<bool> joined{false};
  std::thread joiner([&] {
    http.join();
    https.join();
    joined.store(true);
  });
  const auto until = std::chrono::steady_clock::now() + scaled(5s);
  while (!joined.load() && std::chrono::steady_clock::now() < until) ::poll(nullptr, 0, 5);
  const bool drained = joined.load();
  if (!drained) {
    http.stop();
    https.stop();
  }
  joiner.join();
  CHECK(drained);
  CHECK(http.draining());
  CHECK(https.draining());
}
