// tests/support/http1_oracle.hpp - run a byte string through tether's HTTP/1.1 request
// parser or through llhttp (Debian's node-llhttp C sources), split into pieces, and
// describe what each saw in the same terms, so tests can compare them field by field.
#pragma once

#include <tether/http1/request_parser.hpp>

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(TETHER_TEST_WITH_LLHTTP)
#  include <llhttp.h>
#endif

namespace oracle {

struct message {
  std::string method;
  std::string target;
  int major = 0;
  int minor = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
  bool keep_alive = false;
  bool complete = false;  // the message reached its end
  // Where the message lies in the input (tether only; not compared).
  std::size_t begin = 0, head_end = 0, end = 0;
  friend bool operator==(const message& a, const message& b) {
    return a.method == b.method && a.target == b.target && a.major == b.major && a.minor == b.minor &&
           a.fields == b.fields && a.body == b.body && a.keep_alive == b.keep_alive && a.complete == b.complete;
  }
};

struct outcome {
  std::vector<message> messages;  // complete ones, then possibly one with only a head
  bool error = false;
  std::string error_name;         // tether: the parse_error value; llhttp: its errno name
  tether::http1::parse_error tether_error = tether::http1::parse_error::none;
  std::size_t error_at = 0;       // tether: the input offset where the error was found
  bool closed = false;            // tether stopped after a message that closes the connection
  bool upgrade = false;           // llhttp stopped at a CONNECT or an Upgrade request
};

inline std::string describe(const message& m) {
  std::string s = m.method + " " + m.target + " HTTP/" + std::to_string(m.major) + "." + std::to_string(m.minor);
  for (const auto& [n, v] : m.fields) s += " | " + n + ": " + v;
  s += " | body(" + std::to_string(m.body.size()) + ")=" + m.body.substr(0, 40);
  s += m.keep_alive ? " keep-alive" : " close";
  s += m.complete ? " complete" : " head-only";
  return s;
}
inline std::string describe(const outcome& o) {
  std::string s;
  for (const auto& m : o.messages) s += "[" + describe(m) + "] ";
  if (o.error) s += "ERROR " + o.error_name;
  if (o.closed) s += "closed";
  if (o.upgrade) s += "upgrade";
  return s;
}

inline std::string printable(std::string_view in) {
  std::string s;
  for (const unsigned char c : in) {
    if (c == '\r') s += "\\r";
    else if (c == '\n') s += "\\n";
    else if (c == '\t') s += "\\t";
    else if (c < 0x20 || c >= 0x7F) {
      static const char hex[] = "0123456789abcdef";
      s += "\\x";
      s += hex[c >> 4];
      s += hex[c & 15];
    } else s += static_cast<char>(c);
  }
  return s;
}

/// Runs tether's parser over `in`, fed as pieces ending at each of `cuts` (offsets,
/// ascending) and then at the end. The read buffer is compacted (the consumed prefix
/// erased, moving the rest) after every step and reallocated between reads, so any
/// pointer the parser kept into it would be caught by ASan or a wrong field.
template <std::size_t N = 100>
outcome run_tether(std::string_view in, const std::vector<std::size_t>& cuts = {},
                   const tether::http1::parser_limits& limits = {}) {
  using namespace tether::http1;
  basic_request_parser<N> parser(limits);
  outcome out;
  std::string buf;
  std::size_t fed = 0;
  std::size_t done = 0;  // input bytes consumed so far
  message current;
  bool have_head = false;
  auto pieces = cuts;
  pieces.push_back(in.size());
  for (const std::size_t cut : pieces) {
    if (cut < fed) continue;
    std::string grown;  // a new allocation each read: a realloc'ing buffer
    grown.reserve(buf.size() + (cut - fed) + 1);
    grown.append(buf).append(in.substr(fed, cut - fed));
    buf.swap(grown);
    fed = cut;
    for (int guard = 0; guard < 1000000; ++guard) {
      const parse_step step = parser.parse(buf.data(), buf.size());
      if (step.event == parse_event::need_more) {
        buf.erase(0, step.consumed);
        done += step.consumed;
        break;
      }
      if (step.event == parse_event::error) {
        out.error = true;
        out.tether_error = parser.error();
        out.error_at = done + parser.error_offset();
        out.error_name = std::string(message_of(parser.error()));
        if (have_head) out.messages.push_back(current);
        return out;
      }
      if (step.event == parse_event::closed) {
        out.closed = true;
        return out;
      }
      if (step.event == parse_event::head) {
        const auto v = parser.view(buf.data());
        current = message{};
        current.method = std::string(v.method_text());
        current.target = std::string(v.target());
        current.major = 1;
        current.minor = v.head().declared_minor;
        for (std::size_t i = 0; i != v.field_count(); ++i)
          current.fields.emplace_back(std::string(v.field(i).name), std::string(v.field(i).value));
        current.keep_alive = v.head().keep_alive;
        current.begin = done;
        current.head_end = done + step.consumed;
        have_head = true;
      } else if (step.event == parse_event::body) {
        current.body.append(buf.data() + step.data_offset, step.data_size);
      } else if (step.event == parse_event::end) {
        current.complete = true;
        current.end = done + step.consumed;
        out.messages.push_back(std::move(current));
        current = message{};
        have_head = false;
      }
      buf.erase(0, step.consumed);  // memmove of the unconsumed tail to the front
      done += step.consumed;
    }
  }
  if (have_head) out.messages.push_back(current);
  return out;
}

#if defined(TETHER_TEST_WITH_LLHTTP)
namespace llhttp_detail {
struct state {
  outcome* out;
  message current;
  bool in_value = false;
  bool have_message = false;
  bool in_trailers = false;  // llhttp reports trailer fields like header fields
  std::vector<std::pair<std::string, std::string>> trailers;
  std::vector<std::pair<std::string, std::string>>& fields() { return in_trailers ? trailers : current.fields; }
};
inline state& st(llhttp_t* p) { return *static_cast<state*>(p->data); }
inline int on_message_begin(llhttp_t* p) {
  st(p).current = message{};
  st(p).in_value = false;
  st(p).have_message = true;
  st(p).in_trailers = false;
  st(p).trailers.clear();
  return 0;
}
inline int on_url(llhttp_t* p, const char* at, std::size_t n) {
  st(p).current.target.append(at, n);
  return 0;
}
inline int on_header_field(llhttp_t* p, const char* at, std::size_t n) {
  auto& s = st(p);
  if (s.in_value || s.fields().empty()) s.fields().emplace_back();
  s.in_value = false;
  s.fields().back().first.append(at, n);
  return 0;
}
inline int on_header_field_complete(llhttp_t* p) {
  auto& s = st(p);
  if (s.fields().empty()) s.fields().emplace_back();
  s.in_value = true;  // a value follows, even an empty one
  return 0;
}
inline int on_header_value(llhttp_t* p, const char* at, std::size_t n) {
  auto& s = st(p);
  s.in_value = true;
  s.fields().back().second.append(at, n);
  return 0;
}
inline int on_header_value_complete(llhttp_t* p) {
  // RFC 9112 5: the value excludes trailing whitespace; llhttp 8.1 leaves it in.
  auto& v = st(p).fields().back().second;
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  return 0;
}
inline int on_headers_complete(llhttp_t* p) {
  st(p).in_trailers = true;
  st(p).in_value = false;
  auto& m = st(p).current;
  m.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(p)));
  m.major = llhttp_get_http_major(p);
  m.minor = llhttp_get_http_minor(p);
  m.keep_alive = llhttp_should_keep_alive(p) != 0;
  return 0;
}
inline int on_body(llhttp_t* p, const char* at, std::size_t n) {
  st(p).current.body.append(at, n);
  return 0;
}
inline int on_message_complete(llhttp_t* p) {
  auto& s = st(p);
  s.current.keep_alive = llhttp_should_keep_alive(p) != 0;
  s.current.complete = true;
  s.out->messages.push_back(std::move(s.current));
  s.current = message{};
  s.have_message = false;
  return 0;
}
}  // namespace llhttp_detail

