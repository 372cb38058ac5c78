/* The hand-written C baseline for the streaming workload: the seed's http_closecb server
 * (PECL event's EventHttpConnection::setCloseCallback example) in C, done correctly:
 * every request gets a close callback, a multipart/x-mixed-replace reply is started with
 * one "<html>" chunk and kept open; when the client hangs up the callback prints
 * "_close_callback" and frees the request libevent detached (otherwise each abandoned
 * stream leaks it). tether's examples/http_closecb.cpp is measured against it.
 *
 * Usage: c_closecb PORT */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void on_close(struct evhttp_connection* evcon, void* arg) {
  struct evhttp_request* req = arg;
  (void)evcon;
  puts("_close_callback");
  fflush(stdout);
  /* A stream cut off mid-reply is unlinked from its connection but not freed. */
  if (evhttp_request_get_connection(req) == NULL) evhttp_request_free(req);
}

static void on_request(struct evhttp_request* req, void* arg) {
  (void)arg;
  struct evhttp_connection* evcon = evhttp_request_get_connection(req);
  evhttp_connection_set_closecb(evcon, on_close, req);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "multipart/x-mixed-replace;boundary=boundarydonotcross");
  evhttp_send_reply_start(req, 200, "OK");
  struct evbuffer* chunk = evbuffer_new();
  evbuffer_add(chunk, "<html>", 6);
  evhttp_send_reply_chunk(req, chunk);
  evbuffer_free(chunk);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: c_closecb PORT\n");
    return 2;
  }
  int port = atoi(argv[1]);
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "Invalid port\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct event_base* base = event_base_new();
  struct evhttp* http = evhttp_new(base);
  evhttp_set_gencb(http, on_request, NULL);
  if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0) {
    fprintf(stderr, "c_closecb: cannot listen on port %d\n", port);
    return 1;
  }
  event_base_dispatch(base);
  evhttp_free(http);
  event_base_free(base);
  return 0;
}
