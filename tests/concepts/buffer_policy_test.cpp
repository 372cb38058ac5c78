// The buffer_policy concept: fakes that must and must not model it, which payloads each
// shipped policy accepts, and the exemplar from docs/concepts/buffer_policy.md.
#include <tether/buffer_policy.hpp>
#include <tether/tether.hpp>

#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <cctype>
#include <string>

//[exemplar_buffer_policy
// Upper-cases every body and chunk as it queues it (a toy transform), never refuses.
struct shouting_buffer {
  using flow = tether::unbounded_flow;
  static std::error_code append(evbuffer* b, std::string_view bytes) noexcept {
    for (char c : bytes) {
      const char up = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (evbuffer_add(b, &up, 1) != 0) return tether::errc::libevent_failure;
    }
    return {};
  }
};
//]

namespace {
struct no_flow {
  static std::error_code append(evbuffer*, std::string_view) noexcept { return {}; }
};
struct throwing_append {
  using flow = tether::unbounded_flow;
  static std::error_code append(evbuffer*, std::string_view) { return {}; }
};
struct wrong_result {
  using flow = tether::unbounded_flow;
  static bool append(evbuffer*, std::string_view) noexcept { return true; }
};
}  // namespace

TEST_CASE("buffer_policy: the shipped policies and the exemplar model it", "[concepts][buffer_policy]") {
  STATIC_REQUIRE(tether::buffer_policy<tether::copy_buffer>);
  STATIC_REQUIRE(tether::buffer_policy<tether::reference_buffer>);
  STATIC_REQUIRE(tether::buffer_policy<tether::file_buffer>);
  STATIC_REQUIRE(tether::buffer_policy<tether::bounded<>>);
  STATIC_REQUIRE(tether::buffer_policy<tether::bounded<tether::file_buffer, 1024, 0, tether::slow_consumer::drop>>);
  STATIC_REQUIRE(tether::buffer_policy<shouting_buffer>);
}

TEST_CASE("buffer_policy: no flow type, a throwing append or a non-error_code result are rejected",
          "[concepts][buffer_policy]") {
  STATIC_REQUIRE_FALSE(tether::buffer_policy<no_flow>);
  STATIC_REQUIRE_FALSE(tether::buffer_policy<throwing_append>);
  STATIC_REQUIRE_FALSE(tether::buffer_policy<wrong_result>);
}

TEST_CASE("buffer_policy_accepts: what each policy can queue", "[concepts][buffer_policy]") {
  using tether::buffer_policy_accepts;
  STATIC_REQUIRE(buffer_policy_accepts<tether::copy_buffer, std::string_view>);
  STATIC_REQUIRE(buffer_policy_accepts<tether::copy_buffer, const tether::shared_bytes&>);  // copied
  STATIC_REQUIRE_FALSE(buffer_policy_accepts<tether::copy_buffer, tether::file_range>);
  STATIC_REQUIRE(buffer_policy_accepts<tether::reference_buffer, tether::static_bytes>);
  STATIC_REQUIRE_FALSE(buffer_policy_accepts<tether::reference_buffer, tether::file_range>);
  STATIC_REQUIRE(buffer_policy_accepts<tether::file_buffer, tether::file_range>);
  STATIC_REQUIRE(buffer_policy_accepts<tether::bounded<tether::file_buffer>, tether::file_range>);
  STATIC_REQUIRE(tether::slow_consumer_action<tether::slow_consumer::disconnect<10>>);
  STATIC_REQUIRE_FALSE(tether::slow_consumer_action<int>);
}

TEST_CASE("buffer_policy: a user-written policy drives a real server", "[concepts][buffer_policy]") {
  using server = tether::basic_server<tether::eager_close<>, shouting_buffer>;
  tether::event_loop loop;
  server srv{loop};
  srv.fallback([](server::request& req) {
    (void)req.start(200);
    (void)req.send_chunk("quiet words");
    (void)req.end();
  });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(c.wait_for(loop, "QUIET WORDS"));
}