/// Runs llhttp 8.1 (default, non-lenient settings, as Node uses it) over `in`, fed as
/// the same pieces as run_tether.
inline outcome run_llhttp(std::string_view in, const std::vector<std::size_t>& cuts = {}) {
  namespace d = llhttp_detail;
  outcome out;
  d::state s{&out, {}, false, false, false, {}};
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_begin = d::on_message_begin;
  settings.on_url = d::on_url;
  settings.on_header_field = d::on_header_field;
  settings.on_header_field_complete = d::on_header_field_complete;
  settings.on_header_value = d::on_header_value;
  settings.on_header_value_complete = d::on_header_value_complete;
  settings.on_headers_complete = d::on_headers_complete;
  settings.on_body = d::on_body;
  settings.on_message_complete = d::on_message_complete;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = &s;
  std::size_t fed = 0;
  auto pieces = cuts;
  pieces.push_back(in.size());
  for (const std::size_t cut : pieces) {
    if (cut < fed) continue;
    const auto err = llhttp_execute(&parser, in.data() + fed, cut - fed);
    fed = cut;
    if (err == HPE_PAUSED_UPGRADE) {
      out.upgrade = true;
      break;
    }
    if (err != HPE_OK) {
      out.error = true;
      out.error_name = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser);
      break;
    }
  }
  if (s.have_message && !out.error && !out.upgrade && !s.current.method.empty()) out.messages.push_back(s.current);
  if (s.have_message && (out.error || out.upgrade) && !s.current.method.empty()) out.messages.push_back(s.current);
  return out;
}
#endif

}  // namespace oracle
