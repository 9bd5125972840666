#!/usr/bin/env bash
# Load on /metrics: wrk with 64 connections against the release agent, over
# plain HTTP and over TLS (web config with a test certificate). Each endpoint
# gets two runs back to back: RSS before, after the first (the working set
# of 64 connections) and after the second (growth would show here).
#
#   scripts/bench-load.sh [seconds]     (default 60)
#
# Every request on a new connection (`Connection: close`), as scrapers
# arrive: one connection's requests are paced (2 back to back, then 1 a
# second) so that a pipelining client cannot monopolise the agent.
# Needs wrk, openssl, python3, curl.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
DURATION=${1:-60}
cargo build --release --locked -p hybrid-node-agent >&2
AGENT=$PWD/target/release/hybrid-node-agent
WORK=$(mktemp -d)
APID=""
trap '[ -n "$APID" ] && kill $APID 2>/dev/null; rm -rf "$WORK"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/server.key" -out "$WORK/server.crt" 2>/dev/null
printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\n' "$WORK/server.crt" "$WORK/server.key" > "$WORK/web.yml"

run() { # name scheme web-config
  local port; port=$(free_port)
  printf '[web]\nconfig_file = "%s"\n' "$3" > "$WORK/agent.toml"
  "$AGENT" --config "$WORK/agent.toml" run --listen "127.0.0.1:$port" 2>/dev/null & APID=$!
  for _ in $(seq 100); do curl -ksf -o /dev/null "$2://127.0.0.1:$port/healthz" && break; sleep 0.05; done
  sleep 1
  local before; before=$(rss_kib $APID)
  wrk -t2 -c64 -d"${DURATION}s" --latency -H "Connection: close" "$2://127.0.0.1:$port/metrics" > /dev/null
  local first; first=$(rss_kib $APID)
  wrk -t2 -c64 -d"${DURATION}s" --latency -H "Connection: close" "$2://127.0.0.1:$port/metrics" > "$WORK/wrk.txt"
  local after; after=$(rss_kib $APID)
  awk -v name="$1" -v b="$before" -v f="$first" -v a="$after" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    $1=="50%" {p50=ms($2)} $1=="99%" {p99=ms($2)} /^Requests\/sec:/ {rps=$2}
    /Non-2xx|Socket errors/ {err=err $0 " "}
    END {printf "| %s | %.0f req/s | %.3f ms | %.3f ms | %.1f / %.1f / %.1f MiB | %s |\n", name, rps, p50, p99, b/1024, f/1024, a/1024, (err=="" ? "none" : err)}' "$WORK/wrk.txt"
  kill $APID; wait $APID 2>/dev/null || true; APID=""
}
printf '\n## /metrics under load (wrk -t2 -c64 -d%ss, twice per endpoint, %s cores)\n\n' "$DURATION" "$(nproc)"
printf '| endpoint | throughput (2nd run) | p50 | p99 | RSS idle / after run 1 / after run 2 | errors |\n|---|---|---|---|---|---|\n'
: > "$WORK/empty.yml"
run plain http "$WORK/empty.yml"
run TLS https "$WORK/web.yml"
