// A route answers at least one method.
#include <tether/router.hpp>

int main() {
  auto r = tether::on<"/items">([](auto& req) { (void)req.reply(200); });
  (void)r;
}
