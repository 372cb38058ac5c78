// req.query_params() with only <tether/server.hpp> included: server.hpp leaves the query
// parser (uri.hpp) out of every server's build, and the one error names the header.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>

int main() {
  tether::event_loop loop;
  tether::server srv{loop};
  srv.fallback([](tether::request& req) {
    auto q = req.query_params();
    (void)req.reply(q ? 200 : 400, q->find("name").value_or("nobody"));
  });
}
