// A hub named after tether::server (tether::hub<tether::sse_stream>) given the stream of a
// server with other policies: one sentence naming the fix, no cascade.
#include <tether/event_loop.hpp>
#include <tether/hub.hpp>
#include <tether/server.hpp>
#include <tether/sse.hpp>

using server_t = tether::basic_server<tether::eager_close<>, tether::reference_buffer>;

int main() {
  tether::event_loop loop;
  server_t srv{loop};
  tether::hub<tether::sse_stream> clients;
  srv.fallback([&](server_t::request& req) {
    if (auto s = tether::sse_stream::start(req)) (void)clients.subscribe(std::move(*s));
  });
}
