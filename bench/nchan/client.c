/* bench/nchan/client.c - drives one pub/sub server (tether_pubsub or nginx with nchan) for
 * bench/nchan/run, and measures it from /proc.
 *
 * One thread, epoll, no allocation per event. Phases:
 *  1. raises RLIMIT_NOFILE to what N subscribers need (fails clearly if it cannot);
 *  2. memory: the summed VmRSS of the server's processes (-p PID,PID...) before and with N
 *     idle SSE subscribers (GET /sub, every response head received, 300 ms settled);
 *  3. latency: M messages published at RATE per second (POST /pub on one keep-alive
 *     connection, body "SEQ NS" with NS the publisher's CLOCK_MONOTONIC in ns); each
 *     delivery's latency is the time this process read its frame minus NS (one clock).
 *     The server's CPU (utime+stime of its processes) over those messages, until every
 *     subscriber has every message, divided by N*M: CPU per delivered event;
 *  4. CPU-bound: for B seconds, publishes whenever fewer than K messages are on their way
 *     (published and not yet received by all N): the server never waits for the client
 *     beyond K messages. Deliveries divided by the server's CPU seconds: events per
 *     CPU-second; also per wall second;
 *  5. SSE hang-ups: every subscriber closes (half RST, half FIN, at a quiet point); the
 *     time until the server's descriptors went down by N, the server's CPU time over that
 *     time per hang-up, and the CLOSE_WAIT sockets left;
 *  6. long-poll (unless -L ""): N requests GET LP_PATH held by the server (lp_bytes_per_request:
 *     the VmRSS they added, which after phase 5 is mostly memory the SSE subscribers freed,
 *     so no per-request figure); then every one closes (FIN); the time until the server
 *     released them, and its CPU time per hang-up over that time.
 *
 * Prints key=value lines on stdout; progress on stderr. Exit 0 if every check passed, 1 if
 * one failed, 2 on a setup error. Every wait is bounded in time.
 *
 * Usage: nchan_client PORT -p PID[,PID...] [-n N] [-m M] [-r RATE] [-b SECONDS] [-k K]
 *                     [-L LP_PATH]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { INFLIGHT = 64, MAX_PIDS = 16, MAX_MSGS = 1 << 20 };
#define PUB_ID 0xffffffffu

enum state { S_IDLE, S_CONNECTING, S_HEAD, S_OPEN, S_GONE, S_FAILED };

struct conn {
  int fd;
  uint8_t state;
  uint8_t head_match; /* bytes of "\r\n\r\n" matched */
  uint8_t match;      /* bytes of "\ndata: " matched */
  uint8_t field;      /* 0 matching, 1 in SEQ, 2 in NS */
  uint16_t head_len;
  uint8_t status_ok;
  uint64_t seq, ns;
  uint32_t got;
};

static uint16_t port;
static int pids[MAX_PIDS], npids;
static struct conn* conns;
static uint32_t n_conns, next_conn, inflight, opened, failed, answered_early;
static int epfd;
static const char* request_line;
static size_t request_len;
static double deadline;

