// tether/http1/response_writer.hpp - the pieces an HTTP/1.1 server writes a response
// with, without printf: status lines from a table built at compile time, common field
// lines, numbers in decimal (detail/decimal.hpp, without <charconv>), chunk framing, and
// an iovec list so the head and the body leave in one writev.
//
//     char buf[256];
//     tether::http1::head_writer w{buf};
//     w.status(200)
//      .field("Content-Type", "text/plain")
//      .content_length(body.size())
//      .date(dates.view(base));                    // detail::date_cache, shared with evhttp
//     if (!keep_alive) w.line(tether::http1::connection_close);
//     const std::string_view head = w.finish();     // empty if buf was too small
//     tether::http1::iovec_list<2> out;
//     out.push(head);
//     out.push(body);
//     const ssize_t n = ::writev(fd, out.data(), out.count());
//     if (n > 0) out.consume(static_cast<std::size_t>(n));  // what is left, after a short write
//
// The writer trusts its arguments: field names must be tokens and values must hold no
// CR, LF or NUL (headers_ref::add and friends validate them where users supply them).
/// @file
/// HTTP/1.1 response building blocks without printf: status_line(), head_writer,
/// chunk_header, iovec_list and the framing rules. See docs/http1-parser.md.
#pragma once

#include <tether/config.hpp>
#include <tether/detail/decimal.hpp>

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

TETHER_BEGIN_NAMESPACE
namespace http1 {

/// The reason phrase RFC 9110 section 15 gives `code`; empty for codes it does not name.
constexpr std::string_view reason_phrase(int code) noexcept {
  switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 511: return "Network Authentication Required";
    default: return {};
  }
}

namespace detail {
// Every status line from 100 to 599 ("HTTP/1.1 NNN Reason\r\n", the reason empty where
// RFC 9110 names none, as RFC 9112 section 4 allows), laid end to end at compile time.
struct status_line_table {
  static constexpr int first = 100, last = 599;
  static constexpr std::size_t count = last - first + 1;
  static constexpr std::size_t capacity = [] {
    std::size_t n = 0;
    for (int c = first; c <= last; ++c) n += 15 + reason_phrase(c).size();
    return n;
  }();
  char text[capacity] = {};
  std::uint16_t offset[count + 1] = {};
  constexpr status_line_table() {
    std::size_t at = 0;
    for (int c = first; c <= last; ++c) {
      offset[c - first] = static_cast<std::uint16_t>(at);
      for (const char ch : std::string_view{"HTTP/1.1 "}) text[at++] = ch;
      text[at++] = static_cast<char>('0' + c / 100);
      text[at++] = static_cast<char>('0' + c / 10 % 10);
      text[at++] = static_cast<char>('0' + c % 10);
      text[at++] = ' ';
      for (const char ch : reason_phrase(c)) text[at++] = ch;
      text[at++] = '\r';
      text[at++] = '\n';
    }
    offset[count] = static_cast<std::uint16_t>(at);
  }
};
inline constexpr status_line_table status_lines{};
}  // namespace detail

/// "HTTP/1.1 NNN Reason\r\n" for `code` in 100..599; empty outside. HTTP/1.0 requests get
/// HTTP/1.1 responses too, the highest version the server conforms to (RFC 9110 2.5).
constexpr std::string_view status_line(int code) noexcept {
  using t = detail::status_line_table;
  if (code < t::first || code > t::last) return {};
  const auto i = static_cast<std::size_t>(code - t::first);
  return {detail::status_lines.text + detail::status_lines.offset[i],
          static_cast<std::size_t>(detail::status_lines.offset[i + 1] - detail::status_lines.offset[i])};
}

