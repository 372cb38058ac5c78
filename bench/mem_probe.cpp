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
//   mem_probe client PORT N  one keep-alive connection, N sequential
//                            "GET / HTTP/1.1" requests with Host, User-Agent and Accept,
//                            each reply read in full and checked (200, body "hello").
//
// The server is the hand-written C server of the performance baseline (evhttp_set_gencb,
// one header, evbuffer_add, evhttp_send_reply); the only tether code in it is the memory
// policy, installed first in main. bench/mem_probe.sh runs it under callgrind and prints
// instructions per request.
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

int client(unsigned short port, long n) {
  static constexpr std::string_view request =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: mem_probe\r\nAccept: */*\r\n\r\n";
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = -1;
  for (int attempt = 0; attempt < 600; ++attempt) {  // the server may still be starting under valgrind
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) break;
    if (fd >= 0) ::close(fd);
    fd = -1;
    ::usleep(100000);
  }
  if (fd < 0) {
    std::fprintf(stderr, "mem_probe client: cannot connect\n");
    return 1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string in;
  char buf[16384];
  for (long i = 0; i < n; ++i) {
    if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) return 1;
    std::size_t end = 0;
    std::size_t body = std::string::npos;
    for (;;) {
      const auto eoh = in.find("\r\n\r\n");
      if (eoh != std::string::npos) {
        const auto cl = in.find("Content-Length: ");
        if (cl == std::string::npos || cl > eoh || in.compare(9, 3, "200") != 0) {
          std::fprintf(stderr, "mem_probe client: bad reply at %ld\n", i);
          return 1;
        }
        body = eoh + 4;
        end = body + std::strtoul(in.c_str() + cl + 16, nullptr, 10);
        if (in.size() >= end) break;
      }
      const ssize_t r = ::read(fd, buf, sizeof buf);
      if (r <= 0) {
        std::fprintf(stderr, "mem_probe client: read failed at %ld\n", i);
        return 1;
      }
      in.append(buf, static_cast<std::size_t>(r));
    }
    if (in.compare(body, end - body, "hello") != 0) {
      std::fprintf(stderr, "mem_probe client: bad body at %ld\n", i);
      return 1;
    }
    in.erase(0, end);
  }
  ::close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  if (mode == "serve" && argc == 3) return serve(argv[2]);
  if (mode == "client" && argc == 4)
    return client(static_cast<unsigned short>(std::atoi(argv[2])), std::atol(argv[3]));
  std::fprintf(stderr,
               "usage: mem_probe serve system|pooled|pooled512|pooled2k|pooled0|sizes|counted\n"
               "       mem_probe client PORT N\n");
  return 2;
}
