// The close_policy concept: fakes that must and must not model it, and the exemplar from
// docs/concepts/close_policy.md, used in a real server.
#include <tether/close_policy.hpp>
#include <tether/tether.hpp>

#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <vector>

using namespace std::chrono_literals;

//[exemplar_close_policy
// Notices hang-ups of held requests like eager_close, but never cuts a client off for
// sending too much, and counts the requests it watched.
struct counting_close {
  static inline int holds = 0;
  static void on_hold(tether::connection_control& ctl) noexcept {
    ++holds;
    ctl.suspend_timeouts();
    ctl.watch_input(static_cast<std::size_t>(-1));
  }
  static void on_resume(tether::connection_control& ctl) noexcept { ctl.restore_timeouts(); }
  static void on_stream_start(tether::connection_control&) noexcept {}
  static void on_stream_write(tether::connection_control&) noexcept {}
};
//]

namespace {
struct no_hooks {};
struct throwing_hold {
  static void on_hold(tether::connection_control&) {}  // not noexcept
  static void on_resume(tether::connection_control&) noexcept {}
  static void on_stream_start(tether::connection_control&) noexcept {}
  static void on_stream_write(tether::connection_control&) noexcept {}
};
struct member_hooks {  // hooks must be static
  void on_hold(tether::connection_control&) noexcept {}
  void on_resume(tether::connection_control&) noexcept {}
  void on_stream_start(tether::connection_control&) noexcept {}
  void on_stream_write(tether::connection_control&) noexcept {}
};
}  // namespace

TEST_CASE("close_policy: the shipped policies and the exemplar model it", "[concepts][close_policy]") {
  STATIC_REQUIRE(tether::close_policy<tether::eager_close<>>);
  STATIC_REQUIRE(tether::close_policy<tether::eager_close<1>>);
  STATIC_REQUIRE(tether::close_policy<tether::native_close>);
  STATIC_REQUIRE(tether::close_policy<counting_close>);
}

TEST_CASE("close_policy: a type without hooks, with a throwing hook or with member hooks is rejected",
          "[concepts][close_policy]") {
  STATIC_REQUIRE_FALSE(tether::close_policy<no_hooks>);
  STATIC_REQUIRE_FALSE(tether::close_policy<throwing_hold>);
  STATIC_REQUIRE_FALSE(tether::close_policy<member_hooks>);
}

TEST_CASE("close_policy: a user-written policy drives a real server", "[concepts][close_policy]") {
  using server = tether::basic_server<counting_close>;
  std::vector<tether::close_reason> reasons;
  tether::event_loop loop;
  std::optional<server> srv{std::in_place, loop};
  // The server's own bound on unread input (64 KiB by default) applies whatever the
  // policy does; lifted here so that only the policy decides.
  srv->set_max_unread_input(tether::unlimited);
  server::request_handle held;
  srv->fallback([&](server::request& req) {
    (void)req.connection().on_close([&](const tether::close_event& e) { reasons.push_back(e.reason); });
    held = req.hold();
  });
  const auto port = *srv->bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tt::run_until(loop, [&] { return bool(held); }));
  c.send(std::string(100 * 1024, 'x'));  // above eager_close's limit: this policy has none
  tt::run_for(loop, 30ms);
  CHECK(reasons.empty());
  c.reset();
  REQUIRE(tt::run_until(loop, [&] { return !reasons.empty(); }));
  CHECK(reasons == std::vector<tether::close_reason>{tether::close_reason::peer_reset});
  CHECK(counting_close::holds == 1);
  srv.reset();  // once, through the server's teardown too
  CHECK(reasons.size() == 1);
}