// Complete field lines and field-name prefixes a server writes on most responses.
/// The field line that ends an HTTP/1.1 connection after this response.
inline constexpr std::string_view connection_close = "Connection: close\r\n";
/// The field line that keeps an HTTP/1.0 connection after this response.
inline constexpr std::string_view connection_keep_alive = "Connection: keep-alive\r\n";
/// The field line of a chunked response.
inline constexpr std::string_view transfer_encoding_chunked = "Transfer-Encoding: chunked\r\n";
/// "Content-Length: ", before the digits (head_writer::content_length writes both).
inline constexpr std::string_view content_length_prefix = "Content-Length: ";
/// "Content-Type: ", before a media type.
inline constexpr std::string_view content_type_prefix = "Content-Type: ";
/// "Date: ", before an IMF-fixdate (head_writer::date writes both).
inline constexpr std::string_view date_prefix = "Date: ";
/// The interim response to `Expect: 100-continue`, head and all.
inline constexpr std::string_view continue_response = "HTTP/1.1 100 Continue\r\n\r\n";

/// The Connection line a response needs, if any: `close` ends an HTTP/1.1 connection,
/// `keep-alive` keeps an HTTP/1.0 one (RFC 9112 9.3); otherwise the default applies.
constexpr std::string_view connection_line(bool keep_alive, int request_minor) noexcept {
  if (request_minor >= 1) return keep_alive ? std::string_view{} : connection_close;
  return keep_alive ? connection_keep_alive : std::string_view{};
}

/// Whether the response carries content: never to HEAD, nor for 1xx, 204 and 304
/// (RFC 9110 6.4.1, RFC 9112 6.3 item 1).
constexpr bool response_has_content(int status, bool head_request) noexcept {
  return !head_request && status >= 200 && status != 204 && status != 304;
}
/// Whether Content-Length may be sent: not with 1xx or 204 (RFC 9110 8.6). HEAD and 304
/// responses may carry the length a GET would have had.
constexpr bool content_length_allowed(int status) noexcept { return status >= 200 && status != 204; }

/// Writes a response head into a caller's buffer. Nothing is allocated; if the buffer
/// is too small the writer stops writing and finish() returns an empty view.
class head_writer {
 public:
  /// A writer into `buffer`; the head is built from its first byte.
  explicit head_writer(std::span<char> buffer) noexcept : begin_(buffer.data()), end_(buffer.data() + buffer.size()), p_(begin_) {}

  /// The status line; a code outside 100..599 makes the head invalid (finish() is empty).
  head_writer& status(int code) noexcept {
    const auto line = status_line(code);
    if (line.empty()) ok_ = false;
    return put(line);
  }
  /// `name: value` CRLF. The name must be a token, the value free of CR, LF and NUL.
  head_writer& field(std::string_view name, std::string_view value) noexcept {
    if (static_cast<std::size_t>(end_ - p_) < name.size() + value.size() + 4) return overflow();
    put_unchecked(name);
    *p_++ = ':';
    *p_++ = ' ';
    put_unchecked(value);
    *p_++ = '\r';
    *p_++ = '\n';
    return *this;
  }
  /// Bytes written as they are: a complete field line such as connection_close.
  head_writer& line(std::string_view bytes) noexcept { return put(bytes); }
  /// `Content-Length: n` CRLF.
  head_writer& content_length(std::uint64_t n) noexcept {
    put(content_length_prefix);
    return number(n).put("\r\n");
  }
  /// `Date: <IMF-fixdate>` CRLF (an empty date writes nothing).
  head_writer& date(std::string_view imf_fixdate) noexcept {
    if (imf_fixdate.empty()) return *this;
    put(date_prefix);
    return put(imf_fixdate).put("\r\n");
  }
  /// The decimal digits of `n`, inside a field value being built with line().
  head_writer& number(std::uint64_t n) noexcept {
    char digits[24];
    return put(tether::detail::to_decimal(n, digits));
  }

  /// Ends the head with the empty line; the head, or empty if it did not fit.
  [[nodiscard]] std::string_view finish() noexcept {
    put("\r\n");
    if (!ok_) return {};
    return {begin_, static_cast<std::size_t>(p_ - begin_)};
  }
  /// The buffer was too small, or the status invalid.
  bool failed() const noexcept { return !ok_; }
  /// Bytes written so far.
  std::size_t size() const noexcept { return static_cast<std::size_t>(p_ - begin_); }

