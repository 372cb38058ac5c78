// Memory policies: pooled_memory's blocks, caches and bounds, and a real evhttp server and
// client running with the pool installed. Installing is process-wide, so this binary is
// its own: the pool is installed when the test run starts (a Catch2 listener, the tests'
// "first in main"), before any test creates a loop, whatever tests are selected.
// tests/unit/memory_policy_late_test.cpp is the program that installs too late.
#include <tether/memory_policy.hpp>
#include <tether/tether.hpp>

#include "../support/loopback.hpp"

#define CATCH_CONFIG_EXTERNAL_INTERFACES  // for the listener that installs the pool
#include <catch2/catch.hpp>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using installed_pool = tether::pooled_memory<>;

// What the listener saw when the run started, before any test made libevent allocate.
struct first_install {
  std::error_code first;         // installing the pool
  bool used_after_first = true;  // whether libevent counted as in use right after
  std::error_code again;         // installing the same pool a second time
};

const first_install& install_result() {
  static const first_install r = [] {
    first_install i;
    i.first = tether::install_memory_policy<installed_pool>();
    i.used_after_first = tether::detail::libevent_process.used.load();
    i.again = tether::install_memory_policy<installed_pool>();
    return i;
  }();
  return r;
}

struct install_first : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testRunStarting(const Catch::TestRunInfo&) override { (void)install_result(); }
};

// malloc underneath, counting what the pool asks of it. One tag per test, so that each
// test has a pool (and thread caches) of its own.
template <int Tag>
struct counting_upstream {
  static inline std::atomic<long> allocations{0};
  static inline std::atomic<long> deallocations{0};
  static inline std::atomic<std::size_t> last_size{0};
  static void* allocate(std::size_t n) noexcept {
    ++allocations;
    last_size = n;
    return std::malloc(n);
  }
  static void* reallocate(void* p, std::size_t n) noexcept {
    last_size = n;
    return std::realloc(p, n);
  }
  static void deallocate(void* p) noexcept {
    if (p != nullptr) ++deallocations;
    std::free(p);
  }
  static long live() noexcept { return allocations - deallocations; }
};

bool aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % alignof(std::max_align_t) == 0;
}

// Fills n bytes with a pattern that depends on `seed` and each byte's position.
void fill(void* p, std::size_t n, unsigned seed) {
  auto* b = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(seed * 31 + i * 7);
}
bool holds(const void* p, std::size_t n, unsigned seed) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] != static_cast<unsigned char>(seed * 31 + i * 7)) return false;
  return true;
}

}  // namespace

CATCH_REGISTER_LISTENER(install_first)

// ----- installing -----------------------------------------------------------------

TEST_CASE("install_memory_policy: first in main, the pool is installed once for the process",
          "[memory][install]") {
  REQUIRE_FALSE(install_result().first);
  // Before libevent is used (the listener installed before any test ran), installing the
  // same policy again changes nothing and succeeds.
  CHECK_FALSE(install_result().used_after_first);
  CHECK_FALSE(install_result().again);
  // A different policy never replaces it: blocks libevent holds must go back to the pool.
  const auto other = tether::install_memory_policy<tether::pooled_memory<4096>>();
  CHECK(other == tether::errc::memory_policy_conflict);
  CHECK(tether::install_memory_policy<tether::system_memory>() == tether::errc::memory_policy_conflict);
  CHECK(other.message() == "a different memory policy is already installed");
}

TEST_CASE("install_memory_policy: once an event_loop exists, even the installed policy is refused",
          "[memory][install]") {
  REQUIRE_FALSE(install_result().first);
  tether::event_loop loop;
  const auto again = tether::install_memory_policy<installed_pool>();
  CHECK(again == tether::errc::libevent_in_use);
  CHECK(again.message().find("first in main") != std::string::npos);
  CHECK(tether::install_memory_policy<tether::system_memory>() == tether::errc::memory_policy_conflict);
}

// ----- blocks ---------------------------------------------------------------------

