#!/usr/bin/env bash
# NodeConfig reaction time: from the moment an edit lands (rename-over, as
# config tools save) to the new verdict being visible on /metrics, over N
# edits that alternate between a valid and an invalid NodeConfig.
#
#   scripts/bench-nodeconfig.sh [edits]      (default 200)
#
# Prints the median, p90, p99 and max in milliseconds. Needs python3.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
EDITS=${1:-200}
cargo build --release --locked -p hybrid-node-agent >&2
AGENT=$PWD/target/release/hybrid-node-agent
ROOT=$(mktemp -d)
trap 'kill $APID 2>/dev/null || true; rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/etc/nodeadm"
cp tests/fixtures/nodeconfig/harbor-ssm.yaml "$ROOT/etc/nodeadm/nodeconfig.yaml"
PORT=$(free_port)
printf '[nodeconfig]\ninterval = "1h"\n[containerd]\nbinary = "/nonexistent"\n' > "$ROOT/agent.toml"
"$AGENT" --root "$ROOT" --config "$ROOT/agent.toml" run --listen "127.0.0.1:$PORT" 2>/dev/null & APID=$!

python3 - "$ROOT" "$PORT" "$EDITS" <<'PY'
import os, statistics, sys, time, urllib.request
root, port, edits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = os.path.join(root, "etc/nodeadm/nodeconfig.yaml")
good = open("tests/fixtures/nodeconfig/harbor-ssm.yaml").read()
bad = open("tests/fixtures/nodeconfig/invalid-yaml.yaml").read()
url = f"http://127.0.0.1:{port}/metrics"

def valid():
    with urllib.request.urlopen(url, timeout=2) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("hybrid_node_nodeconfig_valid "):
                return float(line.split()[1])

deadline = time.time() + 10
while time.time() < deadline:
    try:
        if valid() == 1.0: break
    except OSError: pass
    time.sleep(0.02)
samples = []
for i in range(edits):
    want = 0.0 if i % 2 == 0 else 1.0
    text = bad if want == 0.0 else good.replace("my-hybrid-cluster", f"cluster-{i}")
    tmp = path + ".tmp"
    with open(tmp, "w") as f: f.write(text)
    t0 = time.perf_counter()
    os.rename(tmp, path)
    while valid() != want:
        if time.perf_counter() - t0 > 5: sys.exit(f"edit {i}: no verdict within 5 s")
        time.sleep(0.001)
    samples.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.05)
s = sorted(samples)
q = lambda p: s[min(len(s) - 1, int(p * len(s)))]
print(f"NodeConfig edit -> /metrics verdict over {len(s)} edits (debounce 100 ms): "
      f"median {statistics.median(s):.1f} ms, p90 {q(0.90):.1f} ms, p99 {q(0.99):.1f} ms, max {s[-1]:.1f} ms")
PY
