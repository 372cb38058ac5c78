// reference_buffer and file_buffer do not copy: counted with libevent's own allocator
// hook, installed before any libevent object exists (this binary only).
#include <tether/tether.hpp>

#include "../support/engines.hpp"
#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <event2/event.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <fstream>
#include <optional>
#include <string>

using namespace std::chrono_literals;

namespace {

std::atomic<std::size_t> libevent_bytes{0};  // bytes ever requested by libevent

void* counting_malloc(std::size_t n) {
  libevent_bytes += n;
  return std::malloc(n);
}
void* counting_realloc(void* p, std::size_t n) {
  libevent_bytes += n;
  return std::realloc(p, n);
}
void counting_free(void* p) { std::free(p); }

// The lean engine does not allocate through libevent: its output is the process's heap,
// counted here in bytes (this binary only; blind under valgrind, whose operator new
// serves libstdc++).
std::atomic<std::size_t> heap_bytes{0};

std::size_t heap_allocated_while(auto&& f) {
  const std::size_t before = heap_bytes;
  f();
  return heap_bytes - before;
}

const bool installed = [] {
  event_set_mem_functions(&counting_malloc, &counting_realloc, &counting_free);
  return true;
}();

constexpr std::size_t big = 1024 * 1024;

template <class Policy, class Engine = tether::evhttp_engine>
struct server_fixture {
  using server_type = tether::basic_server<tether::eager_close<>, Policy, tether::close_function<>, Engine>;
  tether::event_loop loop;
  server_type srv{loop};
  std::uint16_t port = 0;
};

std::size_t allocated_while(auto&& f) {
  const std::size_t before = libevent_bytes;
  f();
  return libevent_bytes - before;
}

std::string temp_file(const std::string& content) {
  char name[] = "/tmp/tether-zero-copy-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::close(fd);
  return name;
}

}  // namespace

void* operator new(std::size_t n) {
  heap_bytes += n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc{};
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  heap_bytes += n;
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return ::operator new(n, std::nothrow); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

TEST_CASE("zero copy: libevent allocates through the counting hook", "[zero_copy]") {
  REQUIRE(installed);
  const std::size_t before = libevent_bytes;
  tether::event_loop loop;  // event_base_new allocates through libevent's allocator
  CHECK(libevent_bytes > before);
}

TEST_CASE("copy_buffer copies a 1 MiB body into libevent's heap (the baseline)", "[zero_copy]") {
  server_fixture<tether::copy_buffer> f;
  const tether::shared_bytes body(std::string(big, 'a'));
  f.srv.fallback([&](auto& req) { (void)req.reply(200, body); });
  f.port = *f.srv.bind("127.0.0.1", 0);
  tt::client c(f.port);
  const auto bytes = allocated_while([&] {
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] {
      c.pump();
      return c.data().size() >= big;
    }, 5000ms));
  });
  CHECK(bytes >= big);
}

TEST_CASE("reference_buffer sends shared_bytes without copying and releases them when written",
          "[zero_copy][reference]") {
  server_fixture<tether::reference_buffer> f;
  const tether::shared_bytes body(std::string(big, 'b'));
  tether::request_handle unused;
  (void)f.srv.route("/whole", [&](auto& req) { (void)req.reply(200, body); });
  (void)f.srv.route("/chunks", [&](auto& req) {
    (void)req.start(200);
    for (int i = 0; i < 4; ++i) (void)req.send_chunk(body);
    (void)req.send_chunk(tether::static_bytes("static-tail"));
    (void)req.end();
  });
  f.port = *f.srv.bind("127.0.0.1", 0);
  tt::client c(f.port);
  const auto bytes = allocated_while([&] {
    c.send("GET /whole HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] {
      c.pump();
      return c.data().size() >= big;
    }, 5000ms));
  });
  CHECK(bytes > 0);  // the window saw the request's own allocations
  CHECK(bytes < 64 * 1024);
  REQUIRE(tt::run_until(f.loop, [&] { return body.use_count() == 1; }));  // libevent let go

  c.clear();
  const auto chunk_bytes = allocated_while([&] {
    c.send("GET /chunks HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_for(f.loop, "static-tail", 5000ms));
  });
  CHECK(chunk_bytes > 0);
  CHECK(chunk_bytes < 64 * 1024);
  CHECK(c.occurrences(std::string(1000, 'b')) >= 4 * 1000);
  REQUIRE(tt::run_until(f.loop, [&] { return body.use_count() == 1; }));
}

