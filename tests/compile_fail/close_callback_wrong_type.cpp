// A typed close callback slot accepts only its own type: a stateless lambda type given
// as the server's CloseCallback cannot be replaced by another lambda.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

int main() {
  tether::event_loop loop;
  auto mine = [](const tether::close_event&) noexcept {};
  tether::basic_server<tether::eager_close<>, tether::copy_buffer, decltype(mine)> srv{loop};
  srv.fallback([](auto& req) {
    (void)req.connection().on_close([](const tether::close_event&) noexcept {});
    (void)req.reply(200);
  });
}
