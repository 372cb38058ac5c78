// A server whose CloseCallback type cannot be called with a close_event.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

struct not_a_callback {
  void operator()(int) const noexcept {}
};

int main() {
  tether::event_loop loop;
  tether::basic_server<tether::eager_close<>, tether::copy_buffer, not_a_callback> srv{loop};
  (void)srv.bind("127.0.0.1", 0);
}
