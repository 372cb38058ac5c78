/* bench/sse_scale/c_sse.c - the hand-written C libevent SSE server that tether_sse.cpp is
 * measured against: what a careful C programmer writes with evhttp alone.
 *
 *   GET /events  starts a text/event-stream reply (evhttp_send_reply_start) that stays open
 *   GET /stats   one line of counters (format in proc_self.h; ?trim: malloc_trim first)
 *   SIGUSR1      prints the same line on stdout
 *   SIGTERM/INT  frees everything and exits
 *
 * One timer sends the same event to every live stream once a second, with
 * evhttp_send_reply_chunk. A stream's connection gets a close callback; the callback
 * unlinks the stream and settles its request the way libevent 2.1.12 requires
 * (/work/shared/research/libevent-close.md, 1.4): a request whose reply was still streaming
 * when the client vanished is *detached* (evhttp_request_get_connection() == NULL) and
 * libevent never frees it, so we must (evhttp_request_free). A request still attached
 * (the server is shutting down: evhttp_free) is freed by libevent right after the
 * callback, so we must not. evhttp_send_reply_end on a detached request would free it
 * too, but sends nothing; evhttp_request_free says what we mean.
 *
 * Usage: c_sse PORT      (environment: SSE_TICK_MS, the period in ms; default 1000)
 */
#include "proc_self.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define NIL UINT32_MAX

/* One stream. Kept in one array indexed by stream id and never freed before exit, so that
 * a second close callback for the same connection (which libevent promises never to make)
 * would be counted instead of touching freed memory. */
struct client {
  struct evhttp_request* req; /* null once the connection closed */
  uint32_t prev, next;        /* the list of live streams */
  uint8_t closed;
};

static struct client* clients;
static uint32_t nclients, capacity;
static uint32_t live_head = NIL;
static struct sse_counters counters;
static struct evbuffer* scratch;

static uint32_t new_client(struct evhttp_request* req) {
  if (nclients == capacity) {
    uint32_t cap = capacity ? capacity * 2 : 1024;
    struct client* grown = realloc(clients, (size_t)cap * sizeof *clients);
    if (!grown) return NIL;
    clients = grown;
    capacity = cap;
  }
  uint32_t id = nclients++;
  struct client* c = &clients[id];
  c->req = req;
  c->closed = 0;
  c->prev = NIL;
  c->next = live_head;
  if (live_head != NIL) clients[live_head].prev = id;
  live_head = id;
  return id;
}

static void unlink_client(uint32_t id) {
  struct client* c = &clients[id];
  if (c->prev != NIL) clients[c->prev].next = c->next;
  else live_head = c->next;
  if (c->next != NIL) clients[c->next].prev = c->prev;
  c->prev = c->next = NIL;
}

/* Why the connection ended, from the kernel: a FIN leaves the socket in CLOSE_WAIT, a RST
 * in CLOSE. */
static void classify(struct evhttp_connection* evcon) {
  struct tcp_info info;
  socklen_t len = sizeof info;
  evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
  memset(&info, 0, sizeof info);
  if (fd >= 0 && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0) {
    if (info.tcpi_state == TCP_CLOSE_WAIT) {
      ++counters.peer_closed;
      return;
    }
    if (info.tcpi_state == TCP_CLOSE) {
      ++counters.peer_reset;
      return;
    }
  }
  ++counters.other;
}

static void on_close(struct evhttp_connection* evcon, void* arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg;
  struct client* c = &clients[id];
  ++counters.closes;
  if (c->closed) {
    ++counters.dup;
    return;
  }
  c->closed = 1;
  classify(evcon);
  unlink_client(id);
  --counters.open;
  /* Detached (the client left mid-stream): nobody else will free it. Attached
   * (evhttp_free at shutdown): libevent frees it after this callback returns. */
  if (evhttp_request_get_connection(c->req) == NULL) evhttp_request_free(c->req);
  c->req = NULL;
}

