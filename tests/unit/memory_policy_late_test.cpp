// A program that creates an event_loop before installing a memory policy: the install is
// refused, nothing is installed, and libevent goes on with its own allocator. Its own
// binary, because what it tests is the state of the whole process.
#include <tether/memory_policy.hpp>
#include <tether/tether.hpp>

#include "../support/loopback.hpp"

#include <catch2/catch.hpp>

#include <string>

TEST_CASE("install_memory_policy: after tether made libevent allocate, every policy is refused",
          "[memory][install]") {
  tether::event_loop loop;  // libevent allocates its event_base with malloc
  const auto ec = tether::install_memory_policy<tether::pooled_memory<>>();
  CHECK(ec == tether::errc::libevent_in_use);
  CHECK(ec.message() ==
        "libevent is already in use; install the memory policy first in main, before any loop, server or buffer");
  // The refused call claimed nothing: any other policy gets the same answer, not a conflict.
  CHECK(tether::install_memory_policy<tether::system_memory>() == tether::errc::libevent_in_use);
  CHECK(tether::install_memory_policy<tether::pooled_memory<0>>() == tether::errc::libevent_in_use);

  // libevent still works, with malloc: the loop's blocks were not handed to a pool.
  tether::server srv{loop};
  srv.fallback([](tether::request& req) { (void)req.reply(200, "still malloc"); });
  const auto port = *srv.bind("127.0.0.1", 0);
  tt::client c(port);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(c.wait_for(loop, "still malloc"));
  CHECK(tether::pooled_memory<>::cached_bytes() == 0);
}
