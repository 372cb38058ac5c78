/* bench/engine/load.c - a fixed amount of concurrent keep-alive load, for counting a
 * server's syscalls per request at a given concurrency (wrk is not installed here, and a
 * count needs a fixed number of requests rather than a fixed time).
 *
 *   load PORT CONNECTIONS REQUESTS_PER_CONNECTION
 *
 * Opens CONNECTIONS keep-alive connections; each sends the hello request, waits for the
 * whole reply (a Content-Length body "hello"), and sends the next, REQUESTS_PER_CONNECTION
 * times. All connections are in flight at once (one epoll loop). Prints the requests
 * completed; exits non-zero on any protocol surprise or after 60 s without progress. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char request[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: tether-bench\r\nAccept: */*\r\n\r\n";

struct conn {
  int fd;
  long left;     /* requests still to send */
  char buf[4096];
  size_t len;
};

/* A complete reply at the front of c->buf: its length, or 0 if more is needed. */
static size_t complete_reply(const struct conn* c) {
  const char* end = memmem(c->buf, c->len, "\r\n\r\n", 4);
  if (!end) return 0;
  const char* cl = memmem(c->buf, (size_t)(end - c->buf), "Content-Length: ", 16);
  if (!cl) return (size_t)-1;
  const size_t body = strtoul(cl + 16, NULL, 10);
  const size_t total = (size_t)(end - c->buf) + 4 + body;
  return c->len >= total ? total : 0;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: load PORT CONNECTIONS REQUESTS_PER_CONNECTION\n");
    return 2;
  }
  const int port = atoi(argv[1]);
  const int n = atoi(argv[2]);
  const long per = atol(argv[3]);
  struct conn* conns = calloc((size_t)n, sizeof *conns);
  const int ep = epoll_create1(0);
  if (!conns || ep < 0) return 1;
  for (int i = 0; i < n; ++i) {
    struct conn* c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr*)&sa, sizeof sa) != 0) return 1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->left = per;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  long done = 0, active = 0;
  for (int i = 0; i < n; ++i) {
    if (conns[i].left > 0) {
      if (send(conns[i].fd, request, sizeof request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof request - 1)) return 1;
      --conns[i].left;
      ++active;
    }
  }
  struct epoll_event evs[256];
  while (active > 0) {
    const int k = epoll_wait(ep, evs, 256, 60000);
    if (k <= 0) {
      fprintf(stderr, "load: no progress for 60 s (%ld done)\n", done);
      return 1;
    }
    for (int e = 0; e < k; ++e) {
      struct conn* c = evs[e].data.ptr;
      const ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
      if (got <= 0) {
        fprintf(stderr, "load: the server closed a connection (%ld done)\n", done);
        return 1;
      }
      c->len += (size_t)got;
      size_t r;
      while ((r = complete_reply(c)) != 0) {
        if (r == (size_t)-1 || memcmp(c->buf, "HTTP/1.1 200", 12) != 0) {
          fprintf(stderr, "load: unexpected reply\n");
          return 1;
        }
        memmove(c->buf, c->buf + r, c->len - r);
        c->len -= r;
        ++done;
        if (c->left > 0) {
          if (send(c->fd, request, sizeof request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof request - 1)) return 1;
          --c->left;
        } else {
          --active;
        }
      }
    }
  }
  printf("%ld\n", done);
  for (int i = 0; i < n; ++i) close(conns[i].fd);
  return 0;
}
