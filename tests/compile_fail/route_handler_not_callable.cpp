// A runtime route whose handler cannot take the server's request: one sentence, and no
// error from the code that would have stored and called it.
#include <tether/tether.hpp>

int main() {
  tether::event_loop loop;
  tether::server srv{loop};
  (void)srv.route("/status", [](const std::string&) {});
}
