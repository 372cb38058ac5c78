// tether/cors.hpp - Cross-Origin Resource Sharing: which other web origins may read a
// route's replies (an EventSource, a fetch() long-poll, an <img crossorigin> stream).
/// @file
/// A CORS policy (tether::cors, built from tether::cors_options) and the handler adaptor
/// that applies it to one route (tether::cors_handler). See docs/cors.md.
//
// A browser runs a page's cross-origin request only if the server says the page's origin
// may: `Access-Control-Allow-Origin` on the reply, and for requests that are not "simple"
// (a custom header, a JSON POST...) a preflight `OPTIONS` answered first. Without them an
// EventSource gets an error and no event, which is what curl never shows.
//
//     auto cors = tether::cors::make({.origins = {"https://app.example"}, .credentials = true});
//     if (!cors) return 1;                          // tether::cors::problem(options) says why
//     srv.route("/events", cors->wrap(events_handler));
//
// The policy is a value: its header values are formatted once, when it is made, and a
// wrapped route costs one header lookup and a few header adds per request. A server that
// wraps no route pays nothing.
#pragma once

#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/error.hpp>
#include <tether/headers.hpp>
#include <tether/method.hpp>
#include <tether/request_handler.hpp>
#include <tether/route.hpp>

#include <charconv>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

TETHER_BEGIN_NAMESPACE

/// The settings of a CORS policy, checked by cors::make(). Every field has a safe default:
/// a policy allows nothing until it lists origins (or sets any_origin).
struct cors_options {
  /// The origins whose pages may read replies, exactly as browsers send them:
  /// "scheme://host[:port]", no path, no trailing slash ("https://app.example",
  /// "http://127.0.0.1:8000"). Scheme and host are compared case-insensitively, and a
  /// default port (:80 for http, :443 for https) may be written or left out. "null" (the
  /// origin of sandboxed frames and files) is refused: any page can claim it.
  std::vector<std::string> origins{};
  /// Every origin may read replies: `Access-Control-Allow-Origin: *`. Only without
  /// credentials (browsers refuse `*` on credentialed requests, and reflecting any origin
  /// instead would hand every site the user's cookies), and not together with `origins`.
  bool any_origin = false;
  /// Pages may send cookies and HTTP authentication (EventSource `withCredentials`,
  /// fetch `credentials: "include"`) and read the replies:
  /// `Access-Control-Allow-Credentials: true`. Needs an exact list of origins.
  bool credentials = false;
  /// The methods a preflight may ask for (`Access-Control-Allow-Methods`). GET, HEAD and
  /// POST need no preflight unless the request has other headers.
  method_set methods = method::get | method::head | method::post;
  /// Request headers pages may send beyond the CORS-safelisted ones
  /// (`Access-Control-Allow-Headers`): "Content-Type" for a JSON body, "Last-Event-ID"
  /// for an EventSource resuming across origins, your own "X-..." headers.
  std::vector<std::string> headers{};
  /// Allow whatever request headers a preflight asks for (they are echoed back).
  bool any_header = false;
  /// Response headers pages may read beyond the CORS-safelisted ones
  /// (`Access-Control-Expose-Headers`), e.g. "Last-Event-ID" or "X-Message-Id". "*" (all)
  /// only without credentials.
  std::vector<std::string> exposed_headers{};
  /// How long a browser may reuse a preflight's answer (`Access-Control-Max-Age`); zero
  /// sends none (Chromium then keeps it 5 s; it caps any value at 2 h).
  std::chrono::seconds max_age{0};
  /// Answer requests whose Origin the policy does not allow with 403 before the handler
  /// runs (and refused preflights with 403). Off by default: the handler runs, and the
  /// browser hides the reply from the page. Requests without an Origin header (curl, a
  /// same-origin GET) always pass; list your own origin if same-origin pages POST.
  bool refuse_other_origins = false;
};

template <class Handler>
class cors_handler;

