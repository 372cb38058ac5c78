// tether/client_address.hpp - who the client is when a reverse proxy (nginx) stands between
// it and tether: the address the proxy saw, read from the header the proxy writes, believed
// only when the connection comes from a proxy the server trusts.
/// @file
/// tether::client_address_of(request, proxy_trust): the client's address from
/// `X-Forwarded-For` or `Forwarded` (RFC 7239), or the socket peer. See docs/deploy.md.
//
// Anyone can send these headers. A proxy appends the address it saw to what the client
// sent, so only the RIGHTMOST entry is the proxy's word; everything to its left may be
// forged. And only a connection from the proxy itself makes that entry worth anything: a
// client that reaches tether directly could write the header too. So: no trusted proxy
// configured (the default) means the socket peer, always; a trusted peer means the last
// entry of the one header that proxy is configured to write (the other header is ignored,
// since the proxy passes it on from the client untouched: nginx's
// `$proxy_add_x_forwarded_for` does not touch `Forwarded`).
#pragma once

#include <tether/config.hpp>
#include <tether/headers.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

TETHER_BEGIN_NAMESPACE

/// Which header a trusted proxy writes the client's address into.
enum class forwarding_header {
  x_forwarded_for,  ///< `X-Forwarded-For: a, b, client` (nginx's $proxy_add_x_forwarded_for)
  forwarded,        ///< `Forwarded: for=a, for="[2001:db8::1]:4711"` (RFC 7239)
};

/// The proxies whose forwarding header tether believes. Default: none, so
/// client_address_of() gives the socket peer whatever the headers say.
struct proxy_trust {
  /// Socket addresses of the trusted proxies ("127.0.0.1", "::1", "10.0.0.7"); compared
  /// as addresses, so "::1" and "0:0::1" are the same. Entries that are not addresses are
  /// ignored.
  std::vector<std::string> proxies;
  /// The header those proxies write; the other one is never read.
  forwarding_header header = forwarding_header::x_forwarded_for;

  /// True if `peer` (an address as basic_connection::peer_address() gives it) is one of
  /// proxies.
  bool trusts(std::string_view peer) const {
    for (const auto& p : proxies)
      if (same_address(p, peer)) return true;
    return false;
  }

 private:
  static bool same_address(std::string_view a, std::string_view b) {
    if (a.size() >= INET6_ADDRSTRLEN || b.size() >= INET6_ADDRSTRLEN) return false;
    char sa[INET6_ADDRSTRLEN] = {}, sb[INET6_ADDRSTRLEN] = {};
    a.copy(sa, a.size());
    b.copy(sb, b.size());
    unsigned char ba[sizeof(in6_addr)] = {}, bb[sizeof(in6_addr)] = {};
    for (int family : {AF_INET, AF_INET6})
      if (::inet_pton(family, sa, ba) == 1 && ::inet_pton(family, sb, bb) == 1)
        return std::string_view(reinterpret_cast<char*>(ba), sizeof ba) ==
               std::string_view(reinterpret_cast<char*>(bb), sizeof bb);
    return false;
  }
};

/// Where a client_address came from.
enum class address_source {
  socket_peer,  ///< the connection's peer: no proxy is trusted, or this peer is not one
  header,       ///< the rightmost entry of the trusted proxy's forwarding header
  undisclosed,  ///< the proxy said `unknown` or gave an obfuscated identifier (`_hidden`)
  malformed,    ///< a trusted proxy, but its header is missing or unreadable
};

/// The client as the nearest trusted proxy saw it.
struct client_address {
  /// An IP address without port or brackets ("192.0.2.60", "2001:db8::1"). For
  /// undisclosed, the proxy's identifier ("unknown", "_hidden"); for malformed, the socket
  /// peer (the proxy's own address: never an address the client chose).
  std::string address;
  /// How address was obtained; check it before keying anything (rate limits, bans) on it.
  address_source source = address_source::socket_peer;
};

namespace detail {

inline bool is_ip_address(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  s.copy(buf, s.size());
  unsigned char out[sizeof(in6_addr)];
  return ::inet_pton(s.find(':') == std::string_view::npos ? AF_INET : AF_INET6, buf, out) == 1;
}

inline std::string_view trim_forwarding_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// Where the last top-level `sep` outside a quoted-string is in s, or npos; nullopt if a
/// quote is left open.
inline std::optional<std::size_t> last_unquoted(std::string_view s, char sep) {
  std::size_t last = std::string_view::npos;
  bool quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == sep) {
      last = i;
    }
  }
  if (quoted) return std::nullopt;
  return last;
}

