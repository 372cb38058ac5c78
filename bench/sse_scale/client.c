/* bench/sse_scale/client.c - drives one SSE scale server (c_sse or tether_sse) and checks it.
 *
 *  1. raises RLIMIT_NOFILE to its hard limit (fails clearly if that is too low);
 *  2. opens N concurrent SSE streams to 127.0.0.1:PORT (epoll, at most 64 handshakes in
 *     flight), M of them from a child process, and reads and counts their events until
 *     every stream got at least K events;
 *  3. with -p PID, measures the server: memory (VmRSS, RssAnon from /proc/PID/status, right
 *     after the server's malloc_trim(0) (GET /stats?trim), and the server's own malloc count)
 *     before the streams and with them, peak RSS (VmHWM), and its CPU time
 *     (utime+stime, and schedstat's nanoseconds) over a window of W seconds against the
 *     events it delivered in that window;
 *  4. makes half of the streams vanish abruptly: N/4 reset (SO_LINGER {1, 0}, close),
 *     N/4 - M closed (FIN), M killed with their process (SIGKILL of the child);
 *  5. checks, within a bounded time, that the server noticed exactly those hang-ups (close
 *     callbacks == vanished, all of them FIN or RST, no duplicate), that the survivors
 *     still get events, that no socket of the server's port is left in CLOSE_WAIT
 *     (/proc/net/tcp, tcp6) and, with -p, that the server's descriptors went down by
 *     exactly the vanished count.
 *
 * Prints key=value lines on stdout (the run script reads them); progress on stderr.
 * Exit status: 0 all checks passed, 1 a check failed, 2 setup error (usage, limits, server
 * unreachable). Every loop is bounded in time (-t, default 120 s + N/100 s).
 *
 * Usage: client PORT [-n N] [-k K] [-w W] [-x M] [-p PID] [-t SECONDS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

enum { INFLIGHT = 64, HDR_MAX = 2048 };

enum state { S_IDLE, S_CONNECTING, S_HEADERS, S_STREAMING, S_GONE, S_FAILED };

struct conn {
  int fd;
  uint8_t state;
  uint8_t last_nl;   /* the previous body byte was '\n' */
  uint8_t hdr_match; /* bytes of "\r\n\r\n" matched so far */
  uint8_t status_ok; /* the status line said 200 */
  uint16_t hdr_len;
  uint32_t events;
};

struct pool {
  int epfd;
  struct conn* c;
  uint32_t n;         /* streams in this pool */
  uint32_t next;      /* next stream to connect */
  uint32_t inflight;  /* connecting or waiting for headers */
  uint32_t streaming; /* headers received */
  uint32_t failed;
  uint64_t events; /* total events received */
  uint32_t at_k;   /* streams with >= k events */
  uint32_t k;
};

