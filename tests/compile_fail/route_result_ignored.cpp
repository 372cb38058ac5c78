// A runtime route's result carries the error of a path already routed: ignoring it is a
// warning (an error under -Werror).
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

int main() {
  tether::event_loop loop;
  tether::server srv{loop};
  auto status = [](tether::request& req) { (void)req.reply(200, "{}"); };
  (void)srv.route("/status", status);
  srv.route("/status", status);
}
