// Two routes answering the same method on the same path do not compile; the error names
// them (their positions, the method and the path).
#include <tether/router.hpp>

int main() {
  auto api = tether::router{
      tether::get<"/items">([](auto& req) { (void)req.reply(200, "list"); }),
      tether::post<"/items">([](auto& req) { (void)req.reply(201, "added"); }),
      tether::on<"/items", tether::method::put, tether::method::get>([](auto& req) { (void)req.reply(200, "again"); }),
  };
  (void)api;
}