static uint16_t port;
static double deadline; /* absolute, monotonic seconds */
static int quiet;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say(const char* fmt, ...) {
  if (quiet) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("client: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void die(int code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("client: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}

static struct sockaddr_in server_addr(void) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

/* ----- the streams --------------------------------------------------------------- */

static const char request[] = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";

static void pool_init(struct pool* p, uint32_t n, uint32_t k) {
  memset(p, 0, sizeof *p);
  p->n = n;
  p->k = k;
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  p->c = calloc(n ? n : 1, sizeof *p->c);
  if (p->epfd < 0 || !p->c) die(2, "out of memory or epoll: %s", strerror(errno));
  for (uint32_t i = 0; i < n; ++i) p->c[i].fd = -1;
}

static void conn_fail(struct pool* p, uint32_t i, const char* why) {
  struct conn* c = &p->c[i];
  if (c->state == S_CONNECTING || c->state == S_HEADERS) --p->inflight;
  if (c->state == S_STREAMING) --p->streaming;
  if (p->failed < 5) fprintf(stderr, "client: stream %u failed: %s\n", i, why);
  c->state = S_FAILED;
  ++p->failed;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

static void conn_start(struct pool* p, uint32_t i) {
  struct conn* c = &p->c[i];
  struct sockaddr_in sa = server_addr();
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die(2, "socket: %s", strerror(errno));
  c->state = S_CONNECTING;
  ++p->inflight;
  if (connect(c->fd, (struct sockaddr*)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
    conn_fail(p, i, strerror(errno));
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = i};
  if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) die(2, "epoll_ctl: %s", strerror(errno));
}

static void conn_writable(struct pool* p, uint32_t i) {
  struct conn* c = &p->c[i];
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    conn_fail(p, i, err ? strerror(err) : "connect failed");
    return;
  }
  if (send(c->fd, request, sizeof request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof request - 1)) {
    conn_fail(p, i, "short send");
    return;
  }
  c->state = S_HEADERS;
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
  epoll_ctl(p->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_readable(struct pool* p, uint32_t i) {
  struct conn* c = &p->c[i];
  char buf[8192];
  for (int rounds = 0; rounds < 4; ++rounds) {
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
      conn_fail(p, i, "the server closed the stream");
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      conn_fail(p, i, strerror(errno));
      return;
    }
    ssize_t at = 0;
    if (c->state == S_HEADERS) {
      for (; at < n && c->hdr_match < 4; ++at) {
        if (c->hdr_len == 9) c->status_ok = buf[at] == '2';
        if (c->hdr_len == 10) c->status_ok = c->status_ok && buf[at] == '0';
        if (c->hdr_len == 11) c->status_ok = c->status_ok && buf[at] == '0';
        ++c->hdr_len;
        const char want = "\r\n\r\n"[c->hdr_match];
        c->hdr_match = buf[at] == want ? c->hdr_match + 1 : (buf[at] == '\r' ? 1 : 0);
      }
      if (c->hdr_match < 4) {
        if (c->hdr_len > HDR_MAX) conn_fail(p, i, "headers too long");
        continue;
      }
      if (!c->status_ok) {
        conn_fail(p, i, "status is not 200");
        return;
      }
      c->state = S_STREAMING;
      --p->inflight;
      ++p->streaming;
    }
    for (; at < n; ++at) {
      const int nl = buf[at] == '\n';
      if (nl && c->last_nl) {
        if (++c->events == p->k) ++p->at_k;
        ++p->events;
        c->last_nl = 0;
      } else {
        c->last_nl = (uint8_t)nl;
      }
    }
    if (n < (ssize_t)sizeof buf) return;
  }
}

/* One round of I/O: starts connections up to INFLIGHT, waits at most `ms`. */
static void pump(struct pool* p, int ms) {
  while (p->next < p->n && p->inflight < INFLIGHT) conn_start(p, p->next++);
  struct epoll_event evs[256];
  int n = epoll_wait(p->epfd, evs, 256, ms);
  for (int j = 0; j < n; ++j) {
    uint32_t i = evs[j].data.u32;
    struct conn* c = &p->c[i];
    if (c->state == S_CONNECTING) conn_writable(p, i);
    else if (c->state == S_HEADERS || c->state == S_STREAMING) conn_readable(p, i);
  }
}

/* Pumps for `seconds`. */
static void pump_for(struct pool* p, double seconds) {
  const double until = now() + seconds;
  for (double t; (t = now()) < until;) pump(p, (int)((until - t) * 1000) + 1);
}

/* Pumps until every stream got `k` events; false on failure or at the deadline. */
static int pool_ready(struct pool* p) {
  while (p->at_k < p->n) {
    if (p->failed) return 0;
    if (now() > deadline) return 0;
    pump(p, 50);
  }
  return 1;
}

/* Pumps until `total` events were received since `from` (one tick reached everyone). */
static int pump_until_events(struct pool* p, uint64_t from, uint64_t total, double limit) {
  const double until = now() + limit;
  while (p->events - from < total) {
    if (now() > until || now() > deadline) return 0;
    pump(p, 20);
  }
  return 1;
}

/* ----- the child that is killed ---------------------------------------------------- */

static pid_t start_child(uint32_t m, uint32_t k, int* ready_fd) {
  int fds[2];
  if (pipe(fds) != 0) die(2, "pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die(2, "fork: %s", strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    struct pool p;
    pool_init(&p, m, k);
    char r = pool_ready(&p) ? 'R' : 'F';
    if (write(fds[1], &r, 1) != 1) _exit(3);
    /* Keep reading until killed (bounded: the parent's deadline). */
    while (now() < deadline) pump(&p, 100);
    _exit(0);
  }
  close(fds[1]);
  *ready_fd = fds[0];
  return pid;
}

/* ----- what the server says and what /proc says ------------------------------------ */

struct stats {
  unsigned long open, started, closes, dup, peer_closed, peer_reset, other, published, delivered;
  long rss_kb, anon_kb;
  unsigned long long heap_b;
};

static unsigned long long field(const char* line, const char* key) {
  char pat[32];
  snprintf(pat, sizeof pat, " %s=", key);
  const char* at = strstr(line, pat);
  return at ? strtoull(at + strlen(pat), NULL, 10) : 0;
}

/* GET /stats (with `trim`: /stats?trim, the server calls malloc_trim first) on a connection
 * of its own (blocking, 30 s timeouts: on a loaded machine a server with 10,000 streams
 * can take seconds to get to it). */
static int get_stats_ex(struct stats* s, int trim) {
  struct sockaddr_in sa = server_addr();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct timeval tv = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const char* req = trim ? "GET /stats?trim HTTP/1.0\r\n\r\n" : "GET /stats HTTP/1.0\r\n\r\n";
  const ssize_t req_len = (ssize_t)strlen(req);
  char buf[4096];
  size_t len = 0;
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0 || send(fd, req, (size_t)req_len, MSG_NOSIGNAL) != req_len) {
    close(fd);
    return 0;
  }
  for (ssize_t n; len < sizeof buf - 1 && (n = recv(fd, buf + len, sizeof buf - 1 - len, 0)) > 0;) len += (size_t)n;
  close(fd);
  buf[len] = '\0';
  char* line = strstr(buf, "\nstats ");
  if (!line) return 0;
  line += 6; /* at the space before the first key */
  s->open = field(line, "open");
  s->started = field(line, "started");
  s->closes = field(line, "closes");
  s->dup = field(line, "dup");
  s->peer_closed = field(line, "peer_closed");
  s->peer_reset = field(line, "peer_reset");
  s->other = field(line, "other");
  s->published = field(line, "published");
  s->delivered = field(line, "delivered");
  s->rss_kb = (long)field(line, "rss_kb");
  s->anon_kb = (long)field(line, "anon_kb");
  s->heap_b = field(line, "heap_b");
  return 1;
}

static int get_stats(struct stats* s) { return get_stats_ex(s, 0); }

static void must_stats(struct stats* s) {
  if (!get_stats(s)) die(2, "cannot read /stats from 127.0.0.1:%u", (unsigned)port);
}
static void must_stats_trimmed(struct stats* s) {
  if (!get_stats_ex(s, 1)) die(2, "cannot read /stats?trim from 127.0.0.1:%u", (unsigned)port);
}

struct proc {
  long rss_kb, anon_kb, hwm_kb;
  double cpu_s;          /* utime + stime */
  double user_s, sys_s;   /* utime, stime */
  unsigned long long ns; /* schedstat: time on a CPU */
  long fds;
};

static void read_proc(pid_t pid, struct proc* p) {
  char path[64], buf[1024];
  memset(p, 0, sizeof *p);
  p->rss_kb = p->anon_kb = p->hwm_kb = p->fds = -1;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE* f = fopen(path, "r");
  if (f) {
    while (fgets(buf, sizeof buf, f)) {
      if (strncmp(buf, "VmRSS:", 6) == 0) sscanf(buf + 6, "%ld", &p->rss_kb);
      else if (strncmp(buf, "RssAnon:", 8) == 0) sscanf(buf + 8, "%ld", &p->anon_kb);
      else if (strncmp(buf, "VmHWM:", 6) == 0) sscanf(buf + 6, "%ld", &p->hwm_kb);
    }
    fclose(f);
  }
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  f = fopen(path, "r");
  if (f) {
    if (fgets(buf, sizeof buf, f)) {
      const char* after = strrchr(buf, ')');
      unsigned long utime = 0, stime = 0;
      /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
      if (after && sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) == 2) {
        const double hz = (double)sysconf(_SC_CLK_TCK);
        p->cpu_s = (double)(utime + stime) / hz;
        p->user_s = (double)utime / hz;
        p->sys_s = (double)stime / hz;
      }
    }
    fclose(f);
  }
  snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
  f = fopen(path, "r");
  if (f) {
    if (fscanf(f, "%llu", &p->ns) != 1) p->ns = 0;
    fclose(f);
  }
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR* d = opendir(path);
  if (d) {
    p->fds = 0;
    for (struct dirent* e; (e = readdir(d));)
      if (e->d_name[0] != '.') ++p->fds;
    closedir(d);
  }
}

