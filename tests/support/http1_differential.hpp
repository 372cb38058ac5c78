// tests/support/http1_differential.hpp - tether's request parser against llhttp 8.1:
// the same bytes, the same splits, compared on accept/reject and on every parsed field.
//
// A disagreement is accepted only when it is one of the deliberate deviations listed in
// docs/http1-parser.md, each recognised by a narrow rule below:
//   * stricter: tether rejects with one of the listed errors where llhttp accepts;
//   * lenient: tether accepts where llhttp rejects, and rewriting the input the way the
//     rule says (the construct llhttp lacks, replaced by its plain equivalent) makes
//     llhttp accept it with the same messages tether produced from the original.
// Used by tests/differential/http1_llhttp_test.cpp and fuzz/parser_fuzz.cpp.
#pragma once

#define TETHER_TEST_WITH_LLHTTP 1
#include "http1_oracle.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace differential {

/// Rewrites chained to explain one input (one per deviating message, at most).
inline constexpr int max_rewrites = 16;

using tether::http1::parse_error;

/// Where tether is stricter than llhttp 8.1, and why (docs/http1-parser.md, "Deviations").
/// `applies`, when set, narrows the rule to inputs showing the construct at the offset
/// where tether found the error.
struct stricter_rule {
  parse_error error;
  const char* deviation;
  bool (*applies)(std::string_view in, std::size_t at) = nullptr;
};
inline bool at_colon(std::string_view in, std::size_t at) { return at < in.size() && in[at] == ':'; }
// A Transfer-Encoding line with an empty value before `at` (the end of the head).
inline bool empty_transfer_encoding(std::string_view in, std::size_t at) {
  const std::string_view head = in.substr(0, at);
  for (std::size_t p = head.find(':'); p != std::string_view::npos; p = head.find(':', p + 1)) {
    const auto line = head.rfind('\n', p);
    const auto name = head.substr(line == std::string_view::npos ? 0 : line + 1, p - (line == std::string_view::npos ? 0 : line + 1));
    if (!tether::http1::detail::iequals(name, "transfer-encoding")) continue;
    std::size_t v = p + 1;
    while (v < head.size() && (head[v] == ' ' || head[v] == '\t')) ++v;
    if (head.substr(v, 2) == "\r\n") return true;
  }
  return false;
}
inline const stricter_rule stricter_than_llhttp[] = {
    {parse_error::missing_host, "Host rules (RFC 9112 3.2); llhttp does not check Host"},
    {parse_error::duplicate_host, "Host rules (RFC 9112 3.2); llhttp does not check Host"},
    {parse_error::bad_host, "Host rules (RFC 9112 3.2); llhttp does not check Host"},
    {parse_error::obs_fold, "obs-fold rejected (RFC 9112 5.2); llhttp 8.1 joins it (CVE-2024-27982)"},
    {parse_error::whitespace_before_colon, "no whitespace in or after a field name (RFC 9112 5.1); llhttp 8.1 keeps SP in names"},
    {parse_error::bad_field_name, "empty field names rejected (RFC 9110 5.1); llhttp 8.1 accepts them", at_colon},
    {parse_error::bad_trailer, "empty trailer field names rejected (RFC 9110 5.1); llhttp 8.1 accepts them", at_colon},
    {parse_error::control_character, "no control characters in a request-target; llhttp 8.1 accepts FF in URLs",
     [](std::string_view in, std::size_t at) { return at < in.size() && in[at] == '\f'; }},
    {parse_error::bare_cr, "CR must be followed by LF (RFC 9112 2.2); llhttp 8.1 takes a bare CR as the end of the head"},
    {parse_error::bare_lf, "bare LF rejected everywhere (RFC 9112 2.2 allows either); llhttp 8.1 accepts it after the request line"},
    {parse_error::content_length_with_transfer_encoding,
     "an empty Transfer-Encoding still conflicts with Content-Length; llhttp 8.1 ignores an empty one",
     empty_transfer_encoding},
    {parse_error::transfer_encoding_in_http10, "Transfer-Encoding in HTTP/1.0 rejected (RFC 9112 6.1); llhttp accepts"},
    {parse_error::unsupported_transfer_coding, "codings before chunked get 501 (RFC 9112 6.1); llhttp accepts them"},
    {parse_error::duplicate_transfer_encoding, "a second Transfer-Encoding line is rejected; llhttp merges the lines"},
    {parse_error::chunked_not_final, "only a single chunked is served; llhttp accepts an empty value and some lists ending in chunked"},
    {parse_error::bad_request_line, "request line: exactly one SP, a version, at most one leading empty line (RFC 9112 2.2, 3); llhttp accepts "
     "several SPs and empty lines, and version-less (HTTP/0.9) lines"},
    {parse_error::bad_target, "request-target: one of the four forms, visible ASCII, no fragment (RFC 9112 3.2); llhttp 8.1 allows obs-text, "
     "'#' and any form"},
    {parse_error::unsupported_version, "HTTP/2.0 and 0.9 named in a request line get 505; llhttp parses them like 1.x"},
    {parse_error::bad_chunk_extension, "chunk-ext grammar (RFC 9112 7.1.1); llhttp 8.1 accepts a ';' without a name"},
    {parse_error::bad_chunk_end, "CRLF required after chunk data (RFC 9112 7.1); llhttp 8.1 does not check it"},
    {parse_error::chunk_size_overflow, "chunk-size of at most 16 hex digits; llhttp accepts leading zeros"},
    {parse_error::head_too_large, "limits: llhttp has none"},
    {parse_error::request_line_too_long, "limits: llhttp has none"},
    {parse_error::too_many_fields, "limits: llhttp has none"},
    {parse_error::body_too_large, "limits: llhttp has none"},
    {parse_error::chunk_extension_too_long, "limits: llhttp has none"},
    {parse_error::trailer_too_large, "limits: llhttp has none"},
};

