// tether/http1/request_parser.hpp - an incremental, allocation-free HTTP/1.1 request
// parser (RFC 9112), independent of any event loop.
//
// The parser is a pull parser over the caller's read buffer. Each call to parse() is
// given every byte the caller has not yet consumed, starting at the first one, and
// answers with one step: more bytes needed, the head is complete, a span of body bytes,
// the end of the message, or an error. The caller drops `consumed` bytes from the front
// of its input (or just advances past them) and calls again with the rest.
//
//     tether::http1::request_parser parser;
//     std::string_view in = ...;                      // bytes read, not yet consumed
//     for (;;) {
//       const auto step = parser.parse(in.data(), in.size());
//       if (step.event == tether::http1::parse_event::need_more) break;  // read more
//       if (step.event == tether::http1::parse_event::head) {
//         auto req = parser.view(in.data());         // method, target, fields
//         ...
//       }
//       if (step.event == tether::http1::parse_event::body) use(in.substr(step.data_offset, step.data_size));
//       if (step.event == tether::http1::parse_event::error) answer(status_of(parser.error()));
//       in.remove_prefix(step.consumed);
//     }
//
// Views into the buffer. While a head is incomplete, parse() consumes nothing: the caller
// passes the head again, grown, on the next call. The parser remembers how far it has
// validated (whole lines), so each byte is examined once whatever the split, down to one
// byte per call. A complete head is described by offsets from its first byte (16-bit
// offset and length pairs, so max_head_bytes is at most 65,535): view(base) turns them
// into string_views for any `base` that holds the head's bytes. The offsets survive a
// memmove of the unconsumed tail to the front of the buffer, a realloc, or a copy of the
// head elsewhere; the string_views from view() live only as long as the bytes they point
// at. Body spans are offsets into the input of the call that returned them.
//
// What is accepted (docs/http1-parser.md has the full table and the reasons):
//   * request line: `token SP request-target SP HTTP/1.d CRLF`, exactly one SP each;
//     origin-form, absolute-form, authority-form (CONNECT only), `*` (OPTIONS only);
//     HTTP/1.0 and HTTP/1.1; HTTP/1.2 to 1.9 are processed as HTTP/1.1 (RFC 9110
//     section 2.5); HTTP/0.x and 2 to 9 are answered 505; anything else is 400.
//   * at most one empty line before the request line (RFC 9112 section 2.2);
//   * lines end in CRLF: a bare CR or a bare LF is an error anywhere, as are control
//     characters other than HTAB (NUL, DEL...), obs-fold and whitespace before the colon;
//   * one Content-Length of digits only; Transfer-Encoding only as a single, final
//     `chunked`, never with Content-Length, never in HTTP/1.0; Host exactly once in 1.1;
//   * chunked bodies with RFC 9112 section 7.1.1 extensions (parsed, capped, discarded)
//     and trailer fields (parsed, capped, discarded: never applied as framing).
/// @file
/// tether::http1::request_parser: an incremental, allocation-free HTTP/1.1 request parser
/// (RFC 9112) over the caller's read buffer, with parser_limits, request_head and
/// request_view. See docs/http1-parser.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/http1_scan.hpp>
#include <tether/http1/parse_error.hpp>
#include <tether/method.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string_view>

TETHER_BEGIN_NAMESPACE
namespace http1 {

/// The bounds the parser enforces. Each one, when exceeded, is an error with its own
/// status (see parse_error).
struct parser_limits {
  /// A max_body_bytes that never refuses a body.
  static constexpr std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();