TEST_CASE("pooled_memory: every size up to past the largest class is aligned, usable and distinct",
          "[memory][pool]") {
  using pool = tether::pooled_memory<1 << 20, 1024, counting_upstream<1>>;
  std::vector<void*> blocks;
  for (std::size_t n = 0; n <= 1100; ++n) {
    void* p = pool::allocate(n);
    REQUIRE(p != nullptr);
    CHECK(aligned(p));
    fill(p, n, static_cast<unsigned>(n));
    blocks.push_back(p);
  }
  for (std::size_t n = 0; n < blocks.size(); ++n) CHECK(holds(blocks[n], n, static_cast<unsigned>(n)));
  for (void* p : blocks) pool::deallocate(p);
  pool::deallocate(nullptr);  // free(NULL): nothing
  pool::release_thread_cache();
  CHECK(counting_upstream<1>::live() == 0);
}

TEST_CASE("pooled_memory: a size gets the smallest 16-byte class that holds it; larger sizes and 0 go upstream",
          "[memory][pool]") {
  using up = counting_upstream<2>;
  using pool = tether::pooled_memory<1 << 20, 1024, up>;
  STATIC_REQUIRE(pool::class_count == 64);
  STATIC_REQUIRE(pool::header_size == 16);
  const auto upstream_size = [](std::size_t n) {
    void* p = pool::allocate(n);
    const std::size_t asked = up::last_size;
    pool::deallocate(p);
    pool::release_thread_cache();  // so that the next allocation of the class asks upstream again
    return asked;
  };
  CHECK(upstream_size(1) == 16 + 16);
  CHECK(upstream_size(16) == 16 + 16);
  CHECK(upstream_size(17) == 32 + 16);
  CHECK(upstream_size(32) == 32 + 16);
  CHECK(upstream_size(33) == 48 + 16);
  CHECK(upstream_size(1008) == 1008 + 16);
  CHECK(upstream_size(1009) == 1024 + 16);
  CHECK(upstream_size(1024) == 1024 + 16);
  CHECK(upstream_size(1025) == 1025 + 16);  // the large path: exactly what was asked, plus the header
  CHECK(upstream_size(0) == 16);            // malloc(0): a unique block, freeable
  CHECK(up::live() == 0);
}

TEST_CASE("pooled_memory: a freed block is reused by the next allocation of its class on the same thread",
          "[memory][pool]") {
  using up = counting_upstream<3>;
  using pool = tether::pooled_memory<1 << 20, 1024, up>;
  void* a = pool::allocate(100);
  pool::deallocate(a);
  const long before = up::allocations;
  void* b = pool::allocate(97);  // same class (97..112)
  CHECK(b == a);
  CHECK(up::allocations == before);
  void* c = pool::allocate(200);  // another class: a new block
  CHECK(c != a);
  CHECK(up::allocations == before + 1);
  pool::deallocate(b);
  pool::deallocate(c);
  // Large blocks are never cached.
  const long freed = up::deallocations;
  pool::deallocate(pool::allocate(5000));
  CHECK(up::deallocations == freed + 1);
  pool::release_thread_cache();
  CHECK(up::live() == 0);
}

#ifdef TETHER_DETAIL_ASAN
TEST_CASE("pooled_memory under ASan: the header, a class's slack and cached blocks are unaddressable",
          "[memory][asan]") {
  using pool = tether::pooled_memory<1 << 20, 1024, counting_upstream<11>>;
  auto* p = static_cast<char*>(pool::allocate(20));  // the 32-byte class
  CHECK_FALSE(__asan_address_is_poisoned(p));
  CHECK_FALSE(__asan_address_is_poisoned(p + 19));
  CHECK(__asan_address_is_poisoned(p + 20));  // slack of the class: an overflow ASan reports
  CHECK(__asan_address_is_poisoned(p + 31));
  CHECK(__asan_address_is_poisoned(p - 1));   // the pool's header
  CHECK(__asan_address_is_poisoned(p - 16));
  p = static_cast<char*>(pool::reallocate(p, 30));  // grows within the class
  CHECK_FALSE(__asan_address_is_poisoned(p + 29));
  CHECK(__asan_address_is_poisoned(p + 30));
  pool::deallocate(p);  // cached: a use after free is reported
  CHECK(__asan_address_is_poisoned(p));
  CHECK(__asan_address_is_poisoned(p + 29));
  auto* q = static_cast<char*>(pool::allocate(24));  // the same block again
  CHECK(q == p);
  CHECK_FALSE(__asan_address_is_poisoned(q + 23));
  CHECK(__asan_address_is_poisoned(q + 24));
  pool::deallocate(q);
  pool::release_thread_cache();
  CHECK(counting_upstream<11>::live() == 0);
}
#endif

