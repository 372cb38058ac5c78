// bench/hello_variants.cpp - examples/hello.cpp with each fast policy switchable on its
// own, so that bench/run can report which policy buys what.
//
// Usage: hello_variants PORT [changelist] [date] [pool]
#include <tether/tether.hpp>

#include <cstdio>
#include <string_view>

int main(int argc, char** argv) {
  const auto port = tether::parse_port(argc > 1 ? argv[1] : "");
  if (!port) {
    std::puts("usage: hello_variants PORT [changelist] [date] [pool]");
    return 2;
  }
  bool changelist = false, date = false, pool = false;
  for (int i = 2; i < argc; ++i) {
    const std::string_view a{argv[i]};
    if (a == "changelist") changelist = true;
    else if (a == "date") date = true;
    else if (a == "pool") pool = true;
    else {
      std::fprintf(stderr, "hello_variants: unknown policy %s\n", argv[i]);
      return 2;
    }
  }

  if (pool && tether::install_memory_policy<tether::pooled_memory<>>()) return 1;
  tether::event_loop loop{tether::loop_options{.epoll_changelist = changelist}};
  tether::server server{loop};
  server.cache_date_header(date);
  server.fallback([](tether::request& req) {
    (void)req.output_headers().add("Content-Type", "text/plain");
    (void)req.reply(200, "hello");
  });
  if (!server.bind("127.0.0.1", *port)) return 1;
  loop.run();
}
