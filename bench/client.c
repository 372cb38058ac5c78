/* Deterministic load for bench/run: one client, requests in sequence, every reply checked,
 * so that two servers doing the same work see exactly the same bytes.
 *
 *   client hello PORT N          N keep-alive GETs on one connection, each reply read in full
 *                                and checked for 200 and the body "hello".
 *   client stream PORT N rst|fin N connections, one after another: each sends a GET, reads
 *                                until the stream's first chunk "<html>" arrives, then leaves
 *                                abruptly (rst: SO_LINGER {1,0} then close; fin: close).
 *
 * N = 0 connects and closes without a request, the fixed cost subtracted by bench/run.
 * Exits non-zero on any protocol surprise; every wait is bounded by a 10 s receive timeout. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char hello_request[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: tether-bench\r\nAccept: */*\r\n\r\n";

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads one response with a Content-Length body; leaves extra bytes in buf. */
static int read_hello(int fd, char* buf, size_t cap, size_t* have) {
  for (int reads = 0; reads < 1000; ++reads) {
    char* end = memmem(buf, *have, "\r\n\r\n", 4);
    if (end) {
      size_t head = (size_t)(end - buf) + 4;
      const char* cl = memmem(buf, head, "Content-Length: ", 16);
      if (!cl || strncmp(buf, "HTTP/1.1 200 ", 13) != 0) return -1;
      size_t body = (size_t)strtoul(cl + 16, NULL, 10);
      if (*have >= head + body) {
        if (body != 5 || memcmp(buf + head, "hello", 5) != 0) return -1;
        memmove(buf, buf + head + body, *have - head - body);
        *have -= head + body;
        return 0;
      }
    }
    if (*have == cap) return -1;
    ssize_t r = recv(fd, buf + *have, cap - *have, 0);
    if (r <= 0) return -1;
    *have += (size_t)r;
  }
  return -1;
}

static int run_hello(int port, long n) {
  int fd = dial(port);
  if (fd < 0) return perror("connect"), 1;
  char buf[8192];
  size_t have = 0;
  for (long i = 0; i < n; ++i) {
    if (send_all(fd, hello_request, sizeof hello_request - 1) != 0 || read_hello(fd, buf, sizeof buf, &have) != 0) {
      fprintf(stderr, "client: hello request %ld failed\n", i);
      return 1;
    }
  }
  close(fd);
  return 0;
}

static int run_stream(int port, long n, int rst) {
  static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  for (long i = 0; i < n; ++i) {
    int fd = dial(port);
    if (fd < 0) return perror("connect"), 1;
    char buf[4096];
    size_t have = 0;
    int seen = 0;
    if (send_all(fd, req, sizeof req - 1) != 0) return fprintf(stderr, "client: send failed\n"), 1;
    for (int reads = 0; reads < 100 && !seen; ++reads) {
      ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
      if (r <= 0) break;
      have += (size_t)r;
      buf[have] = '\0';
      seen = strstr(buf, "<html>") != NULL;
    }
    if (!seen) return fprintf(stderr, "client: stream %ld: no <html> chunk\n", i), 1;
    if (rst) {
      struct linger lg = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
  }
  if (n == 0) {
    int fd = dial(port);
    if (fd < 0) return perror("connect"), 1;
    close(fd);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: client hello PORT N | client stream PORT N rst|fin\n");
    return 2;
  }
  int port = atoi(argv[2]);
  long n = atol(argv[3]);
  if (port <= 0 || port > 65535 || n < 0) return fprintf(stderr, "client: bad arguments\n"), 2;
  if (strcmp(argv[1], "hello") == 0) return run_hello(port, n);
  if (strcmp(argv[1], "stream") == 0 && argc > 4) return run_stream(port, n, strcmp(argv[4], "rst") == 0);
  fprintf(stderr, "client: unknown mode\n");
  return 2;
}
