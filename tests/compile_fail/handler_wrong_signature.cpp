// A handler that cannot take the server's request is rejected with a sentence.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

int main() {
  tether::event_loop loop;
  tether::server srv{loop};
  srv.fallback([](int) {});
}
