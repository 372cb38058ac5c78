/* The hand-written C baseline for the hello workload: libevent evhttp answering every
 * request with 200 "hello" (text/plain) on keep-alive connections, written the way a C
 * programmer would (add the header, append to the request's output buffer, send).
 * tether's examples/hello.cpp is measured against it by bench/run.
 *
 * Usage: c_hello PORT [--fast]
 *   --fast: the same server with the three knobs `hello --fast` turns on, done by hand in
 *           C, so that tether's fast policies are compared with C that has them too:
 *           1. libevent's allocations through a size-class pool installed with
 *              event_set_mem_functions before anything else touches libevent (blocks of
 *              up to 1024 bytes in 16-byte classes, freed blocks kept on per-class lists,
 *              at most 256 KiB kept, like tether::pooled_memory<>'s defaults);
 *           2. the epoll changelist (EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
 *           3. a Date header formatted once per second from the loop's cached clock and
 *              added before evhttp would format its own. */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* ----- the pool (--fast) ------------------------------------------------------------- */

enum { pool_header = 16, pool_step = 16, pool_largest = 1024, pool_classes = pool_largest / pool_step };
enum { pool_keep_bytes = 256 * 1024 };

/* Every block starts with a 16-byte header holding its class (or pool_classes for a block
 * too large to pool, with its size), so that free and realloc know what they hold. */
struct pool_head {
  size_t cls;
  size_t size;
};
struct pool_link {
  struct pool_link* next;
};
static struct pool_link* pool_lists[pool_classes];
static size_t pool_kept;

static size_t pool_class_of(size_t n) { return n == 0 ? 0 : (n - 1) / pool_step; }
static size_t pool_class_bytes(size_t cls) { return (cls + 1) * pool_step; }

static void* pool_malloc(size_t n) {
  if (n > pool_largest) {
    if (n > (size_t)-1 - pool_header) return NULL;
    struct pool_head* h = malloc(pool_header + n);
    if (h == NULL) return NULL;
    h->cls = pool_classes;
    h->size = n;
    return (char*)h + pool_header;
  }
  size_t cls = pool_class_of(n);
  struct pool_link* f = pool_lists[cls];
  if (f != NULL) {
    pool_lists[cls] = f->next;
    pool_kept -= pool_class_bytes(cls) + pool_header;
    return f;
  }
  struct pool_head* h = malloc(pool_header + pool_class_bytes(cls));
  if (h == NULL) return NULL;
  h->cls = cls;
  h->size = 0;
  return (char*)h + pool_header;
}

static void pool_free(void* p) {
  if (p == NULL) return;
  struct pool_head* h = (struct pool_head*)((char*)p - pool_header);
  if (h->cls == pool_classes || pool_kept + pool_class_bytes(h->cls) + pool_header > pool_keep_bytes) {
    free(h);
    return;
  }
  struct pool_link* f = p;
  f->next = pool_lists[h->cls];
  pool_lists[h->cls] = f;
  pool_kept += pool_class_bytes(h->cls) + pool_header;
}

static void* pool_realloc(void* p, size_t n) {
  if (p == NULL) return pool_malloc(n);
  if (n == 0) {
    pool_free(p);
    return NULL;
  }
  struct pool_head* h = (struct pool_head*)((char*)p - pool_header);
  size_t have = h->cls == pool_classes ? h->size : pool_class_bytes(h->cls);
  if (h->cls != pool_classes && n <= have) return p;
  void* q = pool_malloc(n);
  if (q == NULL) return NULL;
  memcpy(q, p, have < n ? have : n);
  pool_free(p);
  return q;
}

/* ----- the cached Date (--fast) ------------------------------------------------------ */

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

/* ----- the server -------------------------------------------------------------------- */

static void on_request(struct evhttp_request* req, void* arg) {
  (void)arg;
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
  evbuffer_add(evhttp_request_get_output_buffer(req), "hello", 5);
  evhttp_send_reply(req, 200, "OK", NULL);
}

/* The same reply, with the Date header where evhttp (and tether) would put it. */
static void on_request_fast(struct evhttp_request* req, void* arg) {
  struct evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", "text/plain");
  const char* date = cached_date(arg);
  if (date != NULL) evhttp_add_header(headers, "Date", date);
  evbuffer_add(evhttp_request_get_output_buffer(req), "hello", 5);
  evhttp_send_reply(req, 200, "OK", NULL);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: c_hello PORT [--fast]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "Invalid port\n");
    return 2;
  }
  int fast = argc > 2 && strcmp(argv[2], "--fast") == 0;
  if (fast) event_set_mem_functions(pool_malloc, pool_realloc, pool_free); /* first */
  signal(SIGPIPE, SIG_IGN);
  struct event_config* cfg = event_config_new();
  if (fast) event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  struct event_base* base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  struct evhttp* http = evhttp_new(base);
  if (fast)
    evhttp_set_gencb(http, on_request_fast, base);
  else
    evhttp_set_gencb(http, on_request, NULL);
  if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0) {
    fprintf(stderr, "c_hello: cannot listen on port %d\n", port);
    return 1;
  }
  event_base_dispatch(base);
  evhttp_free(http);
  event_base_free(base);
  return 0;
}