  /// Bytes from the first byte of the request (a skipped empty line included) through
  /// the CRLF that ends the head: 431 past it (414 if the request line is not finished).
  /// At most 65,535; larger values are treated as 65,535. The trailer section of a
  /// chunked body has the same bound.
  std::uint32_t max_head_bytes = 8192;
  /// Field lines in the head (and separately in the trailer section): 431 past it.
  /// At most the parser's FieldCapacity.
  std::uint32_t max_fields = 100;
  /// Content bytes: a larger Content-Length, or chunks adding up to more, get 413.
  std::uint64_t max_body_bytes = std::uint64_t{1} << 20;
  /// Chunk-extension bytes in one message, all chunks together (each extension is
  /// parsed and discarded; the cap bounds the work a body of tiny chunks can cause).
  std::uint32_t max_chunk_ext_bytes = 4096;
};

/// A piece of the head: `offset` bytes from the head's first byte, `size` bytes long.
struct text_slice {
  std::uint16_t offset = 0;  ///< from the head's first byte
  std::uint16_t size = 0;    ///< in bytes
  /// The piece as a view into `head_base`, the bytes the head was parsed from (wherever
  /// they are now).
  constexpr std::string_view in(const char* head_base) const noexcept { return {head_base + offset, size}; }
};

/// A field line's name and value (the value without leading and trailing whitespace).
struct field_slices {
  text_slice name;   ///< the field name, as sent
  text_slice value;  ///< the value without surrounding SP / HTAB
};

/// One field as string_views, from request_view::field().
struct field_view {
  std::string_view name;   ///< the field name, as sent
  std::string_view value;  ///< the value without surrounding SP / HTAB
};

/// The four forms of request-target (RFC 9112 section 3.2).
enum class target_form : std::uint8_t { origin, absolute, authority, asterisk };

/// How the body is delimited (RFC 9112 section 6.3).
enum class body_framing : std::uint8_t { none, content_length, chunked };

/// Everything the parser learnt from a complete head, besides the fields themselves.
struct request_head {
  text_slice method_text;  ///< the method token, as sent
  text_slice target;       ///< the request-target, as sent
  /// The method as tether::method bits; 0 for a method tether has no name for (it is
  /// still a valid token, and method_text has it).
  std::uint16_t method_bits = 0;
  target_form form = target_form::origin;  ///< which of the four forms the target has
  /// 0 or 1: the minor version the request is processed as.
  std::uint8_t version_minor = 1;
  /// The minor digit the client sent: 2 to 9 are processed as 1.
  std::uint8_t declared_minor = 1;
  body_framing framing = body_framing::none;  ///< how the body is delimited
  /// After this request the connection may carry another (HTTP/1.1 without
  /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
  bool keep_alive = true;
  /// `Expect: 100-continue` in an HTTP/1.1 request: answer 100 before reading the body
  /// (or a final status instead). HTTP/1.0 requests never set it (RFC 9110 10.1.1).
  bool expect_continue = false;
  /// An Expect value other than 100-continue: a server may answer 417.
  bool expect_unsupported = false;
  /// `Connection: upgrade` was present (the parser itself never switches protocols).
  bool connection_upgrade = false;
  /// Index of the Host field in the fields, -1 if there is none (HTTP/1.0).
  std::int32_t host_field = -1;
  std::uint32_t field_count = 0;  ///< field lines in the head (fields().size())
  /// Bytes of the head, through the final CRLF: what the `head` step consumed.
  std::uint32_t size = 0;
  /// The Content-Length value (0 when framing is not content_length).
  std::uint64_t content_length = 0;

  /// The method, if tether has a name for it.
  constexpr std::optional<tether::method> method() const noexcept {
    if (method_bits == 0) return std::nullopt;
    return static_cast<tether::method>(method_bits);
  }
  /// A HEAD request: the response has no content whatever its framing fields say.
  constexpr bool is_head() const noexcept { return method_bits == static_cast<std::uint16_t>(tether::method::head); }
  /// The request has content to read (possibly empty chunks).
  constexpr bool has_body() const noexcept {
    return framing == body_framing::chunked || (framing == body_framing::content_length && content_length != 0);
  }
};

/// A request head bound to the bytes it was parsed from.
class request_view {
 public:
  /// Binds `h` and its `fields` to `base`, the address of the head's first byte now.
  request_view(const request_head& h, std::span<const field_slices> fields, const char* base) noexcept
      : head_(&h), fields_(fields), base_(base) {}

  /// Everything the parser learnt besides the texts.
  const request_head& head() const noexcept { return *head_; }
  /// The method token, as sent ("GET", "PROPFIND").
  std::string_view method_text() const noexcept { return head_->method_text.in(base_); }
  /// The request-target, as sent ("/where?q=now").
  std::string_view target() const noexcept { return head_->target.in(base_); }
  /// The number of field lines.
  std::size_t field_count() const noexcept { return fields_.size(); }
  /// Field line `i` (0 <= i < field_count()), in the order sent.
  field_view field(std::size_t i) const noexcept { return {fields_[i].name.in(base_), fields_[i].value.in(base_)}; }
  /// The value of the first field called `name` (ASCII case-insensitive), if any.
  std::optional<std::string_view> find(std::string_view name) const noexcept {
    for (const auto& f : fields_)
      if (detail::iequals(f.name.in(base_), name)) return f.value.in(base_);
    return std::nullopt;
  }
  /// The Host value; empty if there was none.
  std::string_view host() const noexcept {
    return head_->host_field < 0 ? std::string_view{} : fields_[static_cast<std::size_t>(head_->host_field)].value.in(base_);
  }