 private:
  head_writer& put(std::string_view s) noexcept {
    if (static_cast<std::size_t>(end_ - p_) < s.size()) return overflow();
    put_unchecked(s);
    return *this;
  }
  void put_unchecked(std::string_view s) noexcept {
    if (!s.empty()) std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  head_writer& overflow() noexcept {
    ok_ = false;
    p_ = end_;  // nothing more is written
    return *this;
  }

  char* begin_;
  char* end_;
  char* p_;
  bool ok_ = true;
};

/// The line that opens a chunk of `size` bytes: hex digits and CRLF ("1a\r\n"). When
/// `after_chunk`, it starts with the CRLF that ends the previous chunk's data, so each
/// chunk after the first costs one iovec for its framing.
class chunk_header {
 public:
  /// The line for a chunk of `size` bytes, led by CRLF when `after_chunk`.
  constexpr explicit chunk_header(std::uint64_t size, bool after_chunk = false) noexcept {
    char* p = text_;
    if (after_chunk) *p++ = '\r', *p++ = '\n';
    char digits[16];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[size & 15];
      size >>= 4;
    } while (size != 0);
    while (n > 0) *p++ = digits[--n];
    *p++ = '\r';
    *p++ = '\n';
    size_ = static_cast<std::uint8_t>(p - text_);
  }
  /// The line's bytes (the object must outlive the view).
  constexpr std::string_view view() const noexcept { return {text_, size_}; }

 private:
  char text_[20] = {};
  std::uint8_t size_ = 0;
};
/// What follows a chunk's data.
inline constexpr std::string_view chunk_end = "\r\n";
/// The last chunk and the empty trailer section, after a chunk_end.
inline constexpr std::string_view last_chunk = "0\r\n\r\n";
/// chunk_end and last_chunk together, after the last data chunk.
inline constexpr std::string_view end_of_chunks = "\r\n0\r\n\r\n";

/// Up to N byte ranges for one writev (or sendmsg), and what remains of them after a
/// short write. Views only: the bytes must outlive the list.
template <std::size_t N>
class iovec_list {
  static_assert(N > 0 && N <= 1024, "IOV_MAX is 1024 on Linux");

 public:
  /// Appends `bytes` (an empty range is skipped); false if the list is full.
  bool push(std::string_view bytes) noexcept {
    if (bytes.empty()) return true;
    if (count_ == N) return false;
    iov_[count_++] = {const_cast<char*>(bytes.data()), bytes.size()};  // writev never writes through it
    bytes_ += bytes.size();
    return true;
  }
  /// Drops the first `n` bytes (what writev reported written), leaving the rest in order.
  void consume(std::size_t n) noexcept {
    if (n >= bytes_) {
      first_ = count_;
      bytes_ = 0;
      return;
    }
    bytes_ -= n;
    while (n != 0 && n >= iov_[first_].iov_len) n -= iov_[first_++].iov_len;
    iov_[first_].iov_base = static_cast<char*>(iov_[first_].iov_base) + n;
    iov_[first_].iov_len -= n;
  }
  /// Empties the list.
  void clear() noexcept { first_ = count_ = 0, bytes_ = 0; }

  /// The iovecs still to write, for writev's second argument.
  const iovec* data() const noexcept { return iov_.data() + first_; }
  /// How many, for writev's third argument.
  int count() const noexcept { return static_cast<int>(count_ - first_); }
  /// The bytes still to write.
  std::size_t bytes() const noexcept { return bytes_; }
  /// Nothing is left to write.
  bool empty() const noexcept { return bytes_ == 0; }

 private:
  std::array<iovec, N> iov_{};
  std::size_t first_ = 0;
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace http1
TETHER_END_NAMESPACE
