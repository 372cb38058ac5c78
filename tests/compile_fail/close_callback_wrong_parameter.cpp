// A close callback that cannot take a close_event: the sentence says which parameter it
// needs, and nothing else is reported.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

int main() {
  tether::event_loop loop;
  tether::server srv{loop};
  srv.fallback([](tether::request& req) {
    (void)req.connection().on_close([](int) noexcept {});
    (void)req.reply(200);
  });
}