static void on_events(struct evhttp_request* req, void* arg) {
  (void)arg;
  struct evhttp_connection* evcon = evhttp_request_get_connection(req);
  struct evkeyvalq* headers = evhttp_request_get_output_headers(req);
  uint32_t id = new_client(req);
  if (id == NIL) {
    evhttp_send_error(req, 503, NULL);
    return;
  }
  evhttp_add_header(headers, "Content-Type", "text/event-stream");
  evhttp_add_header(headers, "Cache-Control", "no-cache");
  evhttp_add_header(headers, "X-Accel-Buffering", "no");
  evhttp_connection_set_closecb(evcon, on_close, (void*)(uintptr_t)id);
  ++counters.open;
  ++counters.started;
  evhttp_send_reply_start(req, 200, "OK");
  /* The PECL http_closecb recipe: read enabled so that a hang-up is noticed. libevent
   * >= 2.1.9 already did this inside evhttp_send_reply_start (with a NULL read callback);
   * doing it after the reply started is harmless, before it would let a stray byte reach
   * evhttp_read_cb in state WRITING and exit the process. */
  bufferevent_enable(evhttp_connection_get_bufferevent(evcon), EV_READ);
}

static void on_stats(struct evhttp_request* req, void* arg) {
  (void)arg;
  char line[512];
  sse_maybe_trim(evhttp_request_get_uri(req));
  int n = sse_format_stats(line, sizeof line, &counters);
  struct evbuffer* out = evhttp_request_get_output_buffer(req);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
  evbuffer_add(out, line, (size_t)n);
  evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_tick(evutil_socket_t fd, short what, void* arg) {
  (void)fd;
  (void)what;
  (void)arg;
  char event[96];
  int n = snprintf(event, sizeof event, "id: %lu\nevent: tick\ndata: %lld\n\n", counters.published + 1,
                   (long long)time(NULL));
  ++counters.published;
  for (uint32_t id = live_head; id != NIL; id = clients[id].next) {
    evbuffer_add(scratch, event, (size_t)n);
    evhttp_send_reply_chunk(clients[id].req, scratch); /* moves the bytes out of scratch */
    evbuffer_drain(scratch, evbuffer_get_length(scratch));
    ++counters.delivered;
  }
}

static void on_signal(evutil_socket_t sig, short what, void* arg) {
  (void)what;
  if (sig == SIGUSR1) {
    char line[512];
    sse_format_stats(line, sizeof line, &counters);
    fputs(line, stdout);
    fflush(stdout);
    return;
  }
  event_base_loopbreak((struct event_base*)arg);
}

int main(int argc, char** argv) {
  char* end = NULL;
  long port = argc > 1 ? strtol(argv[1], &end, 10) : 0;
  if (argc != 2 || *end != '\0' || port <= 0 || port > 65535) {
    fprintf(stderr, "usage: c_sse PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct event_base* base = event_base_new();
  struct evhttp* http = base ? evhttp_new(base) : NULL;
  scratch = evbuffer_new();
  if (!http || !scratch) return 1;
  evhttp_set_cb(http, "/events", on_events, NULL);
  evhttp_set_cb(http, "/stats", on_stats, NULL);
  if (!evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port)) {
    fprintf(stderr, "c_sse: cannot listen on 127.0.0.1:%ld\n", port);
    return 1;
  }
  struct event* tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
  const char* tick_env = getenv("SSE_TICK_MS");
  const long tick_ms = tick_env && atol(tick_env) > 0 ? atol(tick_env) : 1000;
  struct timeval period = {tick_ms / 1000, (tick_ms % 1000) * 1000};
  event_add(tick, &period);
  struct event* sigs[3];
  const int signums[3] = {SIGUSR1, SIGTERM, SIGINT};
  for (int i = 0; i < 3; ++i) {
    sigs[i] = evsignal_new(base, signums[i], on_signal, base);
    event_add(sigs[i], NULL);
  }
  printf("c_sse: listening on 127.0.0.1:%ld\n", port);
  fflush(stdout);

  event_base_dispatch(base);

  for (int i = 0; i < 3; ++i) event_free(sigs[i]);
  event_free(tick);
  evhttp_free(http); /* close callbacks run for the streams still open */
  evbuffer_free(scratch);
  event_base_free(base);
  free(clients);
  return 0;
}
