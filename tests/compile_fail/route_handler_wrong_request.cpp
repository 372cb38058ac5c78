// A route's handler must take the request type of the server it is installed on: this
// one takes the default server's request, the server uses native_close.
#include <tether/event_loop.hpp>
#include <tether/router.hpp>
#include <tether/server.hpp>

int main() {
  tether::event_loop loop;
  tether::basic_server<tether::native_close> srv{loop};
  (void)srv.route(tether::router{
      tether::get<"/ok">([](auto& req) { (void)req.reply(200); }),
      tether::get<"/items">([](tether::request& req) { (void)req.reply(200); }),
  });
}
