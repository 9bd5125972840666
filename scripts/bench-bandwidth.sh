#!/usr/bin/env bash
# CPU cost of the agent's built-in iperf3 client against the iperf3 client,
# at the highest rate this machine sustains: an unshaped veth pair between
# two network namespaces, `iperf3 -s` in one, each client in turn in the
# other, same duration and streams. Prints, per client and direction, the
# receiver's rate, the client's user+system CPU seconds, and CPU seconds
# per 10 Gbit transferred. Needs root, iproute2 and iperf3.
#
#   scripts/bench-bandwidth.sh [SECONDS] [STREAMS]
#   BIN=target/release/hybrid-node-agent scripts/bench-bandwidth.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
STREAMS=${2:-10}
BIN=${BIN:-target/debug/hybrid-node-agent}
[ -x "$BIN" ] || { echo "build first: cargo build --workspace --bins" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "iperf3 is missing (apt-get install iperf3)" >&2; exit 1; }
C=hna-bench-c-$$ S=hna-bench-s-$$
cleanup() {
  for p in $(ip netns pids "$S" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$C"; ip netns add "$S"
ip link add hbc$$ netns "$C" type veth peer name hbs$$ netns "$S"
ip -n "$C" addr add 10.78.0.1/24 dev hbc$$
ip -n "$S" addr add 10.78.0.2/24 dev hbs$$
for ns in "$C" "$S"; do ip -n "$ns" link set lo up; done
ip -n "$C" link set hbc$$ mtu 9000 up
ip -n "$S" link set hbs$$ mtu 9000 up
ip netns exec "$S" iperf3 -s -p 5201 -D
sleep 0.5
ROOT=$(mktemp -d)
trap 'cleanup; rm -rf "$ROOT"' EXIT

# Runs "$@" in the client namespace; prints "<cpu seconds> <rate bit/s>":
# bash's `time` counts the client's user+system CPU (ip netns exec execs
# into it), the rate is the receiver's from the client's JSON.
measure() {
  local kind=$1; shift
  local out
  out=$(mktemp)
  TIMEFORMAT='%U %S'
  local cpu
  cpu=$( { time ip netns exec "$C" "$@" >"$out" 2>/dev/null; } 2>&1 | awk '{print $1+$2}')
  local rate
  if [ "$kind" = agent ]; then
    rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bits_per_second"])' "$out")
  else
    rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"])' "$out")
  fi
  rm -f "$out"
  echo "$cpu $rate"
}

printf '%-8s %-8s %12s %10s %16s\n' client dir "Gbit/s" "CPU s" "CPU s/10 Gbit"
for dir in egress ingress; do
  R=""; [ "$dir" = ingress ] && R="-R"
  for kind in agent iperf3; do
    if [ "$kind" = agent ]; then
      res=$(measure agent "$BIN" --root "$ROOT" bandwidth --target 10.78.0.2:5201 \
        --duration "${SECS}s" -P "$STREAMS" $R -o json)
    else
      res=$(measure iperf3 iperf3 -c 10.78.0.2 -p 5201 -t "$SECS" -P "$STREAMS" $R -J)
    fi
    read -r cpu rate <<<"$res"
    awk -v k="$kind" -v d="$dir" -v c="$cpu" -v r="$rate" -v s="$SECS" 'BEGIN {
      g = r / 1e9; printf "%-8s %-8s %12.2f %10.2f %16.3f\n", k, d, g, c, (g > 0 ? c / (g * s / 10) : 0) }'
  done
done