TEST_CASE("reference_buffer copies a payload of at most 960 bytes: one chain instead of two", "[zero_copy][reference]") {
  using stream_type = tether::basic_stream<server_fixture<tether::reference_buffer>::server_type::config>;
  server_fixture<tether::reference_buffer> f;
  const tether::shared_bytes small(std::string(40, 's'));
  const tether::shared_bytes limit(std::string(960, 'l'));
  const tether::shared_bytes large(std::string(961, 'L'));
  std::optional<stream_type> s;
  f.srv.fallback([&](auto& req) { s.emplace(std::move(*stream_type::start(req))); });
  f.port = *f.srv.bind("127.0.0.1", 0);
  tt::client c(f.port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] { return s.has_value(); }));
  REQUIRE(c.wait_for(f.loop, "\r\n\r\n"));

  // A chunk for an idle socket goes straight to it (detail/direct_write.hpp), neither
  // copied nor referenced; the policy decides for chunks that wait behind others. So the
  // client does not read, and a filler larger than the kernel takes keeps the output busy.
  const tether::shared_bytes filler(std::string(12u << 20, 'f'));
  REQUIRE_FALSE(s->write(filler));
  REQUIRE(s->queued_bytes() > 0);

  // libevent's chains are at least 1 KiB: the chunk-size line takes one, the copy one.
  const auto small_bytes = allocated_while([&] { REQUIRE_FALSE(s->write(small)); });
  CHECK(small_bytes > 0);  // the copy's chain
  CHECK(small_bytes <= 2 * 1024);
  CHECK(small.use_count() == 1);  // copied: libevent holds no reference
  REQUIRE_FALSE(s->write(limit));
  CHECK(limit.use_count() == 1);
  // Above the limit: by reference (plus the 16-byte tail), kept until written.
  const auto large_bytes = allocated_while([&] { REQUIRE_FALSE(s->write(large)); });
  CHECK(large.use_count() == 2);
  CHECK(large_bytes > 0);
  CHECK(large_bytes <= 3 * 1024);
  REQUIRE(c.wait_for(f.loop, std::string(961, 'L'), 10000ms));
  REQUIRE(tt::run_until(f.loop, [&] { return large.use_count() == 1; }));
  CHECK(c.occurrences(std::string(40, 's')) == 1);
  CHECK(c.occurrences(std::string(960, 'l')) == 1);
}

TEST_CASE("reference_buffer releases shared_bytes when the client vanishes mid-write", "[zero_copy][reference]") {
  server_fixture<tether::reference_buffer> f;
  const tether::shared_bytes body(std::string(8 * big, 'r'));
  bool handled = false;
  f.srv.fallback([&](auto& req) {
    (void)req.reply(200, body);
    handled = true;
  });
  f.port = *f.srv.bind("127.0.0.1", 0);
  {
    tt::client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return handled; }));
    c.reset();
  }
  REQUIRE(tt::run_until(f.loop, [&] { return body.use_count() == 1; }));
}

