// A server declared with no_close_callback cannot be given one.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

int main() {
  tether::event_loop loop;
  tether::basic_server<tether::eager_close<>, tether::copy_buffer, tether::no_close_callback> srv{loop};
  srv.fallback([](auto& req) {
    (void)req.connection().on_close(tether::no_close_callback{});
    (void)req.reply(200);
  });
}
