// A buffer policy without a flow type: one sentence names the requirement and the fix.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

struct flowless_buffer {
  static std::error_code append(evbuffer*, std::string_view) noexcept { return {}; }
};

int main() {
  tether::event_loop loop;
  tether::basic_server<tether::eager_close<>, flowless_buffer> srv{loop};
  (void)srv.bind("127.0.0.1", 0);
}
