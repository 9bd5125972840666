#!/usr/bin/env bash
# Foundation benchmark: the release agent beside prometheus-node-exporter on
# loopback, measured in the same run.
#
#   scripts/bench.sh [wrk-seconds]
#
# Prints idle RSS, scrape latency p50/p99 and throughput (wrk, 4 connections)
# of each, and the agent's time from exec to READY=1 (median and max of 20
# starts). Needs: wrk, prometheus-node-exporter, python3, curl.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
DURATION=${1:-10}

for tool in wrk prometheus-node-exporter python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

cargo build --release --locked -p hybrid-node-agent >&2
AGENT=$PWD/target/release/hybrid-node-agent
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

wait_http() { for _ in $(seq 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done; echo "bench: $1 not up" >&2; exit 1; }

AP=$(free_port); NP=$(free_port)
# The agent inspects this host as it is (root /), with no config file.
"$AGENT" --config /dev/null run --listen "127.0.0.1:$AP" 2>"$WORK/agent.log" & PIDS+=($!); APID=$!
prometheus-node-exporter --web.listen-address="127.0.0.1:$NP" >"$WORK/ne.log" 2>&1 & PIDS+=($!); NPID=$!
wait_http "http://127.0.0.1:$AP/metrics"; wait_http "http://127.0.0.1:$NP/metrics"
sleep 2
A_RSS=$(rss_kib "$APID"); N_RSS=$(rss_kib "$NPID")

# wrk --latency: "50%  123.45us" → milliseconds.
run_wrk() {
  wrk -t2 -c4 -d"${DURATION}s" --latency "$1" > "$WORK/wrk.txt"
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    $1=="50%" {p50=ms($2)} $1=="99%" {p99=ms($2)} /^Requests\/sec:/ {rps=$2}
    /Non-2xx|Socket errors/ {err=err $0 " "}
    END {printf "%.3f %.3f %.0f %s\n", p50, p99, rps, (err=="" ? "-" : err)}' "$WORK/wrk.txt"
}
read -r A_P50 A_P99 A_RPS A_ERR < <(run_wrk "http://127.0.0.1:$AP/metrics")
read -r N_P50 N_P99 N_RPS N_ERR < <(run_wrk "http://127.0.0.1:$NP/metrics")
A_RSS_AFTER=$(rss_kib "$APID")
A_BYTES=$(curl -s "http://127.0.0.1:$AP/metrics" | wc -c); N_BYTES=$(curl -s "http://127.0.0.1:$NP/metrics" | wc -c)

# exec → READY=1 over a notify socket, 20 starts.
READY=$(python3 - "$AGENT" <<'PY'
import os, socket, statistics, subprocess, sys, tempfile, time
agent = sys.argv[1]
times = []
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(path); s.settimeout(10)
    for _ in range(20):
        port = socket.socket(); port.bind(("127.0.0.1", 0)); p = port.getsockname()[1]; port.close()
        env = dict(os.environ, NOTIFY_SOCKET=path)
        t0 = time.perf_counter()
        proc = subprocess.Popen([agent, "--config", "/dev/null", "run", "--listen", f"127.0.0.1:{p}"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            msg = s.recv(4096).decode()
            if "READY=1" in msg.split("\n"):
                times.append((time.perf_counter() - t0) * 1000); break
        proc.terminate(); proc.wait()
print(f"{statistics.median(times):.1f} {max(times):.1f}")
PY
)
read -r READY_MED READY_MAX <<<"$READY"

RATIO=$(awk -v a="$A_RPS" -v n="$N_RPS" 'BEGIN {printf "%.1f", (n>0 ? a/n : 0)}')
printf '\n## hybrid-node-agent foundation benchmark (%s, %s cores, wrk -t2 -c4 -d%ss)\n\n' "$(date -u +%F)" "$(nproc)" "$DURATION"
printf '| measure | hybrid-node-agent | node-exporter | target (agent) |\n|---|---|---|---|\n'
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
printf '| idle RSS | %s MiB | %s MiB | <= 8 MiB |\n' "$(mib "$A_RSS")" "$(mib "$N_RSS")"
printf '| RSS after load | %s MiB | | |\n' "$(mib "$A_RSS_AFTER")"
printf '| /metrics size | %s B | %s B | |\n' "$A_BYTES" "$N_BYTES"
printf '| scrape p50 | %s ms | %s ms | |\n' "$A_P50" "$N_P50"
printf '| scrape p99 | %s ms | %s ms | <= 2 ms |\n' "$A_P99" "$N_P99"
printf '| throughput | %s req/s | %s req/s | >= 50x node-exporter |\n' "$A_RPS" "$N_RPS"
printf '| throughput ratio | %sx | 1x | >= 50x |\n' "$RATIO"
printf '| wrk errors | %s | %s | none |\n' "$A_ERR" "$N_ERR"
printf '| exec -> READY=1 | median %s ms, max %s ms (20 starts) | | <= 100 ms |\n' "$READY_MED" "$READY_MAX"
