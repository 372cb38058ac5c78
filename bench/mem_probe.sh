#!/bin/sh
# Instructions per request of a C evhttp "hello" server, per memory policy, under callgrind.
#
# Usage: bench/mem_probe.sh MEM_PROBE [POLICY...]      (default policies: system pooled)
#   MEM_PROBE  the built bench/mem_probe program (e.g. build-gcc/bench/mem_probe)
#   N          requests per measured run (environment; default 2000)
#
# For each policy: the server runs under callgrind twice, once with a client that connects
# and sends nothing (N=0) and once with N sequential keep-alive requests; it is stopped
# with SIGTERM and exits cleanly, so both runs include the same start-up and teardown.
# Prints (Ir(N) - Ir(0)) / N, and each policy's ratio to the first one.
set -eu
probe=$1
client=$(dirname "$probe")/bench_client   # bench/client.c, built next to mem_probe
shift
[ $# -gt 0 ] || set -- system pooled
n=${N:-2000}
command -v valgrind >/dev/null || { echo "mem_probe.sh: valgrind not found" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

collected() {  # collected POLICY REQUESTS -> prints callgrind's "Collected" total
  : >"$work/port"
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" --log-file="$work/cg.log" \
    "$probe" serve "$1" >"$work/port" &
  server=$!
  tries=0
  until grep -q '^port ' "$work/port"; do
    tries=$((tries + 1))
    if [ $tries -gt 600 ]; then
      kill -TERM $server
      echo "mem_probe.sh: the server did not start" >&2
      exit 1
    fi
    sleep 0.1
  done
  port=$(awk '/^port /{print $2}' "$work/port")
  "$client" hello "$port" "$2"
  kill -TERM $server
  wait $server
  awk '/Collected/{print $NF}' "$work/cg.log"
}

base=""
printf '%-10s %14s %14s %10s %8s\n' policy "Ir N=0" "Ir N=$n" "Ir/req" ratio
for policy in "$@"; do
  ir0=$(collected "$policy" 0)
  irn=$(collected "$policy" "$n")
  per=$(awk -v a="$ir0" -v b="$irn" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
  [ -n "$base" ] || base=$per
  ratio=$(awk -v p="$per" -v b="$base" 'BEGIN { printf "%.3f", p / b }')
  printf '%-10s %14s %14s %10s %8s\n' "$policy" "$ir0" "$irn" "$per" "$ratio"
done