TEST_CASE("file_buffer serves files and ranges by sendfile, outside the heap", "[zero_copy][file]") {
  std::string content(big, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
  const std::string path = temp_file(content);
  const std::size_t fds_before = tt::open_fds();
  {
    server_fixture<tether::file_buffer> f;
    auto file = tether::file::open(path);
    REQUIRE(file);
    CHECK(file->size() == big);
    (void)f.srv.route("/whole", [&](auto& req) { (void)req.reply(200, file->all()); });
    (void)f.srv.route("/range", [&](auto& req) {
      (void)req.start(200);
      (void)req.send_chunk(file->range(26 * 1000, 26));
      (void)req.send_chunk(file->range(big - 3, 100));  // clamped to the last 3 bytes
      (void)req.end();
    });
    f.port = *f.srv.bind("127.0.0.1", 0);
    tt::client c(f.port);
    const auto bytes = allocated_while([&] {
      c.send("GET /whole HTTP/1.1\r\nHost: t\r\n\r\n");
      REQUIRE(tt::run_until(f.loop, [&] {
        c.pump();
        return tt::first_body(c.data()).size() == big;
      }, 5000ms));
    });
    CHECK(bytes > 0);
    CHECK(bytes < 64 * 1024);
    CHECK(tt::first_body(c.data()) == content);
    c.clear();
    c.send("GET /range HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_for(f.loop, "0\r\n\r\n"));
    CHECK(c.data().find("1a\r\nabcdefghijklmnopqrstuvwxyz\r\n") != std::string::npos);
    CHECK(c.data().find("3\r\n" + content.substr(big - 3) + "\r\n") != std::string::npos);
  }
  CHECK(tt::open_fds() == fds_before);  // the file is closed with its last reference
  ::unlink(path.c_str());
  CHECK(tether::file::open("/nonexistent/tether").error() == std::errc::no_such_file_or_directory);
  CHECK(tether::file::open("/tmp").error() == tether::errc::file_error);
}

// ----- the lean engine: the same policies, its own output queue (detail/lean_output.hpp) -----

namespace {
void shrink_send_buffer(int fd) {
  const int size = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}
}  // namespace

TEST_CASE("lean engine: reference_buffer sends shared_bytes without copying and releases them when written",
          "[zero_copy][reference][lean]") {
  if (tt::under_valgrind()) {
    WARN("skipped: under valgrind the heap counter is blind");
    return;
  }
  server_fixture<tether::reference_buffer, tether::lean_engine> f;
  const tether::shared_bytes body(std::string(big, 'b'));
  // What the server allocates to queue the reply (the client's reads are not counted): a
  // copy would be 1 MiB per body. The socket's buffer is small, so the body waits.
  std::size_t bytes = 0, chunk_bytes = 0;
  (void)f.srv.route("/whole", [&](auto& req) {
    shrink_send_buffer(tt::socket_of(req));
    bytes = heap_allocated_while([&] { (void)req.reply(200, body); });
  });
  (void)f.srv.route("/chunks", [&](auto& req) {
    chunk_bytes = heap_allocated_while([&] {
      (void)req.start(200);
      for (int i = 0; i < 4; ++i) (void)req.send_chunk(body);
      (void)req.send_chunk(tether::static_bytes("static-tail"));
      (void)req.end();
    });
  });
  f.port = *f.srv.bind("127.0.0.1", 0);
  tt::client c(f.port);
  bool held = false;  // the block was referenced while it waited for the client
  c.send("GET /whole HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(f.loop, [&] {
    held = held || body.use_count() > 1;
    c.pump();
    return tt::first_body(c.data()).size() == big;
  }, 5000ms));
  CHECK(held);
  CHECK(bytes < 64 * 1024);
  CHECK(tt::first_body(c.data()) == body.view());
  REQUIRE(tt::run_until(f.loop, [&] { return body.use_count() == 1; }));

  c.clear();
  c.send("GET /chunks HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(c.wait_for(f.loop, "static-tail", 5000ms));
  CHECK(chunk_bytes < 64 * 1024);
  CHECK(c.occurrences(std::string(1000, 'b')) >= 4 * 1000);
  REQUIRE(tt::run_until(f.loop, [&] { return body.use_count() == 1; }));
}

TEST_CASE("lean engine: copy_buffer copies (the baseline), and reference_buffer copies at most 960 bytes",
          "[zero_copy][reference][lean]") {
  SECTION("copy_buffer") {
    server_fixture<tether::copy_buffer, tether::lean_engine> f;
    const tether::shared_bytes body(std::string(big, 'c'));
    f.srv.fallback([&](auto& req) { (void)req.reply(200, body); });
    f.port = *f.srv.bind("127.0.0.1", 0);
    tt::client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] {
      CHECK(body.use_count() == 1);  // never referenced
      c.pump();
      return tt::first_body(c.data()).size() == big;
    }, 5000ms));
  }
  SECTION("reference_buffer, small and large payloads behind a busy output") {
    using stream_type = tether::basic_stream<server_fixture<tether::reference_buffer, tether::lean_engine>::server_type::config>;
    server_fixture<tether::reference_buffer, tether::lean_engine> f;
    const tether::shared_bytes small(std::string(40, 's'));
    const tether::shared_bytes limit(std::string(960, 'l'));
    const tether::shared_bytes large(std::string(961, 'L'));
    std::optional<stream_type> s;
    f.srv.fallback([&](auto& req) { s.emplace(std::move(*stream_type::start(req))); });
    f.port = *f.srv.bind("127.0.0.1", 0);
    tt::client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return s.has_value(); }));
    REQUIRE(c.wait_for(f.loop, "\r\n\r\n"));
    const tether::shared_bytes filler(std::string(12u << 20, 'f'));
    REQUIRE_FALSE(s->write(filler));  // the client does not read: the rest waits, referenced
    REQUIRE(s->queued_bytes() > 0);
    CHECK(filler.use_count() == 2);
    REQUIRE_FALSE(s->write(small));
    CHECK(small.use_count() == 1);  // copied
    REQUIRE_FALSE(s->write(limit));
    CHECK(limit.use_count() == 1);
    REQUIRE_FALSE(s->write(large));
    CHECK(large.use_count() == 2);  // referenced until written
    REQUIRE(c.wait_for(f.loop, std::string(961, 'L'), 10000ms));
    REQUIRE(tt::run_until(f.loop, [&] { return large.use_count() == 1 && filler.use_count() == 1; }));
    CHECK(c.occurrences(std::string(40, 's')) == 1);
    CHECK(c.occurrences(std::string(960, 'l')) == 1);
    REQUIRE_FALSE(s->end());
    REQUIRE(c.wait_for(f.loop, "0\r\n\r\n"));
  }
}