 private:
  const request_head* head_;
  std::span<const field_slices> fields_;
  const char* base_;
};

/// What one parse() call found.
enum class parse_event : std::uint8_t {
  need_more,  ///< everything usable was consumed; call again with more bytes
  head,       ///< the head is complete: head(), fields(), view(base) describe it
  body,       ///< body bytes at [data_offset, data_offset + data_size) of this input
  end,        ///< the message is complete; the next parse() starts the next request
  closed,     ///< the last message asked to close the connection: nothing more is parsed
  error,      ///< error() says why; the connection must be closed after the reply
};

/// The answer of one parse() call.
struct parse_step {
  parse_event event = parse_event::need_more;  ///< what was found
  /// Bytes of this input that are finished with (the head, framing, delivered body).
  std::size_t consumed = 0;
  std::size_t data_offset = 0;  ///< `body` steps: where the body bytes start in this input
  std::size_t data_size = 0;    ///< `body` steps: how many there are
};

/// The parser, with room for FieldCapacity field lines (8 bytes each).
///
/// One parser serves a connection: after each `end` step it is ready for the next
/// (pipelined) request. Nothing is allocated. head() and fields() describe the current
/// message from its `head` step until the first parse() call after its `end` step.
template <std::size_t FieldCapacity = 100>
class basic_request_parser {
  static_assert(FieldCapacity > 0 && FieldCapacity <= 65535, "FieldCapacity must be 1 to 65,535");

 public:
  /// A parser for a new connection, with `limits`.
  explicit basic_request_parser(const parser_limits& limits = {}) noexcept { set_limits(limits); }

  /// New limits; they apply from the next message on.
  void set_limits(const parser_limits& limits) noexcept {
    limits_ = limits;
    if (limits_.max_head_bytes > 65535) limits_.max_head_bytes = 65535;
    if (limits_.max_fields > FieldCapacity) limits_.max_fields = static_cast<std::uint32_t>(FieldCapacity);
  }
  /// The limits in force (after clamping to 65,535 head bytes and FieldCapacity fields).
  const parser_limits& limits() const noexcept { return limits_; }

  /// Back to the state of a new connection.
  void reset() noexcept {
    state_ = state::head;
    error_ = parse_error::none;
    begin_message();
  }

  /// Parses from `data`, the first byte the caller has not consumed; see the file comment.
  [[nodiscard]] parse_step parse(const char* data, std::size_t size) noexcept {
    switch (state_) {
      case state::head: return parse_head(data, size);
      case state::body_length: return parse_length_body(size);
      case state::end_pending: return end_message(0);
      case state::closed: return {parse_event::closed};
      case state::failed: return {parse_event::error};
      default: return parse_chunked(data, size);
    }
  }
  /// parse(input.data(), input.size()).
  [[nodiscard]] parse_step parse(std::string_view input) noexcept { return parse(input.data(), input.size()); }

  /// The current request's head (after its `head` step).
  const request_head& head() const noexcept { return head_; }
  /// The current request's field lines, as offsets from the head's first byte.
  std::span<const field_slices> fields() const noexcept { return {fields_.data(), head_.field_count}; }
  /// The current head bound to `head_base`, the bytes the `head` step was parsed from.
  request_view view(const char* head_base) const noexcept { return {head_, fields(), head_base}; }

  /// Why the last `error` step refused the input (parse_error::none before any).
  parse_error error() const noexcept { return error_; }
  /// Where the error was found: an offset into the input of the failing call.
  std::size_t error_offset() const noexcept { return error_offset_; }
  /// The message's head has been delivered and its body is not finished.
  bool in_body() const noexcept { return state_ != state::head && state_ < state::end_pending; }

 private:
  enum class state : std::uint8_t {
    head,
    // Chunked body states, in the order a chunk goes through them.
    chunk_size_first,
    chunk_size,
    ext_bws,            // whitespace after the size or a value: only ';' may follow
    ext_name_start,     // after ';'
    ext_name,
    ext_name_bws,       // whitespace after a name: '=' or ';'
    ext_value_start,    // after '='
    ext_value_token,
    ext_quoted,
    ext_quoted_pair,
    ext_after_quoted,
    chunk_size_lf,
    chunk_data,
    chunk_data_cr,
    chunk_data_lf,
    trailer_line_start,
    trailer_name,
    trailer_value,
    trailer_line_lf,
    trailer_end_lf,
    body_length,
    // Terminal or between-message states.
    end_pending,
    closed,
    failed,
  };
  using u16 = std::uint16_t;

  void begin_message() noexcept {
    head_ = request_head{};
    line_start_ = 0;
    scan_ = 0;
    in_request_line_ = true;
    head_done_ = false;
    seen_cl_ = seen_te_ = seen_close_ = seen_keep_alive_ = false;
    te_error_ = parse_error::none;
    remaining_ = 0;
    body_total_ = 0;
    chunk_digits_ = 0;
    ext_bytes_ = 0;
    trailer_bytes_ = 0;
    trailer_fields_ = 0;
    fresh_ = false;
  }