// ----- realloc --------------------------------------------------------------------

TEST_CASE("pooled_memory: realloc keeps the contents across every class and to and from the large path",
          "[memory][realloc]") {
  using up = counting_upstream<4>;
  using pool = tether::pooled_memory<1 << 20, 1024, up>;
  SECTION("growing one byte at a time, then shrinking") {
    void* p = pool::reallocate(nullptr, 1);  // realloc(NULL, n) allocates
    REQUIRE(p != nullptr);
    fill(p, 1, 9);
    for (std::size_t n = 2; n <= 3000; ++n) {
      p = pool::reallocate(p, n);
      REQUIRE(p != nullptr);
      REQUIRE(aligned(p));
      REQUIRE(holds(p, n - 1, 9));
      fill(p, n, 9);
    }
    for (std::size_t n = 2999; n >= 1; --n) {
      p = pool::reallocate(p, n);
      REQUIRE(p != nullptr);
      REQUIRE(holds(p, n, 9));
    }
    pool::deallocate(p);
  }
  SECTION("jumps between a small class, another class, the large path and back") {
    const std::size_t sizes[] = {10, 1024, 1025, 70000, 16, 5000, 17, 1000, 100000, 1};
    std::size_t have = 8;
    void* p = pool::allocate(have);
    fill(p, have, 4);
    for (std::size_t n : sizes) {
      p = pool::reallocate(p, n);
      REQUIRE(p != nullptr);
      REQUIRE(holds(p, have < n ? have : n, 4));
      fill(p, n, 4);
      have = n;
    }
    pool::deallocate(p);
  }
  SECTION("within its class the block stays where it is") {
    void* p = pool::allocate(20);
    fill(p, 20, 2);
    CHECK(pool::reallocate(p, 32) == p);
    CHECK(pool::reallocate(p, 17) == p);
    CHECK(holds(p, 17, 2));
    pool::deallocate(p);
  }
  SECTION("realloc(p, 0) frees p and returns null, as glibc does") {
    pool::release_thread_cache();
    void* p = pool::allocate(40);
    CHECK(pool::reallocate(p, 0) == nullptr);
    CHECK(pool::cached_bytes() == 48 + 16);  // p went back to this thread's cache
    void* big = pool::allocate(4000);
    const long freed = up::deallocations;
    CHECK(pool::reallocate(big, 0) == nullptr);
    CHECK(up::deallocations == freed + 1);
  }
  pool::release_thread_cache();
  CHECK(up::live() == 0);
}

// ----- the bound ------------------------------------------------------------------

TEST_CASE("pooled_memory: a thread caches at most MaxCachedBytesPerThread; the rest goes back at once",
          "[memory][bound]") {
  using up = counting_upstream<5>;
  using pool = tether::pooled_memory<1024, 256, up>;  // 1 KiB: 32 blocks of the 16-byte class (32 bytes each)
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(pool::allocate(16));
  CHECK(up::live() == 100);
  for (void* p : blocks) pool::deallocate(p);
  CHECK(pool::cached_bytes() == 1024);
  CHECK(up::live() == 32);

  // Any mix of classes counts against the same budget.
  void* big = pool::allocate(256);  // a new 272-byte block: no 256-byte block is cached
  pool::deallocate(big);            // does not fit any more: back upstream
  CHECK(pool::cached_bytes() == 1024);
  CHECK(up::live() == 32);

  // The cache serves the next 32 allocations; only the rest reach upstream.
  blocks.clear();
  const long before = up::allocations;
  for (int i = 0; i < 100; ++i) blocks.push_back(pool::allocate(10));
  CHECK(up::allocations == before + 68);
  CHECK(pool::cached_bytes() == 0);
  for (void* p : blocks) pool::deallocate(p);

  pool::release_thread_cache();
  CHECK(pool::cached_bytes() == 0);
  CHECK(up::live() == 0);
}

