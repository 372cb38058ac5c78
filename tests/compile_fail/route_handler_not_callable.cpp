// A runtime route whose handler cannot take the server's request: one sentence, and no
// error from the code that would have stored and called it.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

int main() {
  tether::event_loop loop;
  tether::server srv{loop};
  (void)srv.route("/status", [](const std::string&) {});
}