  parse_step fail(parse_error e, std::size_t at) noexcept {
    error_ = e;
    error_offset_ = at;
    state_ = state::failed;
    return {parse_event::error};
  }

  parse_step end_message(std::size_t consumed) noexcept {
    state_ = head_.keep_alive ? state::head : state::closed;
    fresh_ = true;  // head() stays readable until the next call
    return {parse_event::end, consumed};
  }

  // ---- the head -------------------------------------------------------------------

  // The head is scanned 16 octets at a time for CR, LF and the octets no head may hold;
  // each CRLF ends a line, which is parsed whole. Only complete lines are parsed, so a
  // split anywhere (even between CR and LF) leaves nothing half-done: scan_ and
  // line_start_ are all the state there is.
  parse_step parse_head(const char* data, std::size_t size) noexcept {
    if (fresh_) begin_message();
    const std::size_t max = limits_.max_head_bytes;
    const bool at_limit = size >= max;
    const char* const end = data + (at_limit ? max : size);
    end_ = data + size;
    const char* p = data + scan_;
    while (p != end) {
      unsigned span = 16;
#if defined(__SSE2__)
      unsigned m;
      if (end - p >= 16) {
        m = detail::head_special_mask16(p);
      } else {
        span = static_cast<unsigned>(end - p);
        m = detail::head_special_mask_tail(data, p, end);
      }
#else
      if (end - p < 16) span = static_cast<unsigned>(end - p);
      unsigned m = detail::head_special_mask_tail(data, p, p + span);
#endif
      const char* next = p + span;
      while (m != 0) {
        const auto i = static_cast<unsigned>(__builtin_ctz(m));
        const char* const q = p + i;
        const auto at = static_cast<std::size_t>(q - data);
        if (*q != '\r') return fail(*q == '\n' ? parse_error::bare_lf : parse_error::control_character, at);
        if (q + 1 == end) {  // the LF may come in the next read
          next = q;
          break;
        }
        if (q[1] != '\n') return fail(parse_error::bare_cr, at);
        if (const auto e = in_request_line_ ? on_request_line(data, line_start_, at) : on_field_line(data, line_start_, at);
            e != parse_error::none)
          return fail(e, line_start_);
        line_start_ = at + 2;
        if (head_done_) return finish_head(line_start_);
        m &= m - 1;           // the CR
        if (i + 1 == span) {  // the LF is past this block
          next = q + 2;
          break;
        }
        m &= m - 1;  // the LF
      }
      p = next;
      if (m != 0) break;  // stopped at a CR that is the last octet so far
    }
    scan_ = static_cast<std::size_t>(p - data);
    if (at_limit)
      return fail(in_request_line_ ? parse_error::request_line_too_long : parse_error::head_too_large, max);
    return {parse_event::need_more};
  }

  static std::uint16_t classify_method(std::string_view m) noexcept {
    using tether::method;
    auto bits = [](method x) { return static_cast<std::uint16_t>(x); };
    switch (m.size()) {
      case 3:
        if (m == "GET") return bits(method::get);
        if (m == "PUT") return bits(method::put);
        return 0;
      case 4:
        if (m == "POST") return bits(method::post);
        if (m == "HEAD") return bits(method::head);
        return 0;
      case 5:
        if (m == "PATCH") return bits(method::patch);
        if (m == "TRACE") return bits(method::trace);
        return 0;
      case 6: return m == "DELETE" ? bits(method::delete_) : 0;
      case 7:
        if (m == "OPTIONS") return bits(method::options);
        if (m == "CONNECT") return bits(method::connect);
        return 0;
      default: return 0;
    }
  }

  parse_error on_request_line(const char* data, std::size_t s, std::size_t e) noexcept {
    if (s == e) {
      // RFC 9112 2.2: ignore at least one empty line before the request line; one it is.
      if (s == 0) return parse_error::none;
      return parse_error::bad_request_line;
    }
    const char* const line = data + s;
    const char* const line_end = data + e;
    const char* p = detail::skip_token(line, end_);  // stops at the CR at the latest
    if (p == line_end) return parse_error::bad_request_line;  // a lone token
    if (*p != ' ' || p == line) return detail::is_ows(*p) ? parse_error::bad_request_line : parse_error::bad_method;
    const std::string_view method{line, static_cast<std::size_t>(p - line)};
    head_.method_text = {static_cast<u16>(s), static_cast<u16>(method.size())};
    head_.method_bits = classify_method(method);

    const char* const target = p + 1;
    p = detail::find_target_end(target, line_end);
    if (p == target) return parse_error::bad_request_line;  // two SPs, or nothing after the method
    if (p == line_end) return parse_error::bad_request_line;  // no version: HTTP/0.9 is not served
    if (*p != ' ') return detail::is_ows(*p) ? parse_error::bad_request_line : parse_error::bad_target;  // '#' too
    const std::string_view tgt{target, static_cast<std::size_t>(p - target)};
    head_.target = {static_cast<u16>(target - data), static_cast<u16>(tgt.size())};
    if (const auto err = classify_target(tgt); err != parse_error::none) return err;

    const char* const v = p + 1;
    if (v != line_end && *v == ' ') return parse_error::bad_request_line;
    if (line_end - v != 8 || std::memcmp(v, "HTTP/", 5) != 0 || !(v[5] >= '0' && v[5] <= '9') || v[6] != '.' ||
        !(v[7] >= '0' && v[7] <= '9'))
      return parse_error::bad_version;
    if (v[5] != '1') return parse_error::unsupported_version;
    head_.declared_minor = static_cast<std::uint8_t>(v[7] - '0');
    head_.version_minor = head_.declared_minor == 0 ? 0 : 1;
    head_.keep_alive = head_.version_minor == 1;
    in_request_line_ = false;
    return parse_error::none;
  }