/* deliveries */
static uint32_t* per_msg;       /* subscribers that got message SEQ */
static double* pub_at;          /* when SEQ was published (s) */
static double* reached_all_ms;  /* when the last subscriber got SEQ, after publishing */
static uint64_t published, complete, delivered;
static double* lat_ms;
static size_t lat_n, lat_cap;
static int recording;
static int lp_mode; /* long-poll phase: any byte received is an early answer */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(int code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("nchan_client: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}
static void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("nchan_client: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static struct sockaddr_in server_addr(void) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

/* ----- /proc ------------------------------------------------------------------------ */

static long rss_kb(void) {
  long total = 0;
  char path[64], line[256];
  for (int i = 0; i < npids; ++i) {
    snprintf(path, sizeof path, "/proc/%d/status", pids[i]);
    FILE* f = fopen(path, "r");
    if (!f) continue;
    while (fgets(line, sizeof line, f)) {
      long v;
      if (strncmp(line, "VmRSS:", 6) == 0 && sscanf(line + 6, "%ld", &v) == 1) total += v;
    }
    fclose(f);
  }
  return total;
}

static double cpu_s(void) {
  double total = 0;
  const double hz = (double)sysconf(_SC_CLK_TCK);
  char path[64], buf[1024];
  for (int i = 0; i < npids; ++i) {
    snprintf(path, sizeof path, "/proc/%d/stat", pids[i]);
    FILE* f = fopen(path, "r");
    if (!f) continue;
    if (fgets(buf, sizeof buf, f)) {
      const char* after = strrchr(buf, ')');
      unsigned long ut = 0, st = 0;
      if (after && sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
        total += (double)(ut + st) / hz;
    }
    fclose(f);
  }
  return total;
}

static long fds(void) {
  long total = 0;
  char path[64];
  for (int i = 0; i < npids; ++i) {
    snprintf(path, sizeof path, "/proc/%d/fd", pids[i]);
    DIR* d = opendir(path);
    if (!d) continue;
    for (struct dirent* e; (e = readdir(d));)
      if (e->d_name[0] != '.') ++total;
    closedir(d);
  }
  return total;
}

static long close_wait(void) {
  static const char* files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
  long count = 0;
  char line[512];
  for (int i = 0; i < 2; ++i) {
    FILE* f = fopen(files[i], "r");
    if (!f) continue;
    while (fgets(line, sizeof line, f)) {
      char local[64], remote[64];
      unsigned st = 0;
      if (sscanf(line, " %*[0-9]: %63s %63s %x", local, remote, &st) != 3) continue;
      const char* colon = strrchr(local, ':');
      if (colon && strtoul(colon + 1, NULL, 16) == port && st == 0x08) ++count;
    }
    fclose(f);
  }
  return count;
}

/* ----- subscribers -------------------------------------------------------------------- */

static void conn_fail(uint32_t i, const char* why) {
  struct conn* c = &conns[i];
  if (c->state == S_CONNECTING || c->state == S_HEAD) --inflight;
  if (failed < 5) say("connection %u failed: %s", i, why);
  ++failed;
  c->state = S_FAILED;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

static void conn_start(uint32_t i) {
  struct conn* c = &conns[i];
  struct sockaddr_in sa = server_addr();
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die(2, "socket: %s", strerror(errno));
  c->state = S_CONNECTING;
  ++inflight;
  if (connect(c->fd, (struct sockaddr*)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
    conn_fail(i, strerror(errno));
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = i};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) die(2, "epoll_ctl: %s", strerror(errno));
}

static void conn_writable(uint32_t i) {
  struct conn* c = &conns[i];
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    conn_fail(i, err ? strerror(err) : "connect failed");
    return;
  }
  if (send(c->fd, request_line, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) {
    conn_fail(i, "short send");
    return;
  }
  c->state = S_HEAD;
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void deliver(struct conn* c, uint64_t t_ns) {
  ++c->got;
  ++delivered;
  if (c->seq < MAX_MSGS && c->seq < published) {
    if (++per_msg[c->seq] == n_conns) {
      ++complete;
      reached_all_ms[c->seq] = (double)t_ns / 1e6 - pub_at[c->seq] * 1e3;
    }
  }
  if (recording && lat_n < lat_cap) lat_ms[lat_n++] = (double)(t_ns - c->ns) / 1e6;
}

static void conn_readable(uint32_t i) {
  struct conn* c = &conns[i];
  char buf[16384];
  for (int rounds = 0; rounds < 8; ++rounds) {
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
      conn_fail(i, "the server closed the connection");
      return;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) conn_fail(i, strerror(errno));
      return;
    }
    const uint64_t t = now_ns();
    if (lp_mode) {
      c->got = 1;
      continue;
    }
    ssize_t at = 0;
    if (c->state == S_HEAD) {
      for (; at < n && c->head_match < 4; ++at) {
        if (c->head_len == 9) c->status_ok = buf[at] == '2';
        ++c->head_len;
        const char want = "\r\n\r\n"[c->head_match];
        c->head_match = buf[at] == want ? c->head_match + 1 : (buf[at] == '\r' ? 1 : 0);
      }
      if (c->head_match < 4) continue;
      if (!c->status_ok) {
        conn_fail(i, "status is not 2xx");
        return;
      }
      c->state = S_OPEN;
      --inflight;
      ++opened;
      c->match = 1; /* the head's last byte was '\n' */
    }
    for (; at < n; ++at) {
      const char b = buf[at];
      if (c->field == 0) {
        static const char pat[] = "\ndata: ";
        if (b == pat[c->match]) {
          if (++c->match == sizeof pat - 1) {
            c->field = 1;
            c->seq = c->ns = 0;
            c->match = 0;
          }
        } else {
          c->match = b == '\n' ? 1 : 0;
        }
      } else if (b >= '0' && b <= '9') {
        if (c->field == 1) c->seq = c->seq * 10 + (uint64_t)(b - '0');
        else c->ns = c->ns * 10 + (uint64_t)(b - '0');
      } else if (c->field == 1 && b == ' ') {
        c->field = 2;
      } else {
        if (c->field == 2) deliver(c, t);
        c->field = 0;
        c->match = b == '\n' ? 1 : 0;
      }
    }
    if (n < (ssize_t)sizeof buf) return;
  }
}

/* ----- the publisher ------------------------------------------------------------------ */

static int pub_fd = -1;
static int pub_busy;          /* a publish is waiting for its response */
static char pub_buf[8192];
static size_t pub_len;
static uint64_t pub_refused, pub_reconnects;
static void pub_open(void);

static void pub_open(void) {
  struct sockaddr_in sa = server_addr();
  pub_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (pub_fd < 0 || connect(pub_fd, (struct sockaddr*)&sa, sizeof sa) != 0) die(2, "publisher: connect failed");
  const int one = 1;
  setsockopt(pub_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = PUB_ID};
  epoll_ctl(epfd, EPOLL_CTL_ADD, pub_fd, &ev);
}

static void publish(void) {
  if (published >= MAX_MSGS) die(2, "more than %d messages", MAX_MSGS);
  char body[64], req[256];
  const double t = now();
  const int blen = snprintf(body, sizeof body, "%llu %llu", (unsigned long long)published, (unsigned long long)now_ns());
  const int rlen = snprintf(req, sizeof req,
                            "POST /pub HTTP/1.1\r\nHost: bench\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
                            blen, body);
  pub_at[published] = t;
  ++published;
  pub_busy = 1;
  pub_len = 0;
  if (send(pub_fd, req, (size_t)rlen, MSG_NOSIGNAL) != rlen) die(2, "publisher: short send");
}

/* Reads the publish response; clears pub_busy once it is complete. */
static void pub_readable(void) {
  ssize_t n = recv(pub_fd, pub_buf + pub_len, sizeof pub_buf - 1 - pub_len, MSG_DONTWAIT);
  if (n == 0 && !pub_busy) { /* a server may end a keep-alive connection after some requests */
    epoll_ctl(epfd, EPOLL_CTL_DEL, pub_fd, NULL);
    close(pub_fd);
    pub_open();
    ++pub_reconnects;
    return;
  }
  if (n == 0) die(2, "publisher: the server closed the connection before answering a publish");
  if (n < 0) return;
  pub_len += (size_t)n;
  pub_buf[pub_len] = '\0';
  char* eoh = strstr(pub_buf, "\r\n\r\n");
  if (!eoh) return;
  size_t need = 0;
  const char* cl = strcasestr(pub_buf, "\ncontent-length:");
  if (cl && cl < eoh) need = strtoul(cl + 16, NULL, 10);
  const size_t have = pub_len - (size_t)(eoh + 4 - pub_buf);
  if (strcasestr(pub_buf, "\ntransfer-encoding: chunked") && !strstr(eoh + 4, "0\r\n\r\n")) return;
  if (have < need) return;
  if (strncmp(pub_buf + 9, "20", 2) != 0) ++pub_refused;
  pub_busy = 0;
  pub_len = 0;
}

/* ----- the loop ------------------------------------------------------------------------ */

static void pump(int ms) {
  while (next_conn < n_conns && inflight < INFLIGHT) conn_start(next_conn++);
  struct epoll_event evs[512];
  const int n = epoll_wait(epfd, evs, 512, ms);
  for (int j = 0; j < n; ++j) {
    const uint32_t i = evs[j].data.u32;
    if (i == PUB_ID) {
      pub_readable();
      continue;
    }
    struct conn* c = &conns[i];
    if (c->state == S_CONNECTING) conn_writable(i);
    else if (c->state == S_HEAD || c->state == S_OPEN) conn_readable(i);
  }
}

static void pump_for(double seconds) {
  const double until = now() + seconds;
  for (double t; (t = now()) < until;) pump((int)((until - t) * 1000) + 1);
}

static int cmp_double(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}
static double pct(double* v, size_t n, double p) {
  if (n == 0) return -1;
  return v[(size_t)((double)(n - 1) * p)];
}

/* Opens n_conns connections sending `req`; waits for every head (or, with heads == 0,
 * for the server to hold `want_fds` descriptors). */
static void open_all(const char* req, int want_heads, long want_fds) {
  request_line = req;
  request_len = strlen(req);
  next_conn = inflight = opened = failed = 0;
  const double limit = now() + 60 + n_conns / 200.0;
  while (want_heads ? opened < n_conns : (next_conn < n_conns || inflight > 0)) {
    if (failed) die(1, "%u connections failed", failed);
    if (now() > limit) die(1, "only %u of %u connections ready after %.0f s", opened, n_conns, limit);
    pump(20);
    if (!want_heads) {
      /* Long-polls get no head: a request is "sent" once connected; count them as such. */
      for (uint32_t i = 0; i < next_conn; ++i)
        if (conns[i].state == S_HEAD) {
          conns[i].state = S_OPEN;
          --inflight;
          ++opened;
        }
    }
  }
  if (want_fds > 0) {
    while (fds() < want_fds) {
      if (now() > limit) die(1, "the server holds %ld descriptors, not %ld", fds(), want_fds);
      pump(20);
    }
  }
}

/* Closes every connection (half RST, half FIN when `mixed`) and returns the ms until the
 * server's descriptors fell to `target`, or -1 after 20 s. */
static double close_all(int mixed, long target) {
  const double t0 = now();
  for (uint32_t i = 0; i < n_conns; ++i) {
    struct conn* c = &conns[i];
    if (c->fd < 0) continue;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (mixed && i % 2 == 0) {
      struct linger lg = {1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else {
      char buf[4096];
      while (recv(c->fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
      }
    }
    close(c->fd);
    c->fd = -1;
    c->state = S_GONE;
  }
  for (;;) {
    const long f = fds();
    if (f <= target) return (now() - t0) * 1000.0;
    if (now() - t0 > 20) return -1;
    usleep(2000);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) die(2, "usage: nchan_client PORT -p PID[,PID...] [-n N] [-m M] [-r RATE] [-b S] [-k K] [-L PATH]");
  port = (uint16_t)strtol(argv[1], NULL, 10);
  long n = 10000, m = 20, k = 4;
  double rate = 5, burst = 3;
  const char* lp_path = "/lp";
  for (int i = 2; i + 1 < argc; i += 2) {
    const char* v = argv[i + 1];
    if (strcmp(argv[i], "-n") == 0) n = strtol(v, NULL, 10);
    else if (strcmp(argv[i], "-m") == 0) m = strtol(v, NULL, 10);
    else if (strcmp(argv[i], "-r") == 0) rate = strtod(v, NULL);
    else if (strcmp(argv[i], "-b") == 0) burst = strtod(v, NULL);
    else if (strcmp(argv[i], "-k") == 0) k = strtol(v, NULL, 10);
    else if (strcmp(argv[i], "-L") == 0) lp_path = v;
    else if (strcmp(argv[i], "-p") == 0) {
      for (char* s = (char*)v; *s && npids < MAX_PIDS;) {
        pids[npids++] = (int)strtol(s, &s, 10);
        if (*s == ',') ++s;
      }
    } else die(2, "unknown option %s", argv[i]);
  }
  if (port == 0 || npids == 0 || n < 2 || m < 1 || k < 1 || rate <= 0) die(2, "bad arguments");
  n_conns = (uint32_t)n;
  deadline = now() + 600;

  struct rlimit rl;
  const rlim_t need = (rlim_t)n + 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die(2, "getrlimit: %s", strerror(errno));
  if (rl.rlim_cur < need) {
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) rl.rlim_max = need; /* root may raise it */
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die(2, "%ld subscribers need %lu descriptors: setrlimit: %s", n, (unsigned long)need, strerror(errno));
  }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);

  epfd = epoll_create1(EPOLL_CLOEXEC);
  conns = calloc(n_conns, sizeof *conns);
  per_msg = calloc(MAX_MSGS, sizeof *per_msg);
  pub_at = calloc(MAX_MSGS, sizeof *pub_at);
  reached_all_ms = calloc(MAX_MSGS, sizeof *reached_all_ms);
  lat_cap = (size_t)n * (size_t)m;
  lat_ms = malloc(lat_cap * sizeof *lat_ms);
  if (epfd < 0 || !conns || !per_msg || !pub_at || !reached_all_ms || !lat_ms) die(2, "out of memory");
  for (uint32_t i = 0; i < n_conns; ++i) conns[i].fd = -1;
  printf("subscribers=%ld\nmessages=%ld\nrate=%g\n", n, m, rate);

  /* 2. memory with N idle SSE subscribers */
  pub_open();
  usleep(100000);
  const long rss0 = rss_kb();
  open_all("GET /sub HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n", 1, 0);
  pump_for(0.3);
  const long rss1 = rss_kb();
  printf("sse_bytes_per_subscriber=%.0f\n", (double)(rss1 - rss0) * 1024.0 / (double)n);
  say("%ld SSE subscribers open", n);

  /* 3. latency at RATE, CPU per delivered event */
  recording = 1;
  double c0 = cpu_s();
  const uint64_t d0 = delivered;
  double next_at = now();
  for (long j = 0; j < m; ++j) {
    while (now() < next_at || pub_busy) {
      if (now() > deadline) die(1, "timeout publishing");
      double wait = next_at - now();
      pump(wait > 0 ? (int)(wait * 1000) + 1 : 1);
    }
    publish();
    next_at += 1.0 / rate;
  }
  {
    const double limit = now() + 60;
    while (complete < published || pub_busy) {
      if (now() > limit || failed) die(1, "%llu of %llu deliveries (%u failed)", (unsigned long long)(delivered - d0),
                                       (unsigned long long)(n * m), failed);
      pump(20);
    }
  }
  double c1 = cpu_s();
  recording = 0;
  printf("cpu_us_per_event=%.3f\n", (c1 - c0) * 1e6 / (double)(delivered - d0));
  qsort(lat_ms, lat_n, sizeof *lat_ms, cmp_double);
  printf("latency_p50_ms=%.2f\nlatency_p99_ms=%.2f\n", pct(lat_ms, lat_n, 0.5), pct(lat_ms, lat_n, 0.99));
  {
    double reach[4096];
    size_t r = 0;
    for (uint64_t s = published - (uint64_t)m; s < published && r < 4096; ++s) reach[r++] = reached_all_ms[s];
    qsort(reach, r, sizeof *reach, cmp_double);
    printf("last_reached_p50_ms=%.2f\nlast_reached_max_ms=%.2f\n", pct(reach, r, 0.5), pct(reach, r, 1.0));
  }

  /* 4. CPU-bound: at most K messages on their way */
  pump_for(0.2);
  c0 = cpu_s();
  const uint64_t d1 = delivered, p1 = published;
  const double t0 = now();
  while (now() - t0 < burst) {
    if (!pub_busy && published - complete < (uint64_t)k) publish();
    pump(1);
    if (failed) die(1, "%u subscribers failed", failed);
  }
  {
    const double limit = now() + 60;
    while (complete < published || pub_busy) {
      if (now() > limit || failed) die(1, "burst: %llu of %llu complete", (unsigned long long)complete, (unsigned long long)published);
      pump(20);
    }
  }
  const double t1 = now();
  c1 = cpu_s();
  printf("burst_messages=%llu\nburst_events=%llu\nburst_cpu_s=%.2f\nburst_wall_s=%.2f\n", (unsigned long long)(published - p1),
         (unsigned long long)(delivered - d1), c1 - c0, t1 - t0);
  printf("events_per_cpu_s=%.0f\nevents_per_wall_s=%.0f\n", (double)(delivered - d1) / (c1 - c0),
         (double)(delivered - d1) / (t1 - t0));
  printf("publishes_refused=%llu\npublisher_reconnects=%llu\n", (unsigned long long)pub_refused,
         (unsigned long long)pub_reconnects);

  /* 5. SSE hang-ups, at a quiet point */
  pump_for(0.2);
  const long fds_sse = fds();
  double h0 = cpu_s();
  const double sse_ms = close_all(1, fds_sse - n);
  double h1 = cpu_s();
  usleep(200000);
  printf("sse_release_ms=%.1f\nsse_fds_left=%ld\nsse_close_wait=%ld\n", sse_ms, fds() - (fds_sse - n), close_wait());
  printf("sse_release_cpu_us=%.2f\n", (h1 - h0) * 1e6 / (double)n);

  /* 6. long-poll: held, then hung up */
  if (*lp_path) {
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", lp_path);
    const long fds_base = fds(), rss_base = rss_kb();
    memset(conns, 0, n_conns * sizeof *conns);
    for (uint32_t i = 0; i < n_conns; ++i) conns[i].fd = -1;
    lp_mode = 1;
    open_all(req, 0, fds_base + n);
    pump_for(0.3);
    for (uint32_t i = 0; i < n_conns; ++i)
      if (conns[i].state != S_OPEN || conns[i].got) ++answered_early;
    const long rss_lp = rss_kb();
    printf("lp_bytes_per_request=%.0f\nlp_answered_early=%u\n", (double)(rss_lp - rss_base) * 1024.0 / (double)n,
           answered_early);
    h0 = cpu_s();
    const double lp_ms = close_all(0, fds_base);
    h1 = cpu_s();
    usleep(200000);
    printf("lp_release_ms=%.1f\nlp_fds_left=%ld\nlp_close_wait=%ld\n", lp_ms, fds() - fds_base, close_wait());
    printf("lp_release_cpu_us=%.2f\n", (h1 - h0) * 1e6 / (double)n);
  }
  close(pub_fd);
  return 0;
}