namespace detail {

constexpr char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr bool ascii_iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

/// `text` as browsers serialize an origin ("scheme://host[:port]": scheme and host
/// lowercased, no default port), or an empty origin and the reason it is not one.
struct origin_parse {
  std::string origin;
  std::string_view problem;
};
inline origin_parse normalize_origin(std::string_view text) {
  if (text == "*") return {{}, "cors: \"*\" is not an origin: set any_origin instead"};
  if (text == "null") return {{}, "cors: the origin \"null\" is refused: sandboxed frames and local files of any site send it"};
  const auto sep = text.find("://");
  if (sep == std::string_view::npos || sep == 0) return {{}, "cors: an origin is scheme://host[:port], e.g. https://app.example"};
  const std::string_view scheme = text.substr(0, sep);
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    const char c = ascii_lower(scheme[i]);
    const bool ok = (c >= 'a' && c <= 'z') || (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
    if (!ok) return {{}, "cors: an origin's scheme is letters, digits, '+', '-' or '.'"};
  }
  std::string_view rest = text.substr(sep + 3);
  if (rest.find_first_of("/?#") != std::string_view::npos)
    return {{}, "cors: an origin has no path, query or trailing slash: https://app.example, not https://app.example/"};
  if (rest.find('@') != std::string_view::npos) return {{}, "cors: an origin has no user name or password"};
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {  // an IPv6 literal: [::1]:8080
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return {{}, "cors: an IPv6 origin host needs its closing ']'"};
    host = rest.substr(0, close + 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty() && after.front() != ':') return {{}, "cors: an origin's host is followed only by :port"};
    if (!after.empty()) port = after.substr(1);
    for (const char c : host.substr(1, host.size() - 2)) {
      const bool ok = (c >= '0' && c <= '9') || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'f') || c == ':' || c == '.';
      if (!ok) return {{}, "cors: an IPv6 origin host holds hex digits, ':' and '.'"};
    }
    if (host.size() == 2) return {{}, "cors: an origin needs a host"};
  } else {
    const auto colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    }
    if (host.empty()) return {{}, "cors: an origin needs a host"};
    for (const char c : host) {
      const char l = ascii_lower(c);
      const bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '-' || l == '.' || l == '_';
      if (!ok) return {{}, "cors: an origin's host holds letters, digits, '-', '.' or '_' (an IPv6 address goes in [])"};
    }
  }
  if (!port.empty() || (rest.size() > host.size())) {  // a ':' was written: digits must follow
    unsigned value = 0;
    if (port.empty() || port.size() > 5) return {{}, "cors: an origin's port is 1 to 65535"};
    for (const char c : port) {
      if (c < '0' || c > '9') return {{}, "cors: an origin's port is 1 to 65535"};
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return {{}, "cors: an origin's port is 1 to 65535"};
    port = port.substr(port.find_first_not_of('0'));  // browsers write no leading zeros
  }
  origin_parse out;
  for (const char c : scheme) out.origin.push_back(ascii_lower(c));
  out.origin.append("://");
  for (const char c : host) out.origin.push_back(ascii_lower(c));
  const bool default_port = (port == "80" && out.origin.starts_with("http:")) || (port == "443" && out.origin.starts_with("https:"));
  if (!port.empty() && !default_port) {
    out.origin.push_back(':');
    out.origin.append(port);
  }
  return out;
}

inline std::string_view check_header_list(const std::vector<std::string>& names, bool star_allowed,
                                          std::string_view star_problem) {
  for (const auto& n : names) {
    if (n == "*") {
      if (!star_allowed) return star_problem;
      continue;
    }
    if (!is_header_name(n)) return "cors: a header name is a token: letters, digits and !#$%&'*+-.^_`|~ (no spaces, no ':')";
  }
  return {};
}

inline std::string join_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out.append(", ");
    out.append(i);
  }
  return out;
}

}  // namespace detail

