/* bench/sse_scale/proc_self.h - what both SSE scale servers report about themselves.
 *
 * Shared by c_sse.c and tether_sse.cpp (plain C, valid C++) so that the two servers print
 * byte-for-byte the same stats format:
 *
 *   stats open=9990 started=10000 closes=10 dup=0 peer_closed=5 peer_reset=5 other=0
 *         published=12 delivered=119950 rss_kb=31604 anon_kb=27980 hwm_kb=52000
 *         heap_b=25321000
 *
 * (one line): streams open now and ever started; close callbacks of stream connections,
 * duplicates among them (a second callback for one connection: must stay 0) and their
 * reasons; events published (timer ticks) and chunks queued to streams; VmRSS, RssAnon
 * and VmHWM (peak RSS) in KiB; bytes in use in malloc's heap (mallinfo2: uordblks +
 * hblkhd).
 *
 * GET /stats?trim first calls malloc_trim(0), so that the RSS figures count the pages the
 * server uses rather than free pages malloc has kept (see the run script).
 */
#ifndef SSE_SCALE_PROC_SELF_H
#define SSE_SCALE_PROC_SELF_H

#include <malloc.h>
#include <stdio.h>
#include <string.h>

/* The server-side counters, kept by each server in its own way. */
struct sse_counters {
  unsigned long open;        /* streams subscribed now */
  unsigned long started;     /* streams ever started */
  unsigned long closes;      /* close callbacks of stream connections */
  unsigned long dup;         /* close callbacks for a connection already closed (must be 0) */
  unsigned long peer_closed; /* ... of which the client sent a FIN */
  unsigned long peer_reset;  /* ... of which the client sent a RST */
  unsigned long other;       /* ... of which anything else */
  unsigned long published;   /* events published (timer ticks) */
  unsigned long delivered;   /* chunks queued to streams */
};

/* VmRSS, RssAnon and VmHWM of this process in KiB (-1 when unknown). */
static inline void proc_self_rss(long* rss_kb, long* anon_kb, long* hwm_kb) {
  char line[256];
  FILE* f = fopen("/proc/self/status", "r");
  *rss_kb = -1;
  *anon_kb = -1;
  *hwm_kb = -1;
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) sscanf(line + 6, "%ld", rss_kb);
    else if (strncmp(line, "RssAnon:", 8) == 0) sscanf(line + 8, "%ld", anon_kb);
    else if (strncmp(line, "VmHWM:", 6) == 0) sscanf(line + 6, "%ld", hwm_kb);
  }
  fclose(f);
}

/* For GET /stats?trim: gives malloc's free pages back before measuring. */
static inline void sse_maybe_trim(const char* uri) {
  if (uri && strstr(uri, "?trim")) malloc_trim(0);
}

/* Formats the stats line (with a trailing newline) into `out`; returns its length. */
static inline int sse_format_stats(char* out, size_t size, const struct sse_counters* c) {
  long rss_kb = 0;
  long anon_kb = 0;
  long hwm_kb = 0;
  struct mallinfo2 mi = mallinfo2();
  proc_self_rss(&rss_kb, &anon_kb, &hwm_kb);
  return snprintf(out, size,
                  "stats open=%lu started=%lu closes=%lu dup=%lu peer_closed=%lu peer_reset=%lu other=%lu "
                  "published=%lu delivered=%lu rss_kb=%ld anon_kb=%ld hwm_kb=%ld heap_b=%zu\n",
                  c->open, c->started, c->closes, c->dup, c->peer_closed, c->peer_reset, c->other, c->published,
                  c->delivered, rss_kb, anon_kb, hwm_kb, mi.uordblks + mi.hblkhd);
}

#endif
