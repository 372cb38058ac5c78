// tether/detail/lean_routes.hpp - the lean engine's routing: runtime routes, routers of
// static routes, a fallback, and the host names (aliases, virtual hosts) that choose a
// table.
//
// The evhttp engine routes with libevent (evhttp_set_cb per path, evhttp_add_virtual_host,
// evhttp_add_server_alias). The lean engine does the same in tether: a route table is a
// list of exact paths (not decoded; query ignored) to type-erased handlers stored once per
// path, then the fallback. A router of static routes becomes one entry per distinct path
// whose handler is that path's own instantiation of a switch over methods known at compile
// time (as router_binding does on evhttp), with 405 and an Allow header built at compile
// time for the others. Hosts are chosen as libevent chooses them (http.c,
// evhttp_find_vhost): an alias of the server, then of each virtual host, compared without
// regard to case; then the virtual hosts' patterns in creation order, `*` matching any run
// of at least one character.
#pragma once

#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/http1_scan.hpp>
#include <tether/error.hpp>
#include <tether/method.hpp>
#include <tether/route.hpp>
#include <tether/router.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// A type-erased request handler, stored once per route (never per request).
template <class Request>
class lean_handler {
 public:
  lean_handler() = default;
  template <class H>
  explicit lean_handler(H&& h) : obj_(new std::decay_t<H>(std::forward<H>(h))) {
    using T = std::decay_t<H>;
    call_ = [](void* o, Request& r) { (void)(*static_cast<T*>(o))(r); };
    destroy_ = [](void* o) noexcept { delete static_cast<T*>(o); };
  }
  lean_handler(lean_handler&& o) noexcept
      : obj_(std::exchange(o.obj_, nullptr)), call_(o.call_), destroy_(std::exchange(o.destroy_, nullptr)) {}
  lean_handler& operator=(lean_handler&& o) noexcept {
    if (this != &o) {
      if (destroy_) destroy_(obj_);
      obj_ = std::exchange(o.obj_, nullptr);
      call_ = o.call_;
      destroy_ = std::exchange(o.destroy_, nullptr);
    }
    return *this;
  }
  ~lean_handler() {
    if (destroy_) destroy_(obj_);
  }
  explicit operator bool() const noexcept { return obj_ != nullptr; }
  void operator()(Request& r) const { call_(obj_, r); }

 private:
  void* obj_ = nullptr;
  void (*call_)(void*, Request&) = nullptr;
  void (*destroy_)(void*) noexcept = nullptr;
};

/// `host` matches `pattern`, where `*` stands for any run of at least one character
/// (libevent's prefix_suffix_match), without regard to case.
inline bool lean_host_match(std::string_view pattern, std::string_view host) noexcept {
  // Iterative glob with one backtrack point: linear in practice, bounded by the sizes.
  std::size_t p = 0, h = 0, star = std::string_view::npos, mark = 0;
  while (h < host.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = ++h;  // at least one character
      continue;
    }
    if (p < pattern.size() && http1::detail::iequals(pattern.substr(p, 1), host.substr(h, 1))) {
      ++p;
      ++h;
      continue;
    }
    if (star == std::string_view::npos) return false;
    p = star + 1;
    h = ++mark;
  }
  if (h > host.size()) return false;
  while (p < pattern.size() && pattern[p] == '*') {
    if (h >= host.size()) return false;  // a trailing `*` needs a character too
    ++p;
  }
  return p == pattern.size();
}

/// The host name a request is for, as libevent takes it (evhttp_request_get_host): the
/// host of an absolute request-target, else the Host field without a trailing ":port".
inline std::string_view lean_request_host(std::string_view target, bool absolute, std::string_view host) noexcept {
  if (absolute) {
    const auto scheme = target.find("://");
    if (scheme != std::string_view::npos) {
      std::string_view auth = target.substr(scheme + 3);
      auth = auth.substr(0, std::min(auth.find('/'), auth.find('?')));
      if (const auto at = auth.rfind('@'); at != std::string_view::npos) auth.remove_prefix(at + 1);
      host = auth;
    }
  }
  std::size_t p = host.size();
  while (p > 0 && host[p - 1] >= '0' && host[p - 1] <= '9') --p;
  if (p > 0 && p < host.size() + 1 && host[p - 1] == ':') host = host.substr(0, p - 1);
  return host;
}

/// A router of static routes installed on a lean route table: it owns the router, and
/// each distinct path's entry calls dispatch<P>.
template <class Request, class Router>
class lean_router_binding;

template <class Request, class... Routes>
class lean_router_binding<Request, router<Routes...>> {
  using table = route_table<Routes...>;

 public:
  explicit lean_router_binding(router<Routes...>&& r) : router_(std::move(r)) {}

  static constexpr std::array<std::string_view, sizeof...(Routes)> paths{std::string_view(Routes::path)...};
  static constexpr bool first_on_path(std::size_t i) noexcept { return table::leader(i) == i; }

  /// Every method the router's routes answer.
  static constexpr method_set methods() noexcept {
    method_set all;
    for (std::size_t i = 0; i < table::size; ++i) all = all | table::served(i);
    return all;
  }

