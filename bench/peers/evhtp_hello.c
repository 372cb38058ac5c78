/* Peer: examples/hello.cpp written with libevhtp 1.2 (Debian's libevhtp-dev), one thread
 * (no evhtp_use_threads): every request gets 200 "hello" with Content-Type: text/plain and a
 * Date formatted once per second from the loop's cached clock, like tether's hello.
 * libevhtp adds Content-Length itself; the reply is otherwise the same bytes. SIGTERM or
 * SIGINT breaks the loop. Measured by bench/engine/run (meson option `peers`).
 *
 * Usage: evhtp_hello PORT */
#define _POSIX_C_SOURCE 200809L /* gmtime_r under -std=c11 */

#include <evhtp/evhtp.h>

#include <event2/event.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static char date_text[64];
static time_t date_second = -1;

static const char* cached_date(struct event_base* base) {
  struct timeval tv;
  if (event_base_gettimeofday_cached(base, &tv) != 0) tv.tv_sec = time(NULL);
  if (tv.tv_sec != date_second) {
    struct tm tm;
    if (gmtime_r(&tv.tv_sec, &tm) == NULL || strftime(date_text, sizeof date_text, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
      return NULL;
    date_second = tv.tv_sec;
  }
  return date_text;
}

static void on_request(evhtp_request_t* req, void* arg) {
  /* Neither key nor value is copied (kalloc = valloc = 0): both outlive the reply, which
   * evhtp_send_reply serialises before it returns. */
  evhtp_headers_add_header(req->headers_out, evhtp_header_new("Content-Type", "text/plain", 0, 0));
  const char* date = cached_date(arg);
  if (date != NULL) evhtp_headers_add_header(req->headers_out, evhtp_header_new("Date", date, 0, 0));
  evbuffer_add(req->buffer_out, "hello", 5);
  evhtp_send_reply(req, EVHTP_RES_OK);
}

static void on_signal(evutil_socket_t fd, short what, void* base) {
  (void)fd;
  (void)what;
  event_base_loopbreak(base);
}

int main(int argc, char** argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "usage: evhtp_hello PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct event_base* base = event_base_new();
  evhtp_t* htp = evhtp_new(base, NULL);
  evhtp_set_gencb(htp, on_request, base);
  if (evhtp_bind_socket(htp, "127.0.0.1", (uint16_t)port, 1024) != 0) {
    fprintf(stderr, "evhtp_hello: cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  struct event* term = evsignal_new(base, SIGTERM, on_signal, base);
  struct event* intr = evsignal_new(base, SIGINT, on_signal, base);
  event_add(term, NULL);
  event_add(intr, NULL);
  event_base_dispatch(base);
  event_free(term);
  event_free(intr);
  evhtp_unbind_socket(htp);
  evhtp_free(htp);
  event_base_free(base);
  return 0;
}