/* Sockets of `port` (local side) in CLOSE_WAIT, from /proc/net/tcp and tcp6. */
static long close_wait_count(void) {
  static const char* files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
  long count = 0;
  char line[512];
  for (int i = 0; i < 2; ++i) {
    FILE* f = fopen(files[i], "r");
    if (!f) continue;
    while (fgets(line, sizeof line, f)) {
      /* "  sl  local_address rem_address   st ...": local is HEXADDR:HEXPORT */
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

/* ----- main -------------------------------------------------------------------------- */

static void usage(void) {
  die(2, "usage: client PORT [-n N] [-k K] [-w W] [-x M] [-p PID] [-t SECONDS] [-q]");
}

static int failures;
static void check(int ok, const char* what) {
  printf("check_%s=%s\n", what, ok ? "ok" : "FAILED");
  if (!ok) {
    ++failures;
    fprintf(stderr, "client: check failed: %s\n", what);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) usage();
  long p = strtol(argv[1], NULL, 10);
  if (p <= 0 || p > 65535) usage();
  port = (uint16_t)p;
  long n = 10000, k = 2, w = 0, m = -1, limit = -1;
  pid_t pid = 0;
  for (int i = 2; i < argc; ++i) {
    if (strcmp(argv[i], "-q") == 0) {
      quiet = 1;
      continue;
    }
    if (i + 1 >= argc) usage();
    long v = strtol(argv[i + 1], NULL, 10);
    if (strcmp(argv[i], "-n") == 0) n = v;
    else if (strcmp(argv[i], "-k") == 0) k = v;
    else if (strcmp(argv[i], "-w") == 0) w = v;
    else if (strcmp(argv[i], "-x") == 0) m = v;
    else if (strcmp(argv[i], "-p") == 0) pid = (pid_t)v;
    else if (strcmp(argv[i], "-t") == 0) limit = v;
    else usage();
    ++i;
  }
  if (n < 4 || n > 1000000 || k < 1 || w < 0) usage();
  if (m < 0) m = n / 100;
  if (m > n / 4) m = n / 4;
  if (limit < 0) limit = 120 + n / 100;
  deadline = now() + (double)limit;

  /* Descriptors: this process holds n - m streams plus a few. */
  struct rlimit rl;
  const rlim_t need = (rlim_t)(n - m) + 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die(2, "getrlimit: %s", strerror(errno));
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
    die(2, "%ld streams need %lu descriptors but the hard limit (ulimit -Hn) is %lu: raise it or lower -n",
        n, (unsigned long)need, (unsigned long)rl.rlim_max);
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die(2, "setrlimit: %s", strerror(errno));
  if (pid > 0) {
    /* The server needs one per stream too: say so now rather than see it refuse. */
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    FILE* f = fopen(path, "r");
    unsigned long soft = 0;
    while (f && fgets(buf, sizeof buf, f))
      if (strncmp(buf, "Max open files", 14) == 0) sscanf(buf + 14, "%lu", &soft);
    if (f) fclose(f);
    if (soft && soft < (unsigned long)n + 16)
      die(2, "the server (pid %d) may open %lu descriptors, fewer than %ld streams need: raise its ulimit -n",
          (int)pid, soft, n);
  }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("streams=%ld\nk=%ld\nwindow_s=%ld\nkilled_streams=%ld\n", n, k, w, m);

  struct stats s0, s1, s2, sa, sb;
  struct proc p0, p1, pa, pb, pv, pe;
  memset(&p0, 0, sizeof p0);
  p1 = pa = pb = pv = pe = p0;
  must_stats_trimmed(&s0);
  if (pid > 0) read_proc(pid, &p0);

  /* 2. the streams: the child's first (it must not inherit ours) */
  int ready_fd = -1;
  pid_t child = m > 0 ? start_child((uint32_t)m, (uint32_t)k, &ready_fd) : 0;
  struct pool pool;
  pool_init(&pool, (uint32_t)(n - m), (uint32_t)k);
  const double t_connect = now();
  say("opening %ld streams (%ld in a child), waiting for %ld events on each", n, m, k);
  if (!pool_ready(&pool)) {
    if (child > 0) kill(child, SIGKILL);
    die(1, "only %u of %u streams got %ld events (%u streaming, %u failed) before the deadline", pool.at_k, pool.n, k,
        pool.streaming, pool.failed);
  }
  if (child > 0) {
    char r = 0;
    for (;;) { /* pump ours while the child gets ready */
      struct timeval tv = {0, 0};
      fd_set set;
      FD_ZERO(&set);
      FD_SET(ready_fd, &set);
      if (select(ready_fd + 1, &set, NULL, NULL, &tv) > 0) {
        if (read(ready_fd, &r, 1) != 1) r = 0;
        break;
      }
      if (now() > deadline) break;
      pump(&pool, 20);
    }
    if (r != 'R') {
      kill(child, SIGKILL);
      die(1, "the child's %ld streams did not all get %ld events", m, k);
    }
  }
  printf("connect_s=%.2f\n", now() - t_connect);
  say("all %ld streams got %ld events", n, k);

  /* 3. a quiet point: one more tick reached everyone, then 300 ms */
  if (!pump_until_events(&pool, pool.events, pool.n, 3.0)) die(1, "no tick reached every stream within 3 s");
  pump_for(&pool, 0.3);
  must_stats_trimmed(&s1);
  if (pid > 0) read_proc(pid, &p1);
  pa = p1;
  sa = s1;
  const uint64_t ev_a = pool.events;
  printf("open_before=%lu\nopen_with=%lu\n", s0.open, s1.open);
  check(s1.open == (unsigned long)n, "all_streams_open");
  if (pid > 0) {
    printf("rss_before_kb=%ld\nrss_with_kb=%ld\nanon_before_kb=%ld\nanon_with_kb=%ld\n", p0.rss_kb, p1.rss_kb, p0.anon_kb,
           p1.anon_kb);
    printf("rss_per_stream_b=%.0f\nanon_per_stream_b=%.0f\n", (double)(p1.rss_kb - p0.rss_kb) * 1024.0 / (double)n,
           (double)(p1.anon_kb - p0.anon_kb) * 1024.0 / (double)n);
    /* Peak RSS so far: the streams plus what every tick allocates for a moment. */
    printf("hwm_with_kb=%ld\npeak_per_stream_b=%.0f\n", p1.hwm_kb, (double)(p1.hwm_kb - p0.rss_kb) * 1024.0 / (double)n);
  }
  printf("heap_before_b=%llu\nheap_with_b=%llu\nheap_per_stream_b=%.0f\n", s0.heap_b, s1.heap_b,
         ((double)s1.heap_b - (double)s0.heap_b) / (double)n);

  /* CPU over W seconds, from one quiet point to another (W whole ticks) */
  if (w > 0) {
    say("measuring the server's CPU for %ld s", w);
    pump_for(&pool, (double)w);
    must_stats(&sb);
    if (pid > 0) read_proc(pid, &pb);
    const unsigned long delivered = sb.delivered - sa.delivered;
    printf("window_published=%lu\nwindow_delivered=%lu\nwindow_received=%llu\n", sb.published - sa.published, delivered,
           (unsigned long long)(pool.events - ev_a));
    if (pid > 0 && delivered > 0) {
      printf("cpu_window_s=%.2f\ncpu_us_per_event=%.3f\nsched_us_per_event=%.3f\n", pb.cpu_s - pa.cpu_s,
             (pb.cpu_s - pa.cpu_s) * 1e6 / (double)delivered, (double)(pb.ns - pa.ns) / 1e3 / (double)delivered);
      printf("user_us_per_event=%.3f\nsys_us_per_event=%.3f\n", (pb.user_s - pa.user_s) * 1e6 / (double)delivered,
             (pb.sys_s - pa.sys_s) * 1e6 / (double)delivered);
    }
  }

  /* 4. vanish: at a quiet point, so that a FIN close finds nothing unread (which would
   * make the kernel send a RST instead) */
  {
    const uint64_t from = pool.events;
    if (!pump_until_events(&pool, from, pool.n, 3.0)) die(1, "no tick reached every stream within 3 s");
    pump_for(&pool, 0.1);
  }
  const long rst = n / 4, fin = n / 4 - m, vanished = rst + fin + m;
  if (pid > 0) read_proc(pid, &pv);
  const double t_vanish = now();
  for (long i = 0; i < rst + fin; ++i) {
    struct conn* c = &pool.c[i];
    epoll_ctl(pool.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (i < rst) {
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
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  printf("vanished=%ld\nvanished_rst=%ld\nvanished_fin=%ld\nvanished_killed=%ld\n", vanished, rst, fin, m);
  say("%ld streams vanished (%ld RST, %ld FIN, %ld killed); waiting for the server to notice", vanished, rst, fin, m);

  /* 5. the server must notice exactly those, promptly (bounded: 10 s) */
  double noticed_at = -1;
  for (;;) {
    must_stats(&s2);
    if (s2.closes - s1.closes >= (unsigned long)vanished) {
      noticed_at = now();
      break;
    }
    if (now() - t_vanish > 10.0 || now() > deadline) break;
    pump(&pool, 10);
  }
  if (noticed_at > 0) printf("notice_all_ms=%.0f\n", (noticed_at - t_vanish) * 1000.0);
  pump_for(&pool, 0.5); /* anything more would be a duplicate or a wrong close */
  must_stats(&s2);
  /* The descriptors after the stats connection's own is surely closed (the server may
   * send its EOF a moment before it closes the descriptor). */
  pump_for(&pool, 0.2);
  if (pid > 0) read_proc(pid, &pe);
  const unsigned long closes = s2.closes - s1.closes;
  const unsigned long hangups = (s2.peer_closed - s1.peer_closed) + (s2.peer_reset - s1.peer_reset);
  printf("closes=%lu\nduplicates=%lu\npeer_closed=%lu\npeer_reset=%lu\nother=%lu\nopen_after=%lu\n", closes,
         s2.dup, s2.peer_closed - s1.peer_closed, s2.peer_reset - s1.peer_reset, s2.other - s1.other, s2.open);
  printf("noticed_pct=%.2f\n", 100.0 * (double)hangups / (double)vanished);
  check(closes == (unsigned long)vanished, "closes_equal_vanished");
  check(s2.dup == 0, "no_duplicate_closes");
  check(hangups == (unsigned long)vanished, "all_closes_are_hang_ups");
  check(s2.open == (unsigned long)(n - vanished), "survivors_open");
  /* Informative: FIN and RST as sent (a killed process may send either). */
  printf("split_as_sent=%s\n",
         (s2.peer_reset - s1.peer_reset >= (unsigned long)rst && s2.peer_closed - s1.peer_closed >= (unsigned long)fin)
             ? "yes"
             : "no");

  /* survivors still get events */
  {
    const uint64_t from = pool.events;
    const int ok = pump_until_events(&pool, from, pool.n - (uint32_t)(rst + fin), 3.0) && pool.failed == 0;
    check(ok, "survivors_get_events");
  }
  const long cw = close_wait_count();
  printf("close_wait=%ld\n", cw);
  check(cw == 0, "no_close_wait");
  if (pid > 0) {
    printf("server_fds_before_vanish=%ld\nserver_fds_after=%ld\nserver_fds_released=%ld\n", pv.fds, pe.fds,
           pv.fds - pe.fds);
    check(pv.fds - pe.fds == vanished, "server_fds_released");
  }
  printf("failures=%d\n", failures);
  return failures ? 1 : 0;
}
