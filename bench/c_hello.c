/* The hand-written C baseline for the hello workload: libevent evhttp answering every
 * request with 200 "hello" (text/plain) on keep-alive connections, written the way a C
 * programmer would (add the header, append to the request's output buffer, send).
 * tether's examples/hello.cpp is measured against it by bench/run.
 *
 * Usage: c_hello PORT [--fast]
 *   --fast: the same server with the epoll changelist flag, for comparison with
 *           `hello --fast` on the loop flag alone. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_request(struct evhttp_request* req, void* arg) {
  (void)arg;
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
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
  signal(SIGPIPE, SIG_IGN);
  struct event_config* cfg = event_config_new();
  if (argc > 2 && strcmp(argv[2], "--fast") == 0)
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  struct event_base* base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  struct evhttp* http = evhttp_new(base);
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