inline bool is_obfuscated(std::string_view s) {  // RFC 7239 obfnode / obfport: "_" 1*(ALPHA / DIGIT / "." / "_" / "-")
  if (s.size() < 2 || s.front() != '_') return false;
  for (char c : s.substr(1))
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

inline bool is_node_port(std::string_view p) {
  if (is_obfuscated(p)) return true;
  if (p.empty() || p.size() > 5) return false;
  unsigned n = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  return n <= 65535;
}

/// One node ("192.0.2.1", "192.0.2.1:80", "[2001:db8::1]:80", "unknown", "_x") as
/// a client_address, or malformed.
inline client_address parse_node(std::string_view node) {
  if (node == "unknown" || node == "Unknown" || node == "UNKNOWN" || is_obfuscated(node))
    return {std::string(node), address_source::undisclosed};
  std::string_view host = node;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return {{}, address_source::malformed};
    const auto rest = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!rest.empty() && (rest.front() != ':' || !is_node_port(rest.substr(1)))) return {{}, address_source::malformed};
    if (host.find(':') == std::string_view::npos) return {{}, address_source::malformed};  // brackets hold IPv6 only
  } else if (const auto colon = host.find(':'); colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos) {
    if (!is_node_port(host.substr(colon + 1))) return {{}, address_source::malformed};
    host = host.substr(0, colon);  // IPv4 with a port
  } else if (colon != std::string_view::npos) {
    return {{}, address_source::malformed};  // RFC 7239 brackets IPv6; bare IPv6 only in X-Forwarded-For
  }
  if (!is_ip_address(host)) return {{}, address_source::malformed};
  return {std::string(host), address_source::header};
}

}  // namespace detail

/// The node of the last `for=` parameter of a `Forwarded` value (RFC 7239: the element
/// the nearest proxy appended), unquoted: `for=a, for="[2001:db8::1]:80"` gives
/// `[2001:db8::1]:80`. Nothing if the last element has no `for=` or the value is not
/// well formed (open quote, empty parameter, bad token).
inline std::optional<std::string> last_forwarded_for(std::string_view value) {
  const auto comma = detail::last_unquoted(value, ',');
  if (!comma) return std::nullopt;
  std::string_view element = *comma == std::string_view::npos ? value : value.substr(*comma + 1);
  std::optional<std::string> found;
  while (true) {
    const auto semi = detail::last_unquoted(element, ';');
    if (!semi) return std::nullopt;
    const std::string_view pair =
        detail::trim_forwarding_ows(*semi == std::string_view::npos ? element : element.substr(*semi + 1));
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) return std::nullopt;
    std::string_view key = pair.substr(0, eq);
    std::string_view raw = pair.substr(eq + 1);
    std::string v;
    if (!raw.empty() && raw.front() == '"') {
      if (raw.size() < 2 || raw.back() != '"') return std::nullopt;
      raw = raw.substr(1, raw.size() - 2);
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\\') {
          if (++i == raw.size()) return std::nullopt;
        } else if (raw[i] == '"') {
          return std::nullopt;
        }
        v.push_back(raw[i]);
      }
    } else {
      if (raw.empty()) return std::nullopt;
      for (char c : raw)  // a token: no separators, so an unquoted IPv6 or port is refused
        if (c <= ' ' || c >= 127 || std::string_view("\"(),/:;<=>?@[\\]{}").find(c) != std::string_view::npos)
          return std::nullopt;
      v = raw;
    }
    if (key.size() == 3 && (key[0] | 0x20) == 'f' && (key[1] | 0x20) == 'o' && (key[2] | 0x20) == 'r') {
      if (found) return std::nullopt;  // RFC 7239: each parameter at most once per element
      found = std::move(v);
    }
    if (*semi == std::string_view::npos) break;
    element = element.substr(0, *semi);
  }
  return found;
}

/// The client's address from the value of the trusted proxy's header (the last line of it
/// if the request had several), given the connection's peer and the trust settings. The
/// rule client_address_of() applies, without a request (for tests and other transports).
inline client_address resolve_client_address(std::string_view socket_peer, std::optional<std::string_view> header_value,
                                             const proxy_trust& trust) {
  if (!trust.trusts(socket_peer)) return {std::string(socket_peer), address_source::socket_peer};
  const client_address fallback{std::string(socket_peer), address_source::malformed};
  if (!header_value) return fallback;
  client_address out;
  if (trust.header == forwarding_header::forwarded) {
    const auto node = last_forwarded_for(*header_value);
    if (!node) return fallback;
    out = detail::parse_node(*node);
  } else {
    const auto comma = header_value->rfind(',');
    const auto last = detail::trim_forwarding_ows(comma == std::string_view::npos ? *header_value : header_value->substr(comma + 1));
    // nginx writes $remote_addr: a bare address, IPv6 unbracketed.
    out = detail::is_ip_address(last) ? client_address{std::string(last), address_source::header} : detail::parse_node(last);
  }
  return out.source == address_source::malformed ? fallback : out;
}

/// The client's address for `req` (any tether request type): the socket peer unless it is
/// one of trust.proxies, then the rightmost entry of the header they write. With the nginx
/// block of docs/deploy.md and `{.proxies = {"127.0.0.1"}}`, the address nginx saw.
template <class Request>
client_address client_address_of(Request& req, const proxy_trust& trust) {
  const auto peer = req.connection().peer_address();
  if (!trust.trusts(peer)) return {std::string(peer), address_source::socket_peer};
  const std::string_view name = trust.header == forwarding_header::forwarded ? "Forwarded" : "X-Forwarded-For";
  std::optional<std::string_view> last;
  for (const header_field f : req.input_headers()) {
    if (f.name.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i) same = (f.name[i] | 0x20) == (name[i] | 0x20);
    if (same) last = f.value;
  }
  return resolve_client_address(peer, last, trust);
}

TETHER_END_NAMESPACE
