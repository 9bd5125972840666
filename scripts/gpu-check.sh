#!/usr/bin/env bash
# On a GPU host: compare what hybrid-node-agent reads through NVML with
# nvidia-smi, GPU by GPU, and exit non-zero on any disagreement.
#
#   scripts/gpu-check.sh [path/to/hybrid-node-agent]
#
# Compares driver version, GPU count, names, UUIDs, ECC mode, PCIe
# generation and width, persistence mode and temperature (within 3 °C). The
# agent's side comes from `check --output json` (verdicts, driver, count)
# and from its /metrics (per-GPU values), served for a moment on loopback.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
AGENT=${1:-$(dirname "$0")/../target/release/hybrid-node-agent}
command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi not found" >&2; exit 2; }
WORK=$(mktemp -d); trap 'kill ${APID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$AGENT" check --output json > "$WORK/check.json" || true
PORT=$(free_port)
"$AGENT" --config /dev/null run --listen "127.0.0.1:$PORT" 2>/dev/null & APID=$!
for _ in $(seq 100); do curl -fs -o "$WORK/metrics.txt" "http://127.0.0.1:$PORT/metrics" && grep -q '^hybrid_node_gpu_info{' "$WORK/metrics.txt" && break; sleep 0.1; done
nvidia-smi --query-gpu=index,uuid,name,driver_version,ecc.mode.current,pcie.link.gen.current,pcie.link.width.current,persistence_mode,temperature.gpu \
  --format=csv,noheader,nounits > "$WORK/smi.csv"
nvidia-smi -q > "$WORK/smi-q.txt"

python3 - "$WORK" <<'PY'
import csv, json, re, sys
work = sys.argv[1]
report = json.load(open(f"{work}/check.json"))
metrics = open(f"{work}/metrics.txt").read().splitlines()
def series(name):
    out = []
    for l in metrics:
        if l.startswith(name + "{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', l[l.index("{"):l.rindex("}")]))
            out.append((labels, float(l.rsplit(" ", 1)[1])))
    return out
def per_gpu(name, **want):
    return {int(l["gpu"]): v for l, v in series(name) if all(l.get(k) == v2 for k, v2 in want.items())}
smi = [[c.strip() for c in row] for row in csv.reader(open(f"{work}/smi.csv"))]
info = {int(l["gpu"]): l for l, _ in series("hybrid_node_gpu_info")}
drv = [l for l, _ in series("hybrid_node_gpu_driver_info")]
rows, bad = [], 0
def cmp(what, agent, ref, ok=None):
    global bad
    same = ok if ok is not None else str(agent) == str(ref)
    bad += 0 if same else 1
    rows.append((what, str(agent), str(ref), "ok" if same else "DIFFERENT"))
cmp("driver version", drv[0]["version"] if drv else "-", smi[0][3] if smi else "-")
cmp("GPU count", len(info), len(smi))
temp, gen, width = per_gpu("hybrid_node_gpu_temperature_celsius"), per_gpu("hybrid_node_gpu_pcie_link_generation", state="current"), per_gpu("hybrid_node_gpu_pcie_link_width_lanes", state="current")
ecc, pers = per_gpu("hybrid_node_gpu_ecc_enabled"), per_gpu("hybrid_node_gpu_persistence_mode_enabled")
for r in smi:
    i = int(r[0]); a = info.get(i, {})
    cmp(f"gpu{i} name", a.get("model", "-"), r[2])
    cmp(f"gpu{i} uuid", a.get("uuid", "-"), r[1])
    cmp(f"gpu{i} ECC", "Enabled" if ecc.get(i) == 1 else "Disabled", r[4])
    cmp(f"gpu{i} PCIe gen", int(gen.get(i, -1)), r[5])
    cmp(f"gpu{i} PCIe width", int(width.get(i, -1)), r[6])
    cmp(f"gpu{i} persistence", "Enabled" if pers.get(i) == 1 else "Disabled", r[7])
    t = temp.get(i)
    cmp(f"gpu{i} temperature °C", t, r[8], ok=t is not None and abs(t - float(r[8])) <= 3)
w = max(len(r[0]) for r in rows)
print(f"{'':{w}}  {'hybrid-node-agent':24}  {'nvidia-smi':24}")
for what, a, ref, verdict in rows:
    print(f"{what:{w}}  {a:24}  {ref:24}  {verdict}")
gpu_checks = [c for c in report["checks"] if c["domain"] == "gpu"]
print(f"\nagent verdicts: " + ", ".join(f"{c['id']}={c['status']}" for c in gpu_checks[:12]) + (" …" if len(gpu_checks) > 12 else ""))
sys.exit(1 if bad else 0)
PY
