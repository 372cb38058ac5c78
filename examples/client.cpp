// Example: an HTTP client. Fetches one URL, writes the status line to stderr and the body
// to stdout (so `client URL > file` saves just the body), and says through its exit code
// how it went.
//
// Usage: client [--stream] [--timeout-ms N] [--retries N] http://host[:port][/path][?query]
//   --stream        write the body as it arrives instead of once it is complete
//   --timeout-ms N  connect, read and write timeout (default 10000)
//   --retries N     retry a refused or timed-out connect N times (back-off from 200 ms)
//
// Exit codes: 0  a 2xx response
//             1  bad usage or URL (https is not supported yet)
//             2  no complete response: refused, timeout, unknown host, cut off, malformed
//             3  a response that is not 2xx (its status and body are still written)
//
//   $ client http://127.0.0.1:8080/hello
//   200 OK                (stderr)
//   hello                 (stdout)
#include <tether/tether.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: client [--stream] [--timeout-ms N] [--retries N] http://host[:port][/path][?query]\n"
               "  e.g. client http://127.0.0.1:8080/hello\n");
  return 1;
}

bool number_arg(int argc, char** argv, int& i, long& out) {
  if (i + 1 >= argc) return false;
  char* end = nullptr;
  out = std::strtol(argv[++i], &end, 10);
  return end && *end == '\0' && out >= 0;
}

void write_body(tether::buffer_ref body) {
  // An evbuffer is a chain of blocks: write each without copying it into one string.
  while (!body.empty()) {
    const std::string_view piece = body.linearize(std::min<std::size_t>(body.size(), 64 * 1024));
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    body.drain(piece.size());
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool stream = false;
  long timeout_ms = 10000;
  long retries = 0;
  const char* url = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--stream") stream = true;
    else if (a == "--timeout-ms") {
      if (!number_arg(argc, argv, i, timeout_ms) || timeout_ms == 0) return usage();
    } else if (a == "--retries") {
      if (!number_arg(argc, argv, i, retries)) return usage();
    } else if (!url && !a.starts_with("-")) url = argv[i];
    else return usage();
  }
  if (!url) return usage();

  const auto target = tether::parse_http_url(url);
  if (!target) {
    std::fprintf(stderr, "client: %s: %s\n", url, target.error().message().c_str());
    return 1;
  }

  tether::client_options options;
  options.connect_timeout = options.read_timeout = options.write_timeout = std::chrono::milliseconds(timeout_ms);
  options.retries = static_cast<unsigned>(retries);
  options.initial_retry_delay = std::chrono::milliseconds(200);

  tether::event_loop loop;
  tether::client_connection conn{loop, target->host, target->port, options};
  int exit_code = 2;
  bool status_shown = false;
  auto show_status = [&](const tether::client_response& res) {
    if (status_shown) return;
    status_shown = true;
    std::fprintf(stderr, "%d %.*s\n", res.status(), static_cast<int>(res.reason().size()), res.reason().data());
  };

  auto done = [&](std::error_code ec, const tether::client_response& res) {
    if (ec) {
      std::fprintf(stderr, "client: %s: %s\n", url, ec.message().c_str());
    } else {
      show_status(res);
      write_body(res.body());  // empty with --stream: it was written as it came
      exit_code = res.status() >= 200 && res.status() < 300 ? 0 : 3;
    }
    std::fflush(stdout);
    loop.stop();  // the connection stays open for keep-alive; we are done with it
  };
  auto on_chunk = [&](const tether::client_response& res, tether::buffer_ref chunk) {
    show_status(res);
    write_body(chunk);
    std::fflush(stdout);
  };

  tether::client_request req{tether::method::get, target->target};
  (void)req.headers().add("User-Agent", "tether-example-client");
  auto sent = stream ? conn.request(std::move(req), on_chunk, done) : conn.request(std::move(req), done);
  if (!sent) {
    std::fprintf(stderr, "client: %s: %s\n", url, sent.error().message().c_str());
    return 2;
  }
  // SIGTERM or Ctrl-C (the way to end `--stream`): stop reading and exit with status 0.
  struct stop_reading {
    tether::event_loop* loop;
    int* exit_code;
    void drain(std::chrono::milliseconds) noexcept {
      *exit_code = 0;
      loop->stop();
    }
  } stopper{&loop, &exit_code};
  tether::drain_on_signals stop{loop, stopper, std::chrono::milliseconds(0)};
  loop.run();
  return exit_code;
}