/// A CORS policy: which origins may read the replies of the routes it wraps, with or
/// without credentials, and what their preflights may ask for. Made (and checked) once by
/// make(); copies share one immutable state, so wrapping many routes costs one copy of
/// the settings.
///
/// For a request carrying an `Origin` header the policy allows, a wrapped route's reply
/// gets `Access-Control-Allow-Origin` (that origin, or `*` under any_origin),
/// `Access-Control-Allow-Credentials: true` with credentials, and
/// `Access-Control-Expose-Headers`; with an exact list of origins every reply also gets
/// `Vary: Origin`, so that a cache never serves one origin's answer to another. A request
/// from another origin gets no CORS header: the browser then hides the reply from the
/// page (or the server answers 403, with refuse_other_origins).
///
/// The headers are set before the handler runs, so they go out with whatever reply it
/// makes, now or later: reply(), a stream (SSE, multipart), a long-poll answer or its 204.
/// Not with send_error(): libevent's error page replaces every header.
class cors {
 public:
  /// Checks `options` and formats the policy's header values. Errors:
  /// errc::invalid_argument when the options are inconsistent or malformed;
  /// problem(options) says which and how to fix it.
  static result<cors> make(const cors_options& options) {
    if (!problem(options).empty()) return errc::invalid_argument;
    auto st = std::make_shared<state>();
    for (const auto& o : options.origins) st->origins.push_back(detail::normalize_origin(o).origin);
    st->any_origin = options.any_origin;
    st->credentials = options.credentials;
    st->any_header = options.any_header;
    st->refuse_others = options.refuse_other_origins;
    st->methods = options.methods;
    st->allow_methods = std::string(detail::make_allow_value(options.methods).view());
    st->allow_headers = detail::join_list(options.headers);
    st->expose_headers = detail::join_list(options.exposed_headers);
    if (options.max_age.count() > 0) {
      char digits[24];
      const auto r = std::to_chars(digits, digits + sizeof digits, options.max_age.count());
      st->max_age.assign(digits, r.ptr);
    }
    st->allow_on_options = std::string(detail::make_allow_value(options.methods | method::options).view());
    return cors(std::move(st));
  }

  /// Why make() would refuse `options`, as a sentence naming the fix; empty if it would not.
  static std::string_view problem(const cors_options& options) {
    if (options.any_origin && !options.origins.empty())
      return "cors: set either origins (an exact list) or any_origin, not both";
    if (!options.any_origin && options.origins.empty())
      return "cors: no origin is allowed: list the pages' origins in origins (or set any_origin)";
    if (options.any_origin && options.credentials)
      return "cors: credentials need an exact list of origins: browsers refuse '*' with credentials, and "
             "allowing every origin would let any site act with the user's cookies";
    for (const auto& o : options.origins)
      if (auto p = detail::normalize_origin(o).problem; !p.empty()) return p;
    if (auto p = detail::check_header_list(options.headers, false, "cors: \"*\" in headers: set any_header instead"); !p.empty())
      return p;
    if (auto p = detail::check_header_list(options.exposed_headers, !options.credentials,
                                           "cors: exposed_headers \"*\" means all only without credentials: list them");
        !p.empty())
      return p;
    if (options.max_age.count() < 0) return "cors: max_age is not negative";
    return {};
  }

  /// True if replies may be shared with a page of `origin` (as the Origin header says it).
  bool allows_origin(std::string_view origin) const noexcept { return st_->any_origin || match(origin) != nullptr; }

  /// Calls `add(name, value)` (two cstring_views) for each CORS header of a reply to a
  /// request whose Origin header is `origin` (nullopt: it has none). Returns whether the
  /// origin is allowed; a request without Origin is not a cross-origin one and passes.
  template <class Add>
  bool reply_headers(std::optional<std::string_view> origin, Add&& add) const {
    if (!st_->any_origin) add("Vary", "Origin");
    if (!origin) {
      if (st_->any_origin) add("Access-Control-Allow-Origin", "*");
      return true;
    }
    const std::string* allowed = match(*origin);
    if (!allowed && !st_->any_origin) return false;
    add("Access-Control-Allow-Origin", allowed ? cstring_view(*allowed) : cstring_view("*"));
    if (st_->credentials) add("Access-Control-Allow-Credentials", "true");
    if (!st_->expose_headers.empty()) add("Access-Control-Expose-Headers", st_->expose_headers);
    return true;
  }

  /// Calls `add(name, value)` for each header of the answer to a preflight from `origin`
  /// asking for the request headers `requested` (its Access-Control-Request-Headers, or
  /// null). Returns whether the origin is allowed; when it is not, only Vary is added.
  template <class Add>
  bool preflight_headers(std::string_view origin, const char* requested, Add&& add) const {
    if (!st_->any_origin) add("Vary", st_->any_header ? "Origin, Access-Control-Request-Headers" : "Origin");
    else if (st_->any_header) add("Vary", "Access-Control-Request-Headers");
    const std::string* allowed = match(origin);
    if (!allowed && !st_->any_origin) return false;
    add("Access-Control-Allow-Origin", allowed ? cstring_view(*allowed) : cstring_view("*"));
    if (st_->credentials) add("Access-Control-Allow-Credentials", "true");
    if (!st_->allow_methods.empty()) add("Access-Control-Allow-Methods", st_->allow_methods);
    if (st_->any_header) {
      if (requested && *requested) add("Access-Control-Allow-Headers", requested);
    } else if (!st_->allow_headers.empty()) {
      add("Access-Control-Allow-Headers", st_->allow_headers);
    }
    if (!st_->max_age.empty()) add("Access-Control-Max-Age", st_->max_age);
    return true;
  }