  /// The entry of the path of route P (a leader).
  template <std::size_t P>
  struct path_entry {
    lean_router_binding* b;
    void operator()(Request& r) const { b->template dispatch<P>(r); }
  };

  template <std::size_t P>
  void dispatch(Request& r) {
    const unsigned cmd = static_cast<unsigned>(r.method());
    const bool served = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (serve_if<P, I>(r, cmd) || ...);
    }(std::index_sequence_for<Routes...>{});
    if (!served) {
      static constexpr allow_value allow = make_allow_value(table::served_on_path(P));
      method_not_allowed{allow.c_str()}(r);
    }
  }

 private:
  template <std::size_t P, std::size_t I>
  bool serve_if(Request& r, unsigned cmd) {
    if constexpr (table::leader(I) != P) {
      return false;  // another path
    } else {
      constexpr unsigned bits = table::served(I).bits();
      if ((cmd & bits) == 0) return false;
      (void)router_access::get<I>(router_)(r);
      return true;
    }
  }

  [[no_unique_address]] router<Routes...> router_;
};

/// Runtime routes, routers and a fallback: the server's own, or a virtual host's.
template <class Request>
class lean_route_table {
 public:
  lean_route_table() = default;
  lean_route_table(const lean_route_table&) = delete;
  lean_route_table& operator=(const lean_route_table&) = delete;

  /// True if `path` is routed here.
  bool routed(std::string_view path) const noexcept {
    return std::any_of(routes_.begin(), routes_.end(), [&](const entry& e) { return e.path == path; });
  }

  /// Errors: errc::invalid_argument if `path` is routed already.
  template <class Handler>
  route_error add(cstring_view path, method_set methods, Handler&& handler) {
    if (routed(path.view()))
      return route_error(make_error_code(errc::invalid_argument), path.view(), already_routed_why);
    routes_.push_back(entry{std::string(path.view()), methods, lean_handler<Request>(std::forward<Handler>(handler))});
    return {};
  }

  /// Installs a router: all or nothing. Errors: errc::invalid_argument if one of its
  /// paths is routed already (the error names it).
  template <class... Routes>
  route_error add_router(router<Routes...>&& r) {
    using binding = lean_router_binding<Request, router<Routes...>>;
    for (std::size_t i = 0; i < binding::paths.size(); ++i)
      if (binding::first_on_path(i) && routed(binding::paths[i]))
        return route_error(make_error_code(errc::invalid_argument), binding::paths[i], already_routed_why);
    auto owned = std::make_unique<binding>(std::move(r));
    binding* b = owned.get();
    const std::size_t before = routes_.size();
    try {
      routes_.reserve(before + binding::paths.size());
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((binding::first_on_path(I)
              ? (void)routes_.push_back(entry{std::string(binding::paths[I]), method_set{},
                                              lean_handler<Request>(typename binding::template path_entry<I>{b})})
              : (void)0),
         ...);
      }(std::index_sequence_for<Routes...>{});
      routers_.push_back(std::unique_ptr<void, void (*)(void*)>(owned.release(),
                                                                [](void* p) { delete static_cast<binding*>(p); }));
    } catch (...) {
      routes_.resize(before);
      throw;
    }
    return {};
  }

  /// Errors: errc::invalid_argument if `path` is not routed here.
  route_error remove(cstring_view path) {
    for (auto it = routes_.begin(); it != routes_.end(); ++it)
      if (it->path == path.view()) {
        routes_.erase(it);
        return {};
      }
    return route_error(make_error_code(errc::invalid_argument), path.view(), not_routed_why);
  }

  template <class Handler>
  void set_fallback(Handler&& handler) {
    fallback_ = lean_handler<Request>(std::forward<Handler>(handler));
  }

  /// Calls the route of `r`'s path (405 for a method it does not take), else the
  /// fallback; false if neither exists.
  bool dispatch(Request& r) const {
    const std::string_view path = r.path();
    for (const auto& e : routes_) {
      if (e.path != path) continue;
      if (!e.methods.empty() && !e.methods.contains(r.method())) {
        (void)r.output_headers().add("Allow", make_allow_value(e.methods).view());
        (void)r.reply(405);
        return true;
      }
      e.handler(r);
      return true;
    }
    if (fallback_) {
      fallback_(r);
      return true;
    }
    return false;
  }

 private:
  struct entry {
    std::string path;
    method_set methods;  // empty: every method (or a router's path, which checks its own)
    lean_handler<Request> handler;
  };
  std::vector<entry> routes_;
  lean_handler<Request> fallback_;
  std::vector<std::unique_ptr<void, void (*)(void*)>> routers_;  // owned by the table until it dies
};

/// A virtual host of a lean server: its pattern, its aliases and its routes.
template <class Request>
struct lean_vhost {
  std::string pattern;
  std::vector<std::string> aliases;
  lean_route_table<Request> table;
  bool parent_gone = false;

  bool has_alias(std::string_view host) const noexcept {
    return std::any_of(aliases.begin(), aliases.end(),
                       [&](const std::string& a) { return http1::detail::iequals(a, host); });
  }
};

}  // namespace detail
TETHER_END_NAMESPACE
