// tether/detail/request_screen.hpp - refuses request heads that a front server must not
// pass on, before any handler (or tether's own 404/405) sees them.
//
// libevent 2.1.12 (Debian's build, probed in tests/integration/hardening_test.cpp) frames
// a request by the *first* Content-Length, reads no body for HEAD and TRACE whatever they
// declare, accepts `Transfer-Encoding: gzip, chunked` as chunked, `+5` as a length,
// `HTTP/0.0`, `HTTP/1.10` and `HTTP/1.99999999999999999999` (answered as "HTTP/1.-1"),
// and keeps `Content-Length : 5` as a header named "Content-Length ". Behind a proxy
// that reads the same bytes differently, each is a way to smuggle a second request
// (RFC 9112 section 11.2). By the time a handler is called libevent has read the head
// and the body it believed in; refusing here with `Connection: close` (basic_request's
// refuse(), run by invoke_handler) means nothing after that point on the connection is
// ever parsed as a request.
//
// The rules (docs/security.md has the table and the reasons):
//  * version: HTTP/1.0 and HTTP/1.1; HTTP/1.2 to HTTP/1.9 are served as HTTP/1.1 (RFC
//    9110 section 2.5); anything else is 400;
//  * header names are RFC 9110 tokens (no whitespace before the colon);
//  * at most one Content-Length, one Transfer-Encoding and one Host line;
//  * Content-Length is 1*DIGIT (after optional whitespace is trimmed);
//  * Transfer-Encoding: never with Content-Length, never in HTTP/1.0, must end in
//    `chunked` (else 400); any other coding before it is 501;
//  * HEAD and TRACE, which libevent reads no body for, must not declare one.
#pragma once

#include <tether/config.hpp>
#include <tether/headers.hpp>

#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include <cstddef>
#include <string_view>

TETHER_BEGIN_NAMESPACE
namespace detail {

/// The outcome of screening a request head: status 0 means it may be served.
struct screen_verdict {
  int status = 0;
  const char* what = nullptr;
};

/// `name` (a validated token) equals `lower`, an all-lowercase literal, ignoring case.
/// Setting bit 0x20 lowercases letters and leaves the other token octets distinct from
/// letters and '-', so it is exact for tokens.
constexpr bool token_iequals(const char* name, std::string_view lower) noexcept {
  for (std::size_t i = 0; i < lower.size(); ++i)
    if ((static_cast<unsigned char>(name[i]) | 0x20u) != static_cast<unsigned char>(lower[i])) return false;
  return true;
}

constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

constexpr std::string_view trim_ows(std::string_view v) noexcept {
  while (!v.empty() && is_ows(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_ows(v.back())) v.remove_suffix(1);
  return v;
}

/// RFC 9112 section 6.2: Content-Length = 1*DIGIT. libevent's strtoll also takes a sign
/// and leading whitespace other than OWS.
constexpr bool valid_content_length(std::string_view v, bool& zero) noexcept {
  v = trim_ows(v);
  if (v.empty()) return false;
  zero = true;
  for (const char c : v) {
    if (c < '0' || c > '9') return false;
    zero = zero && c == '0';
  }
  return true;
}

/// Transfer-Encoding must be exactly one `chunked` (case-insensitive, OWS allowed around
/// list elements). 400 when the last coding is not chunked (RFC 9112 section 6.3, item
/// 4: the length cannot be determined) or the list is malformed; 501 when chunked comes
/// last after codings tether does not implement (RFC 9112 section 6.1).
constexpr screen_verdict check_transfer_encoding(std::string_view v) noexcept {
  std::size_t codings = 0;
  std::string_view last;
  for (;;) {
    const std::size_t comma = v.find(',');
    last = trim_ows(v.substr(0, comma));
    if (last.empty()) return {400, "malformed Transfer-Encoding"};
    ++codings;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  if (last.size() != 7 || !token_iequals(last.data(), "chunked")) return {400, "Transfer-Encoding does not end in chunked"};
  if (codings != 1) return {501, "unsupported transfer coding"};
  return {};
}

/// Screens `r`'s head (see the file comment). Serves HTTP/1.2 to 1.9 as HTTP/1.1 by
/// rewriting the request's version, so that handlers and libevent's reply agree.
inline screen_verdict screen_request(evhttp_request* r) noexcept {
  if (r->major != 1 || r->minor < 0 || r->minor > 9) return {400, "unsupported HTTP version"};
  if (r->minor > 1) r->minor = 1;

  const char* content_length = nullptr;
  const char* transfer_encoding = nullptr;
  bool host = false;
  // The struct's fields rather than libevent's accessors: no call per request.
  for (const evkeyval* kv = r->input_headers->tqh_first; kv; kv = kv->next.tqe_next) {
    const char* name = kv->key;
    // Length and validity in one pass, without a branch per octet.
    std::size_t n = 0;
    unsigned valid = 1;
    for (unsigned char c; (c = static_cast<unsigned char>(name[n])) != 0; ++n) valid &= is_tchar(c) ? 1u : 0u;
    if (valid == 0 || n == 0) return {400, "invalid header name"};
    if (n == 14 && token_iequals(name, "content-length")) {
      if (content_length) return {400, "duplicate Content-Length"};
      content_length = kv->value;
    } else if (n == 17 && token_iequals(name, "transfer-encoding")) {
      if (transfer_encoding) return {400, "duplicate Transfer-Encoding"};
      transfer_encoding = kv->value;
    } else if (n == 4 && token_iequals(name, "host")) {
      if (host) return {400, "duplicate Host"};
      host = true;
    }
  }

  bool zero_length = true;
  if (content_length && !valid_content_length(content_length, zero_length)) return {400, "invalid Content-Length"};
  if (transfer_encoding) {
    if (content_length) return {400, "Content-Length with Transfer-Encoding"};
    if (r->minor == 0) return {400, "Transfer-Encoding in HTTP/1.0"};
    if (const screen_verdict v = check_transfer_encoding(transfer_encoding); v.status != 0) return v;
  }
  // libevent reads no body for these: a declared one would be parsed as the next request.
  const evhttp_cmd_type cmd = r->type;
  if ((cmd == EVHTTP_REQ_HEAD || cmd == EVHTTP_REQ_TRACE) && (transfer_encoding || !zero_length))
    return {400, "body on a request libevent reads no body for"};
  return {};
}

}  // namespace detail
TETHER_END_NAMESPACE
