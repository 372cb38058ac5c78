// bench/mem_probe.cpp - what a memory policy does to a plain evhttp "hello" server.
//
//   mem_probe serve POLICY   serves on 127.0.0.1 (an ephemeral port, printed as "port N"
//                            on stdout) until SIGTERM or SIGINT, then frees everything
//                            and exits 0. POLICY: system, pooled (the default
//                            pooled_memory<>), pooled512, pooled2k (MaxPooledSize 512 or
//                            2048), pooled0 (caches nothing), sizes (malloc, and prints a
//                            histogram of libevent's allocation sizes at exit), counted
//                            (pooled_memory<>, and prints how often it called malloc,
//                            realloc and free).
//
// The server is the hand-written C server of the performance baseline (evhttp_set_gencb,
// one header, evbuffer_add, evhttp_send_reply); the only tether code in it is the memory
// policy, installed first in main. bench/mem_probe.sh runs it under callgrind, driven by
// bench/client.c (the client bench/run uses), and prints instructions per request.
#include <tether/memory_policy.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

// malloc, counting libevent's requests by size (sizes above 4 KiB share the last slot).
struct size_histogram {
  static inline std::array<std::atomic<unsigned long>, 4098> counts{};
  static inline std::atomic<unsigned long> reallocs{0};
  static void count(std::size_t n) noexcept { ++counts[n <= 4096 ? n : 4097]; }
  static void* allocate(std::size_t n) noexcept {
    count(n);
    return std::malloc(n);
  }
  static void* reallocate(void* p, std::size_t n) noexcept {
    ++reallocs;
    return std::realloc(p, n);
  }
  static void deallocate(void* p) noexcept { std::free(p); }
  static void print() {
    unsigned long total = 0;
    for (std::size_t n = 0; n < counts.size(); ++n) {
      if (counts[n] == 0) continue;
      total += counts[n];
      if (n <= 4096) std::fprintf(stderr, "size %4zu: %lu\n", n, counts[n].load());
      else std::fprintf(stderr, "size >4096: %lu\n", counts[n].load());
    }
    std::fprintf(stderr, "allocations %lu, reallocations %lu\n", total, reallocs.load());
  }
};

// malloc, counting what pooled_memory asks of it.
struct counted_malloc {
  static inline std::atomic<unsigned long> allocations{0}, reallocations{0}, frees{0};
  static void* allocate(std::size_t n) noexcept {
    ++allocations;
    return std::malloc(n);
  }
  static void* reallocate(void* p, std::size_t n) noexcept {
    ++reallocations;
    return std::realloc(p, n);
  }
  static void deallocate(void* p) noexcept {
    ++frees;
    std::free(p);
  }
  static void print() {
    std::fprintf(stderr, "upstream: %lu malloc, %lu realloc, %lu free\n", allocations.load(), reallocations.load(),
                 frees.load());
  }
};
using counted_pool = tether::pooled_memory<256 * 1024, 1024, counted_malloc>;

void on_request(evhttp_request* req, void*) {
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
  evbuffer_add(evhttp_request_get_output_buffer(req), "hello", 5);
  evhttp_send_reply(req, HTTP_OK, "OK", nullptr);
}

void on_signal(evutil_socket_t, short, void* base) { event_base_loopbreak(static_cast<event_base*>(base)); }

std::error_code install(std::string_view policy) {
  if (policy == "system") return tether::install_memory_policy<tether::system_memory>();
  if (policy == "pooled") return tether::install_memory_policy<tether::pooled_memory<>>();
  if (policy == "pooled512") return tether::install_memory_policy<tether::pooled_memory<256 * 1024, 512>>();
  if (policy == "pooled2k") return tether::install_memory_policy<tether::pooled_memory<256 * 1024, 2048>>();
  if (policy == "pooled0") return tether::install_memory_policy<tether::pooled_memory<0>>();
  if (policy == "sizes") return tether::install_memory_policy<size_histogram>();
  if (policy == "counted") return tether::install_memory_policy<counted_pool>();
  return std::make_error_code(std::errc::invalid_argument);
}

int serve(std::string_view policy) {
  // First in main: before anything allocates through libevent.
  if (auto ec = install(policy)) {
    std::fprintf(stderr, "mem_probe: cannot install '%.*s': %s\n", static_cast<int>(policy.size()), policy.data(),
                 ec.message().c_str());
    return 2;
  }
  event_base* base = event_base_new();
  evhttp* http = evhttp_new(base);
  evhttp_set_gencb(http, on_request, nullptr);
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
  if (base == nullptr || http == nullptr || bound == nullptr) {
    std::fprintf(stderr, "mem_probe: cannot listen\n");
    return 1;
  }
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  ::getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&sa), &len);
  std::printf("port %u\n", static_cast<unsigned>(ntohs(sa.sin_port)));
  std::fflush(stdout);
  event* term = evsignal_new(base, SIGTERM, on_signal, base);
  event* intr = evsignal_new(base, SIGINT, on_signal, base);
  event_add(term, nullptr);
  event_add(intr, nullptr);
  event_base_dispatch(base);
  event_free(term);
  event_free(intr);
  evhttp_free(http);
  event_base_free(base);
  if (policy == "sizes") size_histogram::print();
  if (policy == "counted") {
    counted_pool::release_thread_cache();
    counted_malloc::print();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  if (mode == "serve" && argc == 3) return serve(argv[2]);
  std::fprintf(stderr,
               "usage: mem_probe serve system|pooled|pooled512|pooled2k|pooled0|sizes|counted\n");
  return 2;
}
