// A hand-written route with an empty method set is not a static_route.
#include <tether/router.hpp>

struct items {
  static constexpr std::string_view path = "/items";
  static constexpr tether::method_set methods = {};
  void operator()(auto& req) const { (void)req.reply(200); }
};

int main() {
  tether::router<items> api;
  (void)api;
}