TEST_CASE("pooled_memory<0> caches nothing", "[memory][bound]") {
  using up = counting_upstream<6>;
  using pool = tether::pooled_memory<0, 1024, up>;
  for (int i = 0; i < 10; ++i) pool::deallocate(pool::allocate(24));
  CHECK(up::allocations == 10);
  CHECK(up::live() == 0);
  CHECK(pool::cached_bytes() == 0);
}

// ----- threads --------------------------------------------------------------------

TEST_CASE("pooled_memory: a thread's cache is released when the thread ends", "[memory][threads]") {
  using up = counting_upstream<7>;
  using pool = tether::pooled_memory<1 << 20, 1024, up>;
  std::size_t cached_in_thread = 0;
  std::thread t([&] {
    std::vector<void*> blocks;
    for (std::size_t n = 1; n <= 1024; n += 37) blocks.push_back(pool::allocate(n));
    for (void* p : blocks) pool::deallocate(p);
    cached_in_thread = pool::cached_bytes();
  });
  t.join();
  CHECK(cached_in_thread > 0);
  CHECK(up::allocations > 0);
  CHECK(up::live() == 0);
  CHECK(pool::cached_bytes() == 0);  // this thread's cache is its own
}

TEST_CASE("pooled_memory: a block may be freed on another thread than the one that allocated it",
          "[memory][threads]") {
  using up = counting_upstream<8>;
  using pool = tether::pooled_memory<1 << 20, 1024, up>;
  std::vector<void*> blocks;
  std::thread producer([&] {
    for (unsigned i = 0; i < 64; ++i) {
      void* p = pool::allocate(8 + i * 15);
      fill(p, 8 + i * 15, i);
      blocks.push_back(p);
    }
  });
  producer.join();
  CHECK(up::live() == 64);

  std::size_t reused = 0;
  std::thread consumer([&] {
    for (unsigned i = 0; i < 64; ++i) {
      CHECK(holds(blocks[i], 8 + i * 15, i));
      pool::deallocate(blocks[i]);  // into this thread's cache
    }
    const long before = up::allocations;
    for (unsigned i = 0; i < 64; ++i) blocks[i] = pool::allocate(8 + i * 15);
    reused = static_cast<std::size_t>(64 - (up::allocations - before));
    for (void* p : blocks) pool::deallocate(p);
  });
  consumer.join();
  CHECK(reused == 64);
  CHECK(up::live() == 0);

  // Blocks of a thread that has ended are freed here like any others.
  std::thread gone([&] {
    for (auto& p : blocks) p = pool::allocate(50);
  });
  gone.join();
  for (void* p : blocks) pool::deallocate(p);
  pool::release_thread_cache();
  CHECK(up::live() == 0);
}

TEST_CASE("pooled_memory: blocks freed while a thread ends, after its cache was released, go upstream",
          "[memory][threads]") {
  using up = counting_upstream<9>;
  using pool = tether::pooled_memory<1 << 20, 1024, up>;
  // Thread-local objects are destroyed in the reverse order of their construction: this
  // one is built before the pool registers its exit hook, so it is destroyed after it.
  struct holder {
    void* block = nullptr;
    ~holder() { pool::deallocate(block); }
  };
  std::thread t([] {
    static thread_local holder late;
    pool::deallocate(pool::allocate(30));  // the first free registers the pool's exit hook
    late.block = pool::allocate(30);
  });
  t.join();
  CHECK(up::live() == 0);
}