  /// Applies the policy to `req` inside its handler, before the handler's own code:
  /// answers an OPTIONS request (a preflight: 204 with the preflight headers; a plain
  /// OPTIONS: 204 with Allow), or adds the reply headers. Returns true if the handler
  /// should run; false if the request was answered (OPTIONS, or 403 under
  /// refuse_other_origins).
  template <class Request>
  bool apply(Request& req) const {
    const auto in = req.input_headers();    // headers_ref, or the lean engine's views
    const auto out = req.output_headers();
    auto add = [&](cstring_view name, cstring_view value) { (void)out.add(name, value); };
    const std::optional<std::string_view> origin = in.find("Origin");
    if (req.method() == method::options) {
      bool allowed = false;
      if (origin && in.contains("Access-Control-Request-Method")) {
        const auto requested = in.find("Access-Control-Request-Headers");
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(in)>, headers_ref>) {
          // Header values from libevent are NUL-terminated.
          allowed = preflight_headers(*origin, requested ? requested->data() : nullptr, add);
        } else {
          // The lean engine's are views into the read buffer: a terminated copy.
          const std::string copy = requested ? std::string(*requested) : std::string();
          allowed = preflight_headers(*origin, requested ? copy.c_str() : nullptr, add);
        }
      } else {
        allowed = reply_headers(origin, add);
        add("Allow", st_->allow_on_options);
      }
      (void)req.reply(allowed || !st_->refuse_others ? 204 : 403);
      return false;
    }
    if (!reply_headers(origin, add) && st_->refuse_others) {
      (void)req.reply(403);
      return false;
    }
    return true;
  }

  /// Wraps `handler` so that the policy applies to every request it gets (see apply()).
  /// The result answers OPTIONS itself (handler_own_methods), so a server routing it lets
  /// OPTIONS through: add it to no method list yourself.
  template <class Handler>
  cors_handler<std::decay_t<Handler>> wrap(Handler&& handler) const {
    return cors_handler<std::decay_t<Handler>>(*this, std::forward<Handler>(handler));
  }

  /// The preflight methods (cors_options::methods).
  method_set methods() const noexcept { return st_->methods; }
  /// True with cors_options::credentials.
  bool credentials() const noexcept { return st_->credentials; }

 private:
  struct state {
    std::vector<std::string> origins;
    bool any_origin = false;
    bool credentials = false;
    bool any_header = false;
    bool refuse_others = false;
    method_set methods;
    std::string allow_methods;
    std::string allow_headers;
    std::string expose_headers;
    std::string max_age;
    std::string allow_on_options;
  };
  explicit cors(std::shared_ptr<const state> st) noexcept : st_(std::move(st)) {}

  const std::string* match(std::string_view origin) const noexcept {
    for (const auto& o : st_->origins)
      if (o == origin) return &o;
    return nullptr;
  }

  std::shared_ptr<const state> st_;
};

/// A request handler with a CORS policy in front (made by cors::wrap): the policy answers
/// OPTIONS and adds its headers, then `Handler` runs as it would unwrapped. Stored by
/// value, like any handler.
template <class Handler>
class cors_handler {
 public:
  /// OPTIONS reaches this handler whatever its route declares (see handler_own_methods).
  static constexpr method_set own_methods = method::options;

  /// The policy (shared) and the handler (by value).
  cors_handler(cors policy, Handler handler) noexcept(std::is_nothrow_move_constructible_v<Handler>)
      : policy_(std::move(policy)), handler_(std::move(handler)) {}

  /// Applies the policy, then calls the handler unless the policy answered.
  template <class Request>
    requires request_handler<Handler, Request>
  void operator()(Request& req) {
    if (policy_.apply(req)) (void)std::invoke(handler_, req);
  }

  /// The policy in front.
  const cors& policy() const noexcept { return policy_; }
  /// The wrapped handler, for access to its state.
  Handler& handler() noexcept { return handler_; }

 private:
  cors policy_;
  [[no_unique_address]] Handler handler_;
};

TETHER_END_NAMESPACE
