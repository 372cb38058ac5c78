// A close policy without on_stream_write is rejected, and the diagnostic names the
// concept and the missing requirement.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

struct forgetful_policy {
  static void on_hold(tether::connection_control&) noexcept {}
  static void on_resume(tether::connection_control&) noexcept {}
  static void on_stream_start(tether::connection_control&) noexcept {}
};

int main() {
  tether::event_loop loop;
  tether::basic_server<forgetful_policy> srv{loop};
}
