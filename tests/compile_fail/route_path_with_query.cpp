// Route matching ignores the query, so a path with one is refused.
#include <tether/router.hpp>

int main() {
  auto r = tether::get<"/items?page=1">([](auto& req) { (void)req.reply(200); });
  (void)r;
}
