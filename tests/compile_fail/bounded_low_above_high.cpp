// bounded<> with a low-water mark above the high-water mark is rejected with a sentence.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

int main() {
  tether::event_loop loop;
  tether::basic_server<tether::eager_close<>, tether::bounded<tether::copy_buffer, 1024, 4096>> srv{loop};
}
