// tether/detail/date_cache.hpp - the Date header, formatted once per second.
//
// evhttp formats a fresh RFC 1123 date for every HTTP/1.1 reply (gmtime + snprintf,
// about a tenth of a small request's instructions). It skips that when the reply
// already carries a Date, so a server that opted in (basic_server::cache_date_header)
// stamps the one it formatted during the current second, taken from the loop's cached
// clock. The bytes on the wire are the same. Engines that write their own heads
// (http1::head_writer) take the same text through view().
#pragma once

#include <tether/config.hpp>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>  // evhttp_request::major/minor: libevent has no accessor

#include <cstddef>
#include <ctime>
#include <string_view>

TETHER_BEGIN_NAMESPACE
namespace detail {

class date_cache {
 public:
  /// The current date as "Sun, 06 Nov 1994 08:49:37 GMT", reformatted when the second
  /// of the loop's cached time changes.
  const char* now(event_base* base) noexcept {
    timeval tv{};
    if (event_base_gettimeofday_cached(base, &tv) != 0) tv.tv_sec = std::time(nullptr);
    if (tv.tv_sec != second_ && format(tv.tv_sec, text_)) second_ = tv.tv_sec;
    return text_;
  }

  /// now() as a view, for writers that take lengths (http1::head_writer::date): 29
  /// characters, or empty if the time cannot be represented.
  std::string_view view(event_base* base) noexcept {
    const char* date = now(base);
    return {date, *date != '\0' ? length : 0};
  }
  static constexpr std::size_t length = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"

  /// Adds the cached Date to an HTTP/1.1 reply that has none: the replies evhttp would
  /// otherwise stamp itself (it leaves HTTP/1.0 replies without one).
  void stamp(event_base* base, evhttp_request* r) noexcept {
    if (r->major != 1 || r->minor < 1) return;
    evkeyvalq* headers = evhttp_request_get_output_headers(r);
    if (evhttp_find_header(headers, "Date") != nullptr) return;
    if (const char* date = now(base); *date != '\0') evhttp_add_header(headers, "Date", date);
  }

  /// Writes `sec` as an RFC 1123 date (29 characters and a NUL); false if the time
  /// cannot be represented, leaving `out` as it was.
  static bool format(time_t sec, char (&out)[32]) noexcept {
    static constexpr char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    if (!gmtime_r(&sec, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) return false;
    char* p = out;
    auto put = [&p](const char* s) noexcept {
      while (*s) *p++ = *s++;
    };
    auto put2 = [&p](int v) noexcept {
      *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
    };
    put(days[tm.tm_wday % 7]);
    put(", ");
    put2(tm.tm_mday);
    *p++ = ' ';
    put(months[tm.tm_mon % 12]);
    *p++ = ' ';
    const int year = tm.tm_year + 1900;
    put2(year / 100);
    put2(year % 100);
    *p++ = ' ';
    put2(tm.tm_hour);
    *p++ = ':';
    put2(tm.tm_min);
    *p++ = ':';
    put2(tm.tm_sec);
    put(" GMT");
    *p = '\0';
    return true;
  }

 private:
  time_t second_ = -1;
  char text_[32] = {};
};

}  // namespace detail
TETHER_END_NAMESPACE
