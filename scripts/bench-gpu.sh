#!/usr/bin/env bash
# Cost of the GPU domain on an 8-GPU HGX H100: the agent (release build,
# or PROFILE=debug) reads the scripted NVML library (tests/nvml-scripted)
# with the hgx-h100 scenario, sweeping every second for SECONDS_RUN
# seconds (default 30). Prints the agent's RSS (now and peak), the time of
# one GPU sweep from hybrid_node_probe_duration_seconds{domain="gpu"}
# (median and max over the run, and per GPU), and the /metrics size.
#
#   scripts/bench-gpu.sh            PROFILE=debug scripts/bench-gpu.sh
#
# The sweep time includes the scripted library's own cost (a stat() of the
# scenario file per NVML call), so it is an upper bound of the agent's code
# alone; real NVML adds its own latency on top (ms per call without
# persistence mode). Needs python3.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
SECONDS_RUN=${SECONDS_RUN:-30}
if [ "$PROFILE" = release ]; then
  cargo build --release --locked -p hybrid-node-agent -p nvml-scripted >&2
else
  cargo build --locked -p hybrid-node-agent -p nvml-scripted >&2
fi
AGENT=$PWD/target/$PROFILE/hybrid-node-agent
LIB=$PWD/target/$PROFILE/libnvml_scripted.so
ROOT=$(mktemp -d)
trap 'kill $APID 2>/dev/null || true; rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/dev" "$ROOT/proc/driver/nvidia"
for i in 0 1 2 3 4 5 6 7; do : > "$ROOT/dev/nvidia$i"; done
for i in 0 1 2 3; do : > "$ROOT/dev/nvidia-nvswitch$i"; done
echo "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build" > "$ROOT/proc/driver/nvidia/version"
printf '[gpu]\ninterval = "1s"\nexpected_count = 8\nnvml_library = "%s"\n' "$LIB" > "$ROOT/agent.toml"
PORT=$(free_port)
NVML_SCRIPTED_SCENARIO=$PWD/tests/fixtures/nvml/hgx-h100.toml \
  "$AGENT" --root "$ROOT" --config "$ROOT/agent.toml" run --listen "127.0.0.1:$PORT" 2>/dev/null & APID=$!

python3 - "$APID" "$PORT" "$SECONDS_RUN" "$PROFILE" <<'PY'
import statistics, sys, time, urllib.request
pid, port, seconds, profile = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
url = f"http://127.0.0.1:{port}/metrics"
def scrape():
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.read().decode()
def status(key):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(key + ":"):
            return int(l.split()[1]) / 1024
deadline = time.time() + 20
while time.time() < deadline:
    try:
        if "hybrid_node_gpu_devices 8" in scrape():
            break
    except OSError:
        pass
    time.sleep(0.2)
else:
    sys.exit("bench-gpu: the agent never reported 8 GPUs")
sweeps = []
for _ in range(seconds):
    time.sleep(1)
    for l in scrape().splitlines():
        if l.startswith('hybrid_node_probe_duration_seconds{domain="gpu"}'):
            sweeps.append(float(l.rsplit(" ", 1)[1]))
text = scrape()
gpu_lines = [l for l in text.splitlines() if l.startswith("hybrid_node_gpu") ]
med, mx = statistics.median(sweeps), max(sweeps)
print(f"profile            {profile}, {len(sweeps)} samples over {seconds} s, 8 GPUs (hgx-h100)")
print(f"RSS                {status('VmRSS'):.1f} MiB now, {status('VmHWM'):.1f} MiB peak")
print(f"GPU sweep          median {med*1000:.2f} ms, max {mx*1000:.2f} ms")
print(f"per GPU            median {med*1000/8:.3f} ms, max {mx*1000/8:.3f} ms")
print(f"/metrics           {len(text.encode())} bytes, {len(gpu_lines)} hybrid_node_gpu* samples")
PY