  parse_error classify_target(std::string_view t) noexcept {
    const bool connect = head_.method_bits == static_cast<std::uint16_t>(tether::method::connect);
    if (connect) {
      // authority-form: uri-host ":" port (RFC 9112 3.2.3).
      head_.form = target_form::authority;
      const auto colon = t.rfind(':');
      const bool has_port = colon != std::string_view::npos && colon != 0 && colon + 1 != t.size() && t[colon - 1] != ':';
      return has_port && valid_host(t) ? parse_error::none : parse_error::bad_target;
    }
    if (t[0] == '/') {
      head_.form = target_form::origin;
      return parse_error::none;
    }
    if (t == "*") {
      head_.form = target_form::asterisk;
      return head_.method_bits == static_cast<std::uint16_t>(tether::method::options) ? parse_error::none
                                                                                      : parse_error::bad_target;
    }
    // absolute-form: scheme ":" hier-part; scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
    head_.form = target_form::absolute;
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    if (!alpha(t[0])) return parse_error::bad_target;
    std::size_t i = 1;
    for (; i != t.size() && t[i] != ':'; ++i) {
      const char c = t[i];
      if (!alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.') return parse_error::bad_target;
    }
    if (i == t.size() || i + 1 == t.size()) return parse_error::bad_target;
    // "//" authority is required: the authority stands in for Host (RFC 9112 3.2.2), so
    // it is held to Host's rules, and userinfo is refused (RFC 9110 4.2.4).
    const std::string_view rest = t.substr(i + 1);
    if (rest.substr(0, 2) != "//") return parse_error::bad_target;
    const auto authority = rest.substr(2, rest.find_first_of("/?", 2) - 2);
    return !authority.empty() && valid_host(authority) ? parse_error::none : parse_error::bad_target;
  }

  parse_error on_field_line(const char* data, std::size_t s, std::size_t e) noexcept {
    if (s == e) {
      head_done_ = true;
      return parse_error::none;
    }
    const char* const line = data + s;
    const char* const line_end = data + e;
    // RFC 9112 5.2 (obs-fold) and 2.2 (whitespace before the first field line): both 400.
    if (detail::is_ows(*line)) return parse_error::obs_fold;
    const char* p = detail::skip_token(line, end_);  // stops at the CR at the latest
    if (p == line_end || *p != ':') return p != line_end && detail::is_ows(*p) ? parse_error::whitespace_before_colon
                                                                          : parse_error::bad_field_name;
    if (p == line) return parse_error::bad_field_name;
    if (head_.field_count == limits_.max_fields) return parse_error::too_many_fields;
    const std::string_view name{line, static_cast<std::size_t>(p - line)};
    const char* v = p + 1;
    const char* ve = line_end;
    if (v != ve && *v == ' ') ++v;  // the usual single SP, then any other OWS
    while (v != ve && detail::is_ows(*v)) ++v;
    while (ve != v && detail::is_ows(ve[-1])) --ve;
    const std::string_view value{v, static_cast<std::size_t>(ve - v)};
    const auto index = head_.field_count++;
    fields_[index] = {{static_cast<u16>(s), static_cast<u16>(name.size())},
                      {static_cast<u16>(v - data), static_cast<u16>(value.size())}};
    return on_field(name, value, index);
  }

  // Host, Content-Length, Transfer-Encoding, Connection and Expect are recognised here,
  // by length first, so other fields cost one switch.
  parse_error on_field(std::string_view name, std::string_view value, std::uint32_t index) noexcept {
    switch (name.size()) {
      case 4:
        if (!detail::token_equals(name, "host")) return parse_error::none;
        if (head_.host_field >= 0) return parse_error::duplicate_host;
        head_.host_field = static_cast<std::int32_t>(index);
        return valid_host(value) ? parse_error::none : parse_error::bad_host;
      case 6:
        if (!detail::token_equals(name, "expect")) return parse_error::none;
        detail::for_each_list_element(value, [this](std::string_view el) {
          if (detail::token_equals(el, "100-continue")) head_.expect_continue = true;
          else if (!el.empty()) head_.expect_unsupported = true;
          return true;
        });
        return parse_error::none;
      case 10:
        if (!detail::token_equals(name, "connection")) return parse_error::none;
        detail::for_each_list_element(value, [this](std::string_view el) {
          if (detail::token_equals(el, "close")) seen_close_ = true;
          else if (detail::token_equals(el, "keep-alive")) seen_keep_alive_ = true;
          else if (detail::token_equals(el, "upgrade")) head_.connection_upgrade = true;
          return true;
        });
        return parse_error::none;
      case 14: {
        if (!detail::token_equals(name, "content-length")) return parse_error::none;
        if (seen_cl_) return parse_error::duplicate_content_length;
        seen_cl_ = true;
        if (value.empty()) return parse_error::bad_content_length;
        std::uint64_t n = 0;
        for (const char c : value) {
          if (c < '0' || c > '9') return parse_error::bad_content_length;
          const auto d = static_cast<std::uint64_t>(c - '0');
          if (n > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return parse_error::bad_content_length;
          n = n * 10 + d;
        }
        head_.content_length = n;
        return parse_error::none;
      }
      case 17:
        if (!detail::token_equals(name, "transfer-encoding")) return parse_error::none;
        if (seen_te_) return parse_error::duplicate_transfer_encoding;
        seen_te_ = true;
        te_error_ = transfer_coding_error(value);
        return parse_error::none;
      default: return parse_error::none;
    }
  }

  // Only a single `chunked` is served. A list that ends in chunked names a coding this
  // parser does not implement (501); any other list leaves the length unknown (400).
  static parse_error transfer_coding_error(std::string_view value) noexcept {
    if (detail::token_equals(value, "chunked")) return parse_error::none;
    std::size_t count = 0;
    bool last_chunked = false, chunked_earlier = false, malformed = false;
    detail::for_each_list_element(value, [&](std::string_view el) {
      ++count;
      if (last_chunked) chunked_earlier = true;
      // transfer-coding = token *( OWS ";" OWS transfer-parameter ): the name is the token.
      const char* const name_end = detail::find_token_end(el.data(), el.data() + el.size());
      if (name_end == el.data()) malformed = true;
      last_chunked = name_end == el.data() + el.size() && detail::token_equals(el, "chunked");
      return true;
    });
    if (malformed || !last_chunked || chunked_earlier) return parse_error::chunked_not_final;
    (void)count;
    return parse_error::unsupported_transfer_coding;
  }

  // uri-host [ ":" port ] (RFC 9110 7.2); an empty value is allowed. One pass: reg-name
  // or IPv4 characters, or an IP-literal in brackets, then an optional port of digits.
  static constexpr bool valid_host(std::string_view v) noexcept {
    const char* p = v.data();
    const char* const end = p + v.size();
    if (p != end && *p == '[') {
      const char* const literal = ++p;  // IPv6address / IPvFuture: their octets and ':'
      while (p != end && (detail::is(*p, detail::oc_reg_name) || *p == ':')) ++p;
      if (p == end || *p != ']' || p == literal) return false;
      ++p;
    } else {
      while (p != end && detail::is(*p, detail::oc_reg_name)) ++p;
    }
    if (p == end) return true;
    if (*p != ':') return false;
    for (++p; p != end; ++p)
      if (*p < '0' || *p > '9') return false;
    return true;
  }

  parse_step finish_head(std::size_t size) noexcept {
    const auto fail_here = [&](parse_error e) { return fail(e, size); };
    if (head_.version_minor == 1 && head_.host_field < 0) return fail_here(parse_error::missing_host);
    if (seen_te_) {
      if (seen_cl_) return fail_here(parse_error::content_length_with_transfer_encoding);
      if (head_.version_minor == 0) return fail_here(parse_error::transfer_encoding_in_http10);
      if (te_error_ != parse_error::none) return fail_here(te_error_);
      head_.framing = body_framing::chunked;
      head_.content_length = 0;
      state_ = state::chunk_size_first;
    } else if (seen_cl_) {
      if (head_.content_length > limits_.max_body_bytes) return fail_here(parse_error::body_too_large);
      head_.framing = body_framing::content_length;
      remaining_ = head_.content_length;
      state_ = remaining_ != 0 ? state::body_length : state::end_pending;
    } else {
      state_ = state::end_pending;
    }
    if (head_.version_minor == 1) head_.keep_alive = !seen_close_;
    else head_.keep_alive = seen_keep_alive_ && !seen_close_;
    if (head_.version_minor == 0) head_.expect_continue = false;
    head_.size = static_cast<std::uint32_t>(size);
    return {parse_event::head, size};
  }

  // ---- bodies ---------------------------------------------------------------------

  parse_step parse_length_body(std::size_t size) noexcept {
    if (size == 0) return {parse_event::need_more};
    const std::size_t n = remaining_ < size ? static_cast<std::size_t>(remaining_) : size;
    remaining_ -= n;
    if (remaining_ == 0) state_ = state::end_pending;
    return {parse_event::body, n, 0, n};
  }

  static int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Chunk framing is walked one octet at a time: it is a few bytes per chunk, and a
  // state per grammar position makes every split point the same as no split.
  parse_step parse_chunked(const char* data, std::size_t size) noexcept {
    std::size_t i = 0;
    while (i != size) {
      const char c = data[i];
      switch (state_) {
        case state::chunk_size_first: {
          const int d = hex_value(c);
          if (d < 0) return fail(c == '\n' ? parse_error::bare_lf : parse_error::bad_chunk_size, i);
          remaining_ = static_cast<std::uint64_t>(d);
          chunk_digits_ = 1;
          state_ = state::chunk_size;
          break;
        }
        case state::chunk_size: {
          const int d = hex_value(c);
          if (d >= 0) {
            if (chunk_digits_ == 16) return fail(parse_error::chunk_size_overflow, i);
            ++chunk_digits_;
            remaining_ = remaining_ << 4 | static_cast<std::uint64_t>(d);
          } else if (c == '\r') {
            state_ = state::chunk_size_lf;
          } else if (c == ';' || detail::is_ows(c)) {
            state_ = c == ';' ? state::ext_name_start : state::ext_bws;
            if (!count_ext_byte()) return fail(parse_error::chunk_extension_too_long, i);
          } else {
            return fail(c == '\n' ? parse_error::bare_lf : parse_error::bad_chunk_size, i);
          }
          if (remaining_ > limits_.max_body_bytes - body_total_) return fail(parse_error::body_too_large, i);
          break;
        }
        case state::chunk_size_lf:
          if (c != '\n') return fail(parse_error::bare_cr, i);
          body_total_ += remaining_;
          state_ = remaining_ != 0 ? state::chunk_data : state::trailer_line_start;
          break;
        case state::chunk_data: {
          const std::size_t avail = size - i;
          const std::size_t n = remaining_ < avail ? static_cast<std::size_t>(remaining_) : avail;
          remaining_ -= n;
          if (remaining_ == 0) state_ = state::chunk_data_cr;
          return {parse_event::body, i + n, i, n};
        }
        case state::chunk_data_cr:
          if (c != '\r') return fail(parse_error::bad_chunk_end, i);
          state_ = state::chunk_data_lf;
          break;
        case state::chunk_data_lf:
          if (c != '\n') return fail(parse_error::bad_chunk_end, i);
          state_ = state::chunk_size_first;
          break;
        case state::trailer_line_start:
        case state::trailer_name:
        case state::trailer_value:
        case state::trailer_line_lf:
        case state::trailer_end_lf:
          if (++trailer_bytes_ > limits_.max_head_bytes) return fail(parse_error::trailer_too_large, i);
          if (const auto e = trailer_octet(c); e != parse_error::none) return fail(e, i);
          if (state_ == state::end_pending) return end_message(i + 1);
          break;
        default:  // extension states; the CR that ends the line is not an extension byte
          if (c != '\r' && !count_ext_byte()) return fail(parse_error::chunk_extension_too_long, i);
          if (const auto e = extension_octet(c); e != parse_error::none) return fail(e, i);
          break;
      }
      ++i;
    }
    return {parse_event::need_more, size};
  }

  bool count_ext_byte() noexcept { return ++ext_bytes_ <= limits_.max_chunk_ext_bytes; }

  // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 7.1.1)
  parse_error extension_octet(char c) noexcept {
    const bool ows = detail::is_ows(c);
    const auto bad = [c] { return c == '\n' ? parse_error::bare_lf : parse_error::bad_chunk_extension; };
    switch (state_) {
      case state::ext_bws:
        if (ows) return parse_error::none;
        if (c != ';') return bad();
        state_ = state::ext_name_start;
        return parse_error::none;
      case state::ext_name_start:
        if (ows) return parse_error::none;
        if (!detail::is(c, detail::oc_tchar)) return bad();
        state_ = state::ext_name;
        return parse_error::none;
      case state::ext_name:
        if (detail::is(c, detail::oc_tchar)) return parse_error::none;
        if (c == '\r') state_ = state::chunk_size_lf;
        else if (c == ';') state_ = state::ext_name_start;
        else if (c == '=') state_ = state::ext_value_start;
        else if (ows) state_ = state::ext_name_bws;
        else return bad();
        return parse_error::none;
      case state::ext_name_bws:
        if (ows) return parse_error::none;
        if (c == ';') state_ = state::ext_name_start;
        else if (c == '=') state_ = state::ext_value_start;
        else return bad();
        return parse_error::none;
      case state::ext_value_start:
        if (ows) return parse_error::none;
        if (c == '"') state_ = state::ext_quoted;
        else if (detail::is(c, detail::oc_tchar)) state_ = state::ext_value_token;
        else return bad();
        return parse_error::none;
      case state::ext_value_token:
        if (detail::is(c, detail::oc_tchar)) return parse_error::none;
        if (c == '\r') state_ = state::chunk_size_lf;
        else if (c == ';') state_ = state::ext_name_start;
        else if (ows) state_ = state::ext_bws;
        else return bad();
        return parse_error::none;
      case state::ext_quoted:
        if (c == '"') state_ = state::ext_after_quoted;
        else if (c == '\\') state_ = state::ext_quoted_pair;
        else if (!detail::is(c, detail::oc_qdtext)) return bad();
        return parse_error::none;
      case state::ext_quoted_pair:
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
        if (!detail::is(c, detail::oc_vchar_obs)) return bad();
        state_ = state::ext_quoted;
        return parse_error::none;
      case state::ext_after_quoted:
        if (c == '\r') state_ = state::chunk_size_lf;
        else if (c == ';') state_ = state::ext_name_start;
        else if (ows) state_ = state::ext_bws;
        else return bad();
        return parse_error::none;
      default: return parse_error::bad_chunk_extension;
    }
  }

  // trailer-section = *( field-line CRLF ); parsed like head fields, then discarded.
  parse_error trailer_octet(char c) noexcept {
    switch (state_) {
      case state::trailer_line_start:
        if (c == '\r') state_ = state::trailer_end_lf;
        else if (detail::is(c, detail::oc_tchar)) state_ = state::trailer_name;
        else return c == '\n' ? parse_error::bare_lf : detail::is_ows(c) ? parse_error::obs_fold : parse_error::bad_trailer;
        return parse_error::none;
      case state::trailer_name:
        if (detail::is(c, detail::oc_tchar)) return parse_error::none;
        if (c == ':') {
          if (++trailer_fields_ > limits_.max_fields) return parse_error::trailer_too_large;
          state_ = state::trailer_value;
          return parse_error::none;
        }
        return detail::is_ows(c) ? parse_error::whitespace_before_colon : c == '\n' ? parse_error::bare_lf : parse_error::bad_trailer;
      case state::trailer_value:
        if (c == '\r') state_ = state::trailer_line_lf;
        else if (detail::is(c, detail::oc_head_special)) return c == '\n' ? parse_error::bare_lf : parse_error::control_character;
        return parse_error::none;
      case state::trailer_line_lf:
        if (c != '\n') return parse_error::bare_cr;
        state_ = state::trailer_line_start;
        return parse_error::none;
      case state::trailer_end_lf:
        if (c != '\n') return parse_error::bare_cr;
        state_ = state::end_pending;
        return parse_error::none;
      default: return parse_error::bad_trailer;
    }
  }

  parser_limits limits_;
  request_head head_;
  std::array<field_slices, FieldCapacity> fields_;
  std::uint64_t remaining_ = 0;   // body bytes left (Content-Length), or in the current chunk
  std::uint64_t body_total_ = 0;  // chunk sizes so far, against max_body_bytes
  std::size_t line_start_ = 0;    // head: the first byte of the line being scanned
  std::size_t scan_ = 0;          // head: where the control scan resumes
  std::size_t error_offset_ = 0;
  const char* end_ = nullptr;     // head: the end of the readable input, during parse_head
  std::uint32_t ext_bytes_ = 0;
  std::uint32_t trailer_bytes_ = 0;
  std::uint32_t trailer_fields_ = 0;
  std::uint8_t chunk_digits_ = 0;
  state state_ = state::head;
  parse_error error_ = parse_error::none;
  parse_error te_error_ = parse_error::none;
  bool in_request_line_ = true;
  bool head_done_ = false;
  bool seen_cl_ = false;
  bool seen_te_ = false;
  bool seen_close_ = false;
  bool seen_keep_alive_ = false;
  bool fresh_ = false;  // an `end` step was returned: the next call starts a new message
};

/// The parser with room for 100 field lines (h2o's and uWebSockets' bound).
using request_parser = basic_request_parser<100>;

}  // namespace http1
TETHER_END_NAMESPACE