TEST_CASE("pooled_memory: concurrent threads allocate and free without locks or interference",
          "[memory][threads]") {
  using up = counting_upstream<10>;
  using pool = tether::pooled_memory<64 * 1024, 1024, up>;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; ++t) {
    threads.emplace_back([&bad, t] {
      struct block {
        void* p;
        std::size_t n;
        unsigned seed;
      };
      std::vector<block> live;
      for (unsigned i = 0; i < 20000; ++i) {
        const std::size_t n = (i * 7 + t * 13) % 1200;
        void* p = pool::allocate(n);
        fill(p, n, t + i);
        live.push_back({p, n, t + i});
        if (live.size() > 50) {
          const std::size_t victim = (i * 31) % live.size();
          if (!holds(live[victim].p, live[victim].n, live[victim].seed)) ++bad;
          pool::deallocate(live[victim].p);
          live[victim] = live.back();
          live.pop_back();
        }
      }
      for (const block& b : live) pool::deallocate(b.p);
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad == 0);
  CHECK(up::live() == 0);
}

// ----- libevent through the pool --------------------------------------------------

TEST_CASE("pooled_memory installed: evhttp serves a tether server and an evhttp client through the pool",
          "[memory][roundtrip]") {
  REQUIRE_FALSE(install_result().first);
  tether::event_loop loop;
  tether::server srv{loop};
  std::size_t body_bytes = 0;
  (void)srv.route("/echo-size", [&](tether::request& req) {
    body_bytes = req.body().size();
    (void)req.output_headers().add("X-Size", std::to_string(body_bytes));
    (void)req.reply(200, std::string(body_bytes, 'r'));
  });
  srv.fallback([](tether::request& req) {
    (void)req.output_headers().add("Content-Type", "text/plain");
    (void)req.reply(200, "hello");
  });
  const auto port = *srv.bind("127.0.0.1", 0);

  installed_pool::release_thread_cache();
  SECTION("keep-alive requests from a socket client, with headers, a large body and a large reply") {
    tt::client c(port);
    for (int i = 0; i < 50; ++i) {
      c.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: t\r\nAccept: */*\r\nX-A: " + std::string(40, 'a') +
             "\r\n\r\n");
      REQUIRE(c.wait_count(loop, "\r\n\r\nhello", static_cast<std::size_t>(i + 1)));
    }
    // libevent freed every request's headers and buffers into this thread's cache.
    CHECK(installed_pool::cached_bytes() > 0);

    const std::string body(300000, 'b');  // evbuffer chains far beyond the largest class
    c.clear();
    c.send("POST /echo-size HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
           body);
    REQUIRE(c.wait_for(loop, "X-Size: 300000", 5000ms));
    REQUIRE(tt::run_until(loop, [&] {
      c.pump();
      const auto eoh = c.data().find("\r\n\r\n");
      return eoh != std::string::npos && c.data().size() >= eoh + 4 + body.size();
    }, 5000ms));
    CHECK(body_bytes == body.size());
    CHECK(tt::first_body(c.data()) == std::string(body.size(), 'r'));
  }
  SECTION("an evhttp client (evhttp_connection, evhttp_make_request) on the same loop") {
    evhttp_connection* conn = evhttp_connection_base_new(loop.native(), nullptr, "127.0.0.1", port);
    REQUIRE(conn != nullptr);
    struct outcome {
      int status = 0;
      std::string body;
      int done = 0;
    } got;
    for (int i = 0; i < 20; ++i) {
      evhttp_request* req = evhttp_request_new(
          [](evhttp_request* r, void* arg) {
            auto* o = static_cast<outcome*>(arg);
            ++o->done;
            if (r == nullptr) return;
            o->status = evhttp_request_get_response_code(r);
            evbuffer* in = evhttp_request_get_input_buffer(r);
            o->body.assign(reinterpret_cast<const char*>(evbuffer_pullup(in, -1)), evbuffer_get_length(in));
          },
          &got);
      REQUIRE(req != nullptr);
      evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
      REQUIRE(evhttp_make_request(conn, req, EVHTTP_REQ_GET, "/anything?x=1") == 0);
      REQUIRE(tt::run_until(loop, [&] { return got.done == i + 1; }));
      CHECK(got.status == 200);
      CHECK(got.body == "hello");
    }
    evhttp_connection_free(conn);
  }
}