inline const char* stricter_deviation(const oracle::outcome& t, std::string_view in) {
  if (!t.error) return nullptr;
  for (const auto& r : stricter_than_llhttp)
    if (r.error == t.tether_error && (r.applies == nullptr || r.applies(in, t.error_at))) return r.deviation;
  return nullptr;
}

/// llhttp 8.1's request methods (HTTP_METHOD_MAP in its llhttp.h); tether accepts any token.
inline bool llhttp_knows_method(std::string_view m) {
  static const char* const names[] = {
      "DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE", "COPY", "LOCK", "MKCOL", "MOVE",
      "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY",
      "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH", "PURGE", "MKCALENDAR", "LINK",
      "UNLINK", "SOURCE"};
  for (const char* n : names)
    if (m == n) return true;
  return false;
}

struct verdict {
  bool agree = true;
  std::string deviation;  // the documented deviation that explains a difference, if any
  std::string detail;     // for a disagreement: both outcomes
};

namespace detail {

inline std::vector<oracle::message> complete_messages(const oracle::outcome& o) {
  std::vector<oracle::message> out;
  for (const auto& m : o.messages)
    if (m.complete) out.push_back(m);
  return out;
}

inline bool same_head(const oracle::message& a, const oracle::message& b) {
  return a.method == b.method && a.target == b.target && a.major == b.major && a.minor == b.minor &&
         a.fields == b.fields;
}

// RFC 9112 9.3: `close` wins over `keep-alive`; llhttp 8.1 keeps an HTTP/1.0 connection
// open when both are present.
inline bool close_wins(const oracle::message& t, const oracle::message& l) {
  if (t.keep_alive || !l.keep_alive || t.minor != 0) return false;
  auto same = l;
  same.keep_alive = false;
  if (!(same == t)) return false;
  for (const auto& [n, v] : t.fields)
    if (tether::http1::detail::iequals(n, "connection") &&
        std::string(v).find("close") != std::string::npos)  // the corpus spells it in lower case
      return true;
  return false;
}
inline constexpr const char* close_wins_deviation =
    "close wins over keep-alive in HTTP/1.0 (RFC 9112 9.3); llhttp 8.1 keeps the connection";

inline verdict disagree(std::string_view in, const oracle::outcome& t, const oracle::outcome& l, const char* why) {
  return {false, "", std::string(why) + "\n  input:  " + oracle::printable(in) + "\n  tether: " + oracle::describe(t) +
                         "\n  llhttp: " + oracle::describe(l)};
}

// The rewrites behind the lenient deviations: each replaces, inside the bytes of the
// message llhttp refused, the construct llhttp lacks by its plain equivalent. Method,
// version and scheme rewrites apply to every message tether read (from the last, so the
// earlier offsets hold), since pipelined messages may all carry the construct.
inline std::string replace_method_at(std::string s, const oracle::message& m) {
  std::size_t at = m.begin;
  if (s.compare(at, 2, "\r\n") == 0) at += 2;  // a skipped empty line
  if (llhttp_knows_method(m.method)) return s;
  return s.replace(at, m.method.size(), "GET");
}
inline std::string replace_minor_at(std::string s, const oracle::message& m) {
  const auto v = s.find("HTTP/1.", m.begin);
  if (v != std::string::npos && v < m.head_end && m.minor >= 2) s[v + 7] = '1';
  return s;
}
inline std::string replace_scheme_at(std::string s, const oracle::message& m) {
  const auto sp = s.find(' ', m.begin);
  const auto colon = s.find(':', sp);
  const auto slashes = s.find("://", sp);
  if (sp == std::string::npos || colon == std::string::npos || slashes != colon || colon >= m.head_end) return s;
  return s.replace(sp + 1, colon - sp - 1, "http");
}
template <std::string (*Each)(std::string, const oracle::message&)>
std::string for_every_message(std::string_view in, const oracle::outcome& t) {
  std::string s(in);
  for (auto m = t.messages.rbegin(); m != t.messages.rend(); ++m) s = Each(std::move(s), *m);
  return s;
}
inline std::string replace_method(std::string_view in, const oracle::outcome& t, const oracle::message&) {
  return for_every_message<replace_method_at>(in, t);
}
inline std::string replace_minor(std::string_view in, const oracle::outcome& t, const oracle::message&) {
  return for_every_message<replace_minor_at>(in, t);
}
inline std::string replace_scheme(std::string_view in, const oracle::outcome& t, const oracle::message&) {
  return for_every_message<replace_scheme_at>(in, t);
}
// SP / HTAB at the end of the head's lines: OWS that tether trims from every value;
// llhttp 8.1 does not recognise `close` or `chunked` followed by HTAB, and rejects a
// Content-Length followed by HTAB.
inline std::string strip_trailing_ows(std::string_view in, const oracle::outcome&, const oracle::message& m) {
  std::string out(in.substr(0, m.begin));
  for (std::size_t i = m.begin; i < m.head_end; ++i) {
    if (in[i] == ' ' || in[i] == '\t') {
      std::size_t j = i;
      while (j < m.head_end && (in[j] == ' ' || in[j] == '\t')) ++j;
      if (j + 1 < in.size() && in[j] == '\r' && in[j + 1] == '\n') {
        i = j - 1;
        continue;
      }
    }
    out += in[i];
  }
  out += in.substr(m.head_end);
  return out;
}

// Chunk lines as llhttp 8.1 reads them: whitespace around ';' and '=' (BWS, RFC 9112
// 7.1.1) and quoted-pairs removed, token values quoted (tether delivered the data, so
// the chunk boundaries are known).
inline std::string strip_chunk_bws(std::string_view in, const oracle::outcome&, const oracle::message& m) {
  const std::size_t end = m.complete ? m.end : in.size();
  std::string out(in.substr(0, m.head_end));
  std::string_view body = in.substr(m.head_end, end - m.head_end);
  // Walk chunk lines: size [ext] CRLF data CRLF. The input may stop anywhere.
  while (!body.empty()) {
    const auto crlf = body.find("\r\n");
    std::string line(body.substr(0, crlf));
    std::string clean;
    std::size_t quotes = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (c == '"') ++quotes;
      if (c == '\\' && quotes % 2 == 1 && i + 1 < line.size()) {  // a quoted-pair: dropped
        ++i;
        continue;
      }
      if (c == ' ' || c == '\t') {
        // Drop whitespace next to ';' or '=' (before or after), keep it inside quotes.
        std::size_t j = i;
        while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
        const char next = j < line.size() ? line[j] : '\0';
        const char prev = clean.empty() ? '\0' : clean.back();
        const bool in_quotes = quotes % 2 == 1;
        if (!in_quotes && (next == ';' || next == '=' || prev == ';' || prev == '=')) {
          i = j - 1;
          continue;
        }
      }
      clean += c;
    }
    // Token values become quoted-strings, which RFC 9110 5.6.4 makes equivalent: llhttp
    // 8.1 rejects a ';' after an unquoted value.
    // obs-text in quoted values (qdtext, RFC 9110 5.6.4) becomes 'x': llhttp 8.1 rejects it.
    std::string quoted;
    bool in_string = false;
    for (std::size_t i = 0; i < clean.size(); ++i) {
      if (clean[i] == '"') in_string = !in_string;
      quoted += static_cast<unsigned char>(clean[i]) >= 0x80 ? 'x' : clean[i];
      if (!in_string && clean[i] == '=' && i + 1 < clean.size() && clean[i + 1] != '"') {
        quoted += '"';
        std::size_t j = i + 1;
        while (j < clean.size() && clean[j] != ';') quoted += clean[j++];
        quoted += '"';
        i = j - 1;
      }
    }
    out += quoted;
    if (crlf == std::string_view::npos) break;
    out += "\r\n";
    body.remove_prefix(crlf + 2);
    std::size_t size = 0;
    for (const char c : clean) {
      const int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
      if (d < 0) break;
      size = size * 16 + static_cast<std::size_t>(d);
    }
    if (size == 0) {  // last chunk: the trailer section follows unchanged
      out += body;
      break;
    }
    if (body.size() < size + 2) {
      out += body;
      break;
    }
    out += body.substr(0, size + 2);
    body.remove_prefix(size + 2);
  }
  out += in.substr(end);
  return out;
}

