// tether/http1/parse_error.hpp - why the HTTP/1.1 request parser refused a request, and
// the status a server answers with.
/// @file
/// tether::http1::parse_error, status_of(), message_of() and the `tether.http1`
/// std::error_code category. See docs/http1-parser.md.
//
// Every value is stable (tests, logs and the differential harness name them), maps to
// one status code, and has a one-line message. The parser stops at the first error; the
// connection must be closed after the reply (RFC 9112 section 6.3: after a framing error
// the rest of the stream cannot be trusted).
#pragma once

#include <tether/config.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

TETHER_BEGIN_NAMESPACE
namespace http1 {

/// Why a request was refused: each value maps to one status (status_of) and one line
/// (message_of), and never changes meaning.
enum class parse_error : std::uint8_t {
  none = 0,  ///< no error
  // The request line (RFC 9112 section 3).
  bad_request_line,         ///< not `method SP request-target SP HTTP-version`, single SPs
  bad_method,               ///< the method is not a token
  bad_target,               ///< a request-target octet or form that is not allowed
  bad_version,              ///< not `HTTP/` DIGIT `.` DIGIT
  unsupported_version,      ///< HTTP/0.x or HTTP/2 and above on an HTTP/1.1 connection
  request_line_too_long,    ///< the request line alone reaches the head limit
  // Line structure (RFC 9112 section 2.2).
  bare_cr,                  ///< CR not followed by LF
  bare_lf,                  ///< LF not preceded by CR
  control_character,        ///< NUL, DEL or another control character other than HTAB
  // Field lines (RFC 9112 section 5).
  bad_field_name,           ///< a field name that is empty or not a token
  whitespace_before_colon,  ///< `Name : value`
  obs_fold,                 ///< a field line that starts with SP or HTAB (line folding)
  head_too_large,           ///< the head is longer than parser_limits::max_head_bytes
  too_many_fields,          ///< more field lines than parser_limits::max_fields
  // Host (RFC 9112 section 3.2).
  missing_host,             ///< an HTTP/1.1 request without Host
  duplicate_host,           ///< two Host field lines
  bad_host,                 ///< a Host value that is not `uri-host [ ":" port ]`
  // Framing (RFC 9112 section 6).
  bad_content_length,                     ///< not 1*DIGIT, or too large for 64 bits
  duplicate_content_length,               ///< two Content-Length field lines, even equal ones
  content_length_with_transfer_encoding,  ///< both framing fields (a smuggling shape)
  duplicate_transfer_encoding,            ///< two Transfer-Encoding field lines
  transfer_encoding_in_http10,            ///< HTTP/1.0 has no transfer codings
  chunked_not_final,                      ///< the last transfer coding is not `chunked`
  unsupported_transfer_coding,            ///< a coding other than `chunked` before it
  body_too_large,                         ///< more content than parser_limits::max_body_bytes
  // Chunked bodies (RFC 9112 section 7.1).
  bad_chunk_size,           ///< a chunk-size that is not 1*HEXDIG
  chunk_size_overflow,      ///< more than 16 hex digits
  bad_chunk_extension,      ///< a chunk-ext outside RFC 9112 section 7.1.1's grammar
  chunk_extension_too_long, ///< more extension octets than parser_limits::max_chunk_ext_bytes
  bad_chunk_end,            ///< chunk data not followed by exactly CRLF
  bad_trailer,              ///< a malformed trailer field line
  trailer_too_large,        ///< trailer section larger than the head limits
};

/// The status a server answers `e` with: 400, 413, 414, 431, 501 or 505 (0 for none).
constexpr int status_of(parse_error e) noexcept {
  switch (e) {
    case parse_error::none: return 0;
    case parse_error::unsupported_version: return 505;
    case parse_error::request_line_too_long: return 414;
    case parse_error::head_too_large:
    case parse_error::too_many_fields:
    case parse_error::trailer_too_large: return 431;
    case parse_error::body_too_large: return 413;
    case parse_error::unsupported_transfer_coding: return 501;
    default: return 400;
  }
}

/// One line saying what was wrong, for logs and error bodies.
constexpr std::string_view message_of(parse_error e) noexcept {
  switch (e) {
    case parse_error::none: return "no error";
    case parse_error::bad_request_line: return "malformed request line";
    case parse_error::bad_method: return "the method is not a token";
    case parse_error::bad_target: return "invalid request-target";
    case parse_error::bad_version: return "malformed HTTP version";
    case parse_error::unsupported_version: return "HTTP version not supported";
    case parse_error::request_line_too_long: return "request line too long";
    case parse_error::bare_cr: return "CR not followed by LF";
    case parse_error::bare_lf: return "LF without CR";
    case parse_error::control_character: return "control character in the request head";
    case parse_error::bad_field_name: return "invalid field name";
    case parse_error::whitespace_before_colon: return "whitespace between field name and colon";
    case parse_error::obs_fold: return "field line starts with whitespace (obsolete line folding)";
    case parse_error::head_too_large: return "request head too large";
    case parse_error::too_many_fields: return "too many header fields";
    case parse_error::missing_host: return "HTTP/1.1 request without Host";
    case parse_error::duplicate_host: return "more than one Host field";
    case parse_error::bad_host: return "invalid Host value";
    case parse_error::bad_content_length: return "invalid Content-Length";
    case parse_error::duplicate_content_length: return "more than one Content-Length field";
    case parse_error::content_length_with_transfer_encoding: return "both Content-Length and Transfer-Encoding";
    case parse_error::duplicate_transfer_encoding: return "more than one Transfer-Encoding field";
    case parse_error::transfer_encoding_in_http10: return "Transfer-Encoding in an HTTP/1.0 request";
    case parse_error::chunked_not_final: return "the final transfer coding is not chunked";
    case parse_error::unsupported_transfer_coding: return "transfer coding not implemented";
    case parse_error::body_too_large: return "request body too large";
    case parse_error::bad_chunk_size: return "invalid chunk size";
    case parse_error::chunk_size_overflow: return "chunk size has more than 16 hex digits";
    case parse_error::bad_chunk_extension: return "invalid chunk extension";
    case parse_error::chunk_extension_too_long: return "chunk extensions too long";
    case parse_error::bad_chunk_end: return "chunk data not followed by CRLF";
    case parse_error::bad_trailer: return "invalid trailer field";
    case parse_error::trailer_too_large: return "trailer section too large";
  }
  return "unknown parse error";
}

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tether.http1"; }
  std::string message(int code) const override {
    return std::string(message_of(static_cast<parse_error>(code)));
  }
};
}  // namespace detail

/// The category of http1::parse_error codes (its name is "tether.http1").
inline const std::error_category& parse_error_category() noexcept {
  static const detail::error_category_impl instance;
  return instance;
}

/// `e` as a std::error_code (so `std::error_code ec = parse_error::bare_lf;` works).
[[nodiscard]] inline std::error_code make_error_code(parse_error e) noexcept {
  return {static_cast<int>(e), parse_error_category()};
}

}  // namespace http1
TETHER_END_NAMESPACE

template <>
struct std::is_error_code_enum<tether::http1::parse_error> : std::true_type {};