TEST_CASE("lean engine: reference_buffer releases shared_bytes when the client vanishes mid-write",
          "[zero_copy][reference][lean]") {
  server_fixture<tether::reference_buffer, tether::lean_engine> f;
  const tether::shared_bytes body(std::string(8 * big, 'r'));
  bool handled = false;
  f.srv.fallback([&](auto& req) {
    (void)req.reply(200, body);
    handled = true;
  });
  f.port = *f.srv.bind("127.0.0.1", 0);
  {
    tt::client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] { return handled; }));
    CHECK(body.use_count() == 2);
    c.reset();
  }
  REQUIRE(tt::run_until(f.loop, [&] { return body.use_count() == 1; }));
}

TEST_CASE("lean engine: file_buffer serves files and ranges by sendfile, outside the heap", "[zero_copy][file][lean]") {
  std::string content(big, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
  const std::string path = temp_file(content);
  const std::size_t fds_before = tt::open_fds();
  {
    server_fixture<tether::file_buffer, tether::lean_engine> f;
    auto file = tether::file::open(path);
    REQUIRE(file);
    std::size_t bytes = 0;
    (void)f.srv.route("/whole", [&](auto& req) { bytes = heap_allocated_while([&] { (void)req.reply(200, file->all()); }); });
    (void)f.srv.route("/range", [&](auto& req) {
      (void)req.start(200);
      (void)req.send_chunk(file->range(26 * 1000, 26));
      (void)req.send_chunk(std::string_view("<"), file->range(big - 3, 100), tether::static_bytes(">"));  // clamped
      (void)req.end();
    });
    (void)f.srv.route("/vanish", [&](auto& req) {
      shrink_send_buffer(tt::socket_of(req));
      (void)req.reply(200, file->all());
    });
    f.port = *f.srv.bind("127.0.0.1", 0);
    tt::client c(f.port);
    c.send("GET /whole HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(tt::run_until(f.loop, [&] {
      c.pump();
      return tt::first_body(c.data()).size() == big;
    }, 5000ms));
    if (!tt::under_valgrind()) CHECK(bytes < 64 * 1024);
    CHECK(tt::first_body(c.data()) == content);
    CHECK(c.data().find("Content-Length: 1048576\r\n") != std::string::npos);
    c.clear();
    c.send("GET /range HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_for(f.loop, "0\r\n\r\n"));
    CHECK(c.data().find("1a\r\nabcdefghijklmnopqrstuvwxyz\r\n") != std::string::npos);
    CHECK(c.data().find("5\r\n<" + content.substr(big - 3) + ">\r\n") != std::string::npos);
    const std::size_t fds_idle = tt::open_fds();
    {
      tt::client v(f.port);  // a client that leaves before the file is written
      const int small = 4096;
      ::setsockopt(v.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
      v.send("GET /vanish HTTP/1.1\r\nHost: t\r\n\r\n");
      REQUIRE(v.wait_for(f.loop, "\r\n\r\n"));
      CHECK(tt::open_fds() == fds_idle + 3);  // both ends of v, and the range's own descriptor
      v.reset();
      REQUIRE(tt::run_until(f.loop, [&] { return f.srv.open_connections() == 1; }));
    }
    CHECK(tt::open_fds() == fds_idle);
  }
  CHECK(tt::open_fds() == fds_before);  // the file is closed with its last reference
  ::unlink(path.c_str());
}