// The trailer section of a complete chunked message, emptied: tether parses trailer
// fields and never applies them; llhttp 8.1 applies Content-Length and Connection there.
inline std::string drop_trailers(std::string_view in, const oracle::outcome&, const oracle::message& m) {
  if (!m.complete) return std::string(in);
  std::string_view body = in.substr(m.head_end, m.end - m.head_end);
  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto crlf = body.find("\r\n", pos);
    if (crlf == std::string_view::npos) return std::string(in);
    std::size_t size = 0;
    std::size_t i = pos;
    for (; i < crlf; ++i) {
      const char c = body[i];
      const int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
      if (d < 0) break;
      size = size * 16 + static_cast<std::size_t>(d);
    }
    if (i == pos) return std::string(in);  // not chunked
    if (size == 0) {
      std::string out(in.substr(0, m.head_end + crlf + 2));
      out += "\r\n";
      out += in.substr(m.end);
      return out;
    }
    pos = crlf + 2 + size + 2;
  }
  return std::string(in);
}

}  // namespace detail

inline verdict compare(std::string_view in, const std::vector<std::size_t>& cuts, int depth = 0);

namespace detail {

// tether accepted message `m`, at which llhttp failed with `lerr`: is that a lenient
// deviation? The rewrite must make llhttp accept it, with tether's reading unchanged.
inline verdict explain_lenient(std::string_view in, const std::vector<std::size_t>& cuts, const oracle::outcome& t,
                               const oracle::outcome& l, const oracle::message& m, int depth,
                               bool keep_alive_differs = false) {
  if (depth >= max_rewrites) return disagree(in, t, l, "tether accepts what llhttp rejects (too many rewrites)");
  struct rule {
    const char* deviation;
    bool applies;
    std::string (*rewrite)(std::string_view, const oracle::outcome&, const oracle::message&);
  };
  const std::string& err = l.error_name;
  const bool chunk_error = err.rfind("HPE_INVALID_CHUNK_SIZE", 0) == 0 ||
                           (err.rfind("HPE_STRICT", 0) == 0 && err.find("chunk extension") != std::string::npos);
  const rule rules[] = {
      {"methods are any token (RFC 9110 9.1); llhttp knows a fixed list",
       err.rfind("HPE_INVALID_METHOD", 0) == 0 && !llhttp_knows_method(m.method), replace_method},
      {"HTTP/1.2 to 1.9 are processed as HTTP/1.1 (RFC 9110 2.5); llhttp rejects them",
       err.rfind("HPE_INVALID_VERSION", 0) == 0 && m.minor >= 2, replace_minor},
      {"chunk extensions: BWS, quoted-pairs, obs-text, ';' after a token value (RFC 9112 7.1.1); llhttp 8.1 "
       "rejects them", chunk_error,
       strip_chunk_bws},
      {"trailer fields are parsed and never applied (RFC 9110 6.5.1); llhttp 8.1 applies Content-Length and "
       "Connection from trailers",
       keep_alive_differs || err.find("CONTENT_LENGTH") != std::string::npos ||
           err.find("TRANSFER_ENCODING") != std::string::npos,
       drop_trailers},
      {"field values are OWS-trimmed, HTAB included (RFC 9110 5.5); llhttp 8.1 misses `close` and `chunked` "
       "followed by HTAB, and rejects such a Content-Length",
       true, strip_trailing_ows},
      {"URI schemes with digits, '+', '-' or '.' (RFC 3986 3.1); llhttp 8.1 allows letters only",
       err.find("url schema") != std::string::npos, replace_scheme},
  };
  for (const auto& r : rules) {
    if (!r.applies) continue;
    const std::string rewritten = r.rewrite(in, t, m);
    if (rewritten == in) continue;
    // The rewrite must not change tether's reading (apart from the rewritten method or
    // version), and llhttp must now agree with it.
    const auto t2 = oracle::run_tether(rewritten, {});
    auto before = complete_messages(t);
    auto after = complete_messages(t2);
    for (auto* v : {&before, &after})
      for (auto& x : *v) {
        if (x.minor >= 2) x.minor = 1;
      }
    // The rewritten text itself (a method, a scheme) differs by construction.
    for (std::size_t i = 0; i < before.size() && i < after.size(); ++i) {
      if (r.rewrite == replace_method) before[i].method = after[i].method;
      if (r.rewrite == replace_scheme) before[i].target = after[i].target;
    }
    if (!(before == after && t.error == t2.error)) continue;
    auto v = compare(rewritten, {}, depth + 1);
    if (v.agree) {
      v.deviation = v.deviation.empty() ? r.deviation : std::string(r.deviation) + " | " + v.deviation;
      (void)cuts;
      return v;
    }
  }
  return disagree(in, t, l, "tether accepts a message llhttp rejects");
}

}  // namespace detail

