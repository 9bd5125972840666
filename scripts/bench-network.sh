#!/usr/bin/env bash
# Network probing cost and accuracy, in network namespaces made here
# (root; iproute2, iputils-ping, curl):
#  1. CPU time of the release agent probing 3 targets at the default 5
#     echoes/s, against a baseline agent with no targets in the same run
#     (both after a 15 s warm-up that covers the first path MTU discovery),
#     extrapolated to seconds per hour per target;
#     and `ping` at the same rate to the same kind of target, same run, as
#     the yardstick for what one echo costs on this machine;
#  2. the agent's RTT (p50) against `ping` on the same path, back to back.
#
#   scripts/bench-network.sh [seconds]      (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-120}
cargo build --release --locked -p hybrid-node-agent >&2
AGENT=$PWD/target/release/hybrid-node-agent
N=hnab$$
WORK=$(mktemp -d)
cleanup() { kill ${APID:-} ${BPID:-} ${PINGPID:-} 2>/dev/null || true; for ns in c s1 s2 s3; do ip netns del $N-$ns 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# client with three servers on three veth links.
ip netns add $N-c; ip -n $N-c link set lo up
for i in 1 2 3; do
  ip netns add $N-s$i; ip -n $N-s$i link set lo up
  ip link add c$i$$ netns $N-c type veth peer name s$i$$ netns $N-s$i
  ip -n $N-c addr add 10.7.$i.1/24 dev c$i$$; ip -n $N-c link set c$i$$ mtu 9000 up
  ip -n $N-s$i addr add 10.7.$i.2/24 dev s$i$$; ip -n $N-s$i link set s$i$$ mtu 9000 up
done
{
  printf '[network]\napi_server = false\n'
  for i in 1 2 3; do printf '[[network.target]]\nname = "t%s"\naddress = "10.7.%s.2"\n' $i $i; done
} > "$WORK/agent.toml"
printf '[network]\napi_server = false\n' > "$WORK/baseline.toml"
mkdir -p "$WORK/root"
ip netns exec $N-c "$AGENT" --root "$WORK/root" --config "$WORK/agent.toml" run --listen 127.0.0.1:10063 2>/dev/null & APID=$!
ip netns exec $N-c "$AGENT" --root "$WORK/root" --config "$WORK/baseline.toml" run --listen 127.0.0.1:10064 2>/dev/null & BPID=$!
# ping at the agent's rate (5/s) to a fourth address on t1's link.
ip -n $N-s1 addr add 10.7.1.3/24 dev s1$$
ip netns exec $N-c ping -q -i 0.2 10.7.1.3 > /dev/null & PINGPID=$!
sleep 15
# Run time in ns from schedstat (ticks are too coarse at this load).
ns() { local t=0; for f in /proc/$1/task/*/schedstat; do t=$((t + $(cut -d' ' -f1 "$f"))); done; echo $t; }
A0=$(ns $APID); B0=$(ns $BPID); P0=$(ns $PINGPID); sleep "$SECONDS_RUN"; A1=$(ns $APID); B1=$(ns $BPID); P1=$(ns $PINGPID)
CPU=$(awk -v a="$A0" -v b="$A1" 'BEGIN {printf "%.3f", (b-a)/1e9}')
BASE=$(awk -v a="$B0" -v b="$B1" 'BEGIN {printf "%.3f", (b-a)/1e9}')
PINGCPU=$(awk -v a="$P0" -v b="$P1" 'BEGIN {printf "%.3f", (b-a)/1e9}')
PER_HOUR=$(awk -v c="$CPU" -v b="$BASE" -v s="$SECONDS_RUN" 'BEGIN {printf "%.2f", (c - b) * 3600 / s / 3}')
PING_HOUR=$(awk -v p="$PINGCPU" -v s="$SECONDS_RUN" 'BEGIN {printf "%.2f", p * 3600 / s}')
METRICS=$(ip netns exec $N-c curl -s 127.0.0.1:10063/metrics)
AGENT_P50=$(echo "$METRICS" | awk -F' ' '/^hybrid_node_net_rtt_window_seconds\{target="t1",window="1m",stat="p50"\}/ {printf "%.3f", $2*1000}')
SENT=$(echo "$METRICS" | awk '/^hybrid_node_net_icmp_requests_total\{target="t1"\}/ {print $2}')
# ping on the same path (the agent keeps running: same conditions).
kill $PINGPID 2>/dev/null || true; PINGPID=""
PING=$(ip netns exec $N-c ping -n -q -i 0.2 -c 100 10.7.1.2 | awk -F'/' '/^rtt/ {printf "%.3f", $5}')
PING_MEDIAN=$(ip netns exec $N-c ping -n -i 0.2 -c 100 10.7.1.2 | awk -F'time=' '/time=/ {split($2,a," "); print a[1]}' | sort -n | awk '{v[NR]=$1} END {printf "%.3f", v[int((NR+1)/2)]}')
printf '\n## network probing (%s s, 3 targets at 5 echoes/s, veth in netns, %s cores)\n\n' "$SECONDS_RUN" "$(nproc)"
printf '| measure | value | target |\n|---|---|---|\n'
printf '| CPU over the run: agent with 3 targets | %s s | |\n' "$CPU"
printf '| CPU over the run: baseline agent, no targets | %s s | |\n' "$BASE"
printf '| probing CPU per hour per target ((agent - baseline) / 3) | %s s | < 1 s |\n' "$PER_HOUR"
printf '| ping at the same rate, CPU per hour (same run) | %s s | |\n' "$PING_HOUR"
printf '| agent / ping, per target | %s | |\n' "$(awk -v a="$PER_HOUR" -v p="$PING_HOUR" 'BEGIN {printf "%.2fx", (p>0 ? a/p : 0)}')"
printf '| echoes sent to t1 | %s | |\n' "$SENT"
printf '| agent RTT p50 (1m window) | %s ms | |\n' "$AGENT_P50"
printf '| ping RTT median / avg (100 echoes) | %s / %s ms | |\n' "$PING_MEDIAN" "$PING"
printf '| agent minus ping (median) | %s ms | |\n' "$(awk -v a="$AGENT_P50" -v p="$PING_MEDIAN" 'BEGIN {printf "%+.3f", a-p}')"
