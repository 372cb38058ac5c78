// A close callback whose captures do not fit the default close_function<> (three
// pointers): the sentence names the fixes (capture less, a std::unique_ptr, or a larger
// capacity), and nothing else is reported.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

#include <string>

int main() {
  tether::event_loop loop;
  tether::server srv{loop};
  srv.fallback([](tether::request& req) {
    std::string who = "a client";
    (void)req.connection().on_close([who](const tether::close_event&) noexcept { (void)who; });
    (void)req.reply(200);
  });
}