/// Runs both parsers over `in` fed in pieces ending at `cuts`, and says whether they
/// agree, agree up to a documented deviation, or disagree.
inline verdict compare(std::string_view in, const std::vector<std::size_t>& cuts, int depth) {
  const auto t = oracle::run_tether(in, cuts);
  const auto l = oracle::run_llhttp(in, cuts);
  const auto ct = detail::complete_messages(t);
  auto cl = detail::complete_messages(l);
  const char* const stricter = stricter_deviation(t, in);

  // llhttp hands the connection over after CONNECT or an Upgrade request: compare up to
  // that head. tether parses on (it never switches protocols; the server decides).
  if (l.upgrade && !l.messages.empty()) {
    const auto& up = l.messages.back();
    const std::size_t k = l.messages.size() - 1;
    for (std::size_t i = 0; i < k; ++i)
      if (i >= t.messages.size() || !(t.messages[i] == l.messages[i]))
        return t.error && stricter && t.messages.size() <= i ? verdict{true, stricter, ""}
                                                             : detail::disagree(in, t, l, "messages differ before an upgrade");
    if (t.messages.size() <= k) {
      if (t.error && stricter) return {true, stricter, ""};
      return detail::disagree(in, t, l, "tether lacks llhttp's upgrade request");
    }
    if (!detail::same_head(t.messages[k], up)) return detail::disagree(in, t, l, "upgrade request heads differ");
    return {true, "llhttp stops at CONNECT / Upgrade; tether parses on", ""};
  }

  // After a message that closes the connection tether parses nothing more (RFC 9112 9.6).
  if (t.closed) {
    if (cl.size() < ct.size()) {
      if (l.error) return detail::explain_lenient(in, cuts, t, l, ct[cl.size()], depth);
      return detail::disagree(in, t, l, "llhttp has fewer messages before the close");
    }
    cl.resize(ct.size());
    if (ct == cl) return {true, "", ""};
    for (std::size_t i = 0; i < ct.size(); ++i) {
      if (ct[i] == cl[i]) continue;
      if (detail::close_wins(ct[i], cl[i])) return {true, detail::close_wins_deviation, ""};
      auto kept = cl[i];
      kept.keep_alive = ct[i].keep_alive;
      if (kept == ct[i]) return detail::explain_lenient(in, cuts, t, l, ct[i], depth, true);
      break;
    }
    return detail::disagree(in, t, l, "messages differ before the close");
  }

  const std::size_t common = std::min(ct.size(), cl.size());
  for (std::size_t i = 0; i < common; ++i) {
    if (ct[i] == cl[i]) continue;
    if (detail::close_wins(ct[i], cl[i])) return {true, detail::close_wins_deviation, ""};
    auto kept = cl[i];
    kept.keep_alive = ct[i].keep_alive;
    if (kept == ct[i]) return detail::explain_lenient(in, cuts, t, l, ct[i], depth, true);
    return detail::disagree(in, t, l, "a complete message differs");
  }

  if (ct.size() < cl.size()) {
    // tether stopped earlier: only by a stricter rule.
    if (t.error && stricter) return {true, stricter, ""};
    return detail::disagree(in, t, l, "tether stops before llhttp");
  }
  if (ct.size() > cl.size()) {
    if (l.error) return detail::explain_lenient(in, cuts, t, l, ct[cl.size()], depth);
    return detail::disagree(in, t, l, "llhttp stops before tether");
  }
  // The same complete messages.
  if (t.error && l.error) return {true, "", ""};
  if (t.error) {
    if (stricter) return {true, stricter, ""};
    // tether rejected a line as soon as it was complete, where llhttp is still waiting
    // for the end of the head: ending the input settles it.
    if (depth < max_rewrites && t.messages.size() == l.messages.size()) {
      auto v = compare(std::string(in) + "\r\n\r\n", {}, depth + 1);
      if (v.agree) return v;
    }
    return detail::disagree(in, t, l, "tether rejects what llhttp accepts");
  }
  if (l.error) {
    // llhttp failed on a message tether has only partly (head, some body).
    if (t.messages.size() > ct.size()) {
      auto v = detail::explain_lenient(in, cuts, t, l, t.messages.back(), depth);
      if (v.agree) return v;
    }
    // tether is still waiting for the end of a line it judges as a whole, where llhttp
    // rejected a prefix byte by byte. Ending the input settles it: tether must then
    // reject too, or accept only what a lenient deviation explains.
    if (depth < max_rewrites) {
      const std::string ended = std::string(in) + "\r\n\r\n";
      const auto t2 = oracle::run_tether(ended, {});
      if (t2.error && detail::complete_messages(t2) == ct) return {true, "", ""};  // both reject
      auto v = compare(ended, {}, depth + 1);
      if (v.agree) return v;
    }
    return detail::disagree(in, t, l, "llhttp rejects a prefix tether accepts once complete");
  }
  if (t.messages != l.messages) return detail::disagree(in, t, l, "partial messages differ");
  return {true, "", ""};
}

}  // namespace differential
