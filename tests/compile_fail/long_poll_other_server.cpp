// A long_poll named after tether::server (tether::long_poll) given the request of a server
// with other policies: one sentence naming the fix (server_t::long_poll), no cascade.
#include <tether/event_loop.hpp>
#include <tether/duration.hpp>
#include <tether/long_poll.hpp>
#include <tether/server.hpp>

using server_t = tether::basic_server<tether::eager_close<>, tether::reference_buffer>;

int main() {
  tether::event_loop loop;
  server_t srv{loop};
  tether::long_poll room{loop, std::chrono::seconds(25)};
  srv.fallback([&](server_t::request& req) { (void)room.wait(req); });
}
