#!/usr/bin/env bash
# Soak run: the release agent under churn for DURATION, with a scrape every
# second and kills/restarts at random.
#
#   scripts/soak.sh DURATION [SEED]       DURATION: 90s, 20m, 1h (default 10m)
#
# Churn: the NodeConfig is rewritten every 3 s (valid variants with changing
# inline registries, invalid YAML, conflicting credentials; rename-over saves
# and in-place truncating writes); the agent config is rewritten every 7 s
# (registries come and go, CAs rotate, now and then a broken file) and the
# agent reloaded with SIGHUP. Every 3-12 min (20-40 s in runs under 10 min)
# the agent is killed (SIGKILL or
# SIGTERM, alternating) and started again.
#
# It prints RSS and open file descriptors every minute and fails on
#  - growth: over any process life of 4 min or more, RSS up by more than
#    25 % + 1 MiB or fds up by more than 4 between minute 1 and the end;
#  - any scrape error while the agent is up (a refused connection, a non-200,
#    a body without the agent's metrics);
#  - a partial or broken managed file (checked after every kill and at the
#    end: each hosts.toml whole and valid TOML with the header, each CA file
#    a whole PEM certificate, no temp file left once the agent reconciled);
#  - a reload not reported (last_reload_successful 1 after a good one,
#    0 after a broken one);
#  - a secret (activation code, registry password) in the agent's log;
#  - a start with a broken config not refused at once (exit 64, naming
#    the file);
#  - SIGTERM not ending the agent cleanly within 10 s, or no /healthz within
#    10 s of a start.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
DURATION=${1:-10m}
SEED=${2:-$RANDOM}
cargo build --release --locked -p hybrid-node-agent >&2
WORK=$(mktemp -d /tmp/hna-soak.XXXXXX)
trap 'pkill -f "$WORK/agent.toml" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for i in 0 1 2 3; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=soak-ca-$i" -addext basicConstraints=critical,CA:TRUE \
    -keyout "$WORK/ca$i.key" -out "$WORK/ca$i.crt" 2>/dev/null
done
exec python3 - "$PWD/target/release/hybrid-node-agent" "$WORK" "$DURATION" "$SEED" "$(free_port)" <<'PY'
import os, random, re, signal, subprocess, sys, time, tomllib, urllib.request

agent_bin, work, duration, seed, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
m = re.fullmatch(r"(\d+)(s|m|h)", duration)
if not m:
    sys.exit(f"soak.sh: DURATION {duration!r}: expected a number and s, m or h (90s, 20m, 1h)")
total = int(m[1]) * {"s": 1, "m": 60, "h": 3600}[m[2]]
rng = random.Random(seed)
root = os.path.join(work, "root")
certs_d = os.path.join(root, "etc/containerd/certs.d")
nc_path = os.path.join(root, "etc/nodeadm/nodeconfig.yaml")
cfg_path = os.path.join(work, "agent.toml")
log_path = os.path.join(work, "agent.log")
os.makedirs(os.path.dirname(nc_path))
cas = [open(os.path.join(work, f"ca{i}.crt")).read() for i in range(4)]
SECRET_CODE = "Xk3pQ9vL2mN8rT5wY7zA1bC4dE6fG0hJ"
SECRET_PASSWORD = "s0ak-p4ssw0rd-never-logged"
MANAGED = "# Managed by hybrid-node-agent"
failures = []

def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}", flush=True)

def nodeconfig(variant):
    if variant == "invalid-yaml":
        return "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster: [name: x\n"
    if variant == "both-credentials":
        return ("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n"
                "  hybrid:\n    ssm:\n      activationCode: \"%s\"\n      activationId: \"0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\"\n"
                "    iamRolesAnywhere:\n      nodeName: n\n" % SECRET_CODE)
    n = rng.randrange(1000)
    mirrors = rng.sample(["https://127.0.0.1:9/a", "https://127.0.0.1:9/b", "https://127.0.0.1:9/c"], rng.randrange(1, 3))
    toml = ("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n"
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"nc%d.example.internal\"]\n  endpoint = [%s]\n"
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"nc%d.example.internal\".auth]\n  username = \"robot\"\n  password = \"%s\"\n"
            % (n % 3, ", ".join(f'"{u}"' for u in mirrors), n % 3, SECRET_PASSWORD))
    return ("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: soak-%d\n    region: us-west-2\n"
            "  hybrid:\n    ssm:\n      activationCode: \"%s\"\n      activationId: \"0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\"\n"
            "  containerd:\n    config: |\n%s" % (n, SECRET_CODE, "".join("      " + l + "\n" for l in toml.splitlines())))

def write_nodeconfig():
    text = nodeconfig(rng.choice(["valid", "valid", "valid", "invalid-yaml", "both-credentials"]))
    if rng.random() < 0.5:
        tmp = nc_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, nc_path)
    else:
        with open(nc_path, "w") as f:  # truncate, then write: the agent may see it half-done
            f.write(text[: len(text) // 2])
            f.flush()
            f.write(text[len(text) // 2:])

config_broken = False

def agent_config(broken=False):
    global config_broken
    config_broken = broken
    out = [f'[agent]\nlisten = "127.0.0.1:{port}"\nprobe_timeout = "5s"\n',
           '[lifecycle]\ninterval = "5s"\nkubelet_healthz = "127.0.0.1:9"\n',
           '[nodeconfig]\ninterval = "10s"\n',
           '[containerd]\ninterval = "10s"\nbinary = "/nonexistent/containerd"\n',
           '[registries]\ninterval = "5s"\nprobe_timeout = "300ms"\n',
           '[network]\ninterval = "10s"\npmtu_interval = "1m"\n',
           f'[[network.target]]\nname = "loopback"\naddress = "127.0.0.1"\ntcp_port = {port}\n']
    for h in range(4):
        if rng.random() < 0.3:
            continue
        out.append(f'[[registry]]\nhost = "reg{h}.example.internal"\nsystem_trust = {rng.choice(["true", "false"])}\n'
                   f'ca_pem = """\n{cas[rng.randrange(4)]}"""\n'
                   f'mirrors = [{{ url = "https://127.0.0.1:9/m{rng.randrange(5)}" }}]\n')
    text = "".join(out)
    if broken:
        text += "[registries\n"
    tmp = cfg_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, cfg_path)

def get(path, timeout=2):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read().decode()

def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None

def rss(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None

def check_files(when, agent_settled):
    """Managed files whole and valid; temp files only while not settled."""
    if not os.path.isdir(certs_d):
        return
    for d in sorted(os.listdir(certs_d)):
        full = os.path.join(certs_d, d)
        for name in sorted(os.listdir(full)):
            p = os.path.join(full, name)
            if ".tmp." in name:
                if agent_settled:
                    fail(f"{when}: temp file left behind: {p}")
                continue
            data = open(p, "rb").read()
            stats["files_checked"] += 1
            if name == "hosts.toml":
                text = data.decode("utf-8", "replace")
                if not text.startswith(MANAGED):
                    fail(f"{when}: {p} lacks the managed header")
                    continue
                try:
                    doc = tomllib.loads(text)
                except tomllib.TOMLDecodeError as e:
                    fail(f"{when}: {p} is not valid TOML: {e}")
                    continue
                if not doc.get("host"):
                    fail(f"{when}: {p} has no [host] table")
                for h in doc.get("host", {}).values():
                    ca = h.get("ca")
                    if ca and not os.path.isfile(os.path.join(root, ca.lstrip("/"))):
                        fail(f"{when}: {p} names {ca}, which does not exist")
            elif name.endswith(".crt"):
                r = subprocess.run(["openssl", "x509", "-noout"], input=data, capture_output=True)
                if r.returncode != 0:
                    fail(f"{when}: {p} is not a whole certificate")

class Agent:
    def __init__(self):
        self.proc = None
        self.started = None
        self.samples = []  # (elapsed in this life, rss KiB, fds)

    def start(self):
        if config_broken:
            # What systemd's restart would meet: a clear refusal, at once.
            r = subprocess.run([agent_bin, "--root", root, "--config", cfg_path, "run"],
                               capture_output=True, text=True, timeout=10)
            if r.returncode != 64 or "agent.toml" not in r.stderr:
                fail(f"start with a broken config: exit {r.returncode}, stderr {r.stderr.strip()[:200]!r}")
            stats["refused_starts"] += 1
            agent_config()
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen([agent_bin, "--root", root, "--config", cfg_path, "run"],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.started = time.monotonic()
        self.samples = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if get("/healthz", 1)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        fail(f"no /healthz within 10 s of a start (exit {self.proc.poll()})")
        raise SystemExit(report())

    def stop(self, sig):
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fail(f"{sig.name}: still running after 10 s")
            self.proc.kill()
            code = self.proc.wait()
        if sig == signal.SIGTERM and code != 0:
            fail(f"SIGTERM: exit code {code}")
        self.log.close()
        self.judge_life()

    def sample(self):
        r, f = rss(self.proc.pid), fds(self.proc.pid)
        if r is not None:
            self.samples.append((time.monotonic() - self.started, r, f))
        return r, f

    def judge_life(self):
        life = self.samples
        if not life or life[-1][0] < 240:
            return
        base = next(s for s in life if s[0] >= 60)
        end = life[-1]
        lives.append((base, end))
        if end[1] > base[1] * 1.25 + 1024:
            fail(f"RSS grew from {base[1]} KiB (minute 1) to {end[1]} KiB over a {end[0]/60:.0f}-minute life")
        if end[2] > base[2] + 4:
            fail(f"fds grew from {base[2]} (minute 1) to {end[2]} over a {end[0]/60:.0f}-minute life")

lives = []
stats = {"scrapes": 0, "errors": 0, "restarts": 0, "sigkill": 0, "sigterm": 0, "nodeconfig": 0, "reloads": 0, "broken_reloads": 0, "files_checked": 0, "refused_starts": 0}
first = None

def report():
    print("\nsoak summary (seed %d, %s):" % (seed, duration))
    for k, v in stats.items():
        print(f"  {k:16} {v}")
    if first:
        print(f"  first sample     rss {first[0]} KiB, fds {first[1]}")
    if last:
        print(f"  last sample      rss {last[0]} KiB, fds {last[1]}")
    for i, (b, e) in enumerate(lives):
        print(f"  life {i+1}: minute 1 rss {b[1]} KiB fds {b[2]} -> minute {e[0]/60:.0f} rss {e[1]} KiB fds {e[2]}")
    if failures:
        print(f"FAILED: {len(failures)} problem(s)")
        return 1
    print("PASSED")
    return 0

last = None
write_nodeconfig()
agent_config()
agent = Agent()
agent.start()
t0 = time.monotonic()
next_nc, next_cfg, next_sample, next_print = t0 + 3, t0 + 7, t0 + 10, t0 + 60
next_kill = t0 + (rng.uniform(20, 40) if total < 600 else rng.uniform(180, 720))
kill_sig = signal.SIGKILL
pending_reload = None
print(f"soak: {duration}, seed {seed}, port {port}, work {work}", flush=True)
print(f"{'minute':>6} {'pid':>8} {'rss KiB':>8} {'fds':>4} {'scrapes':>8} {'errors':>6} {'restarts':>8}", flush=True)
while True:
    now = time.monotonic()
    if now - t0 >= total:
        break
    try:
        status, body = get("/metrics")
        stats["scrapes"] += 1
        if status != 200 or "hybrid_node_agent_info{" not in body:
            stats["errors"] += 1
            fail(f"scrape: status {status}, {len(body)} bytes without the agent's metrics")
        elif pending_reload and now - pending_reload[0] >= 2:
            want = pending_reload[1]
            got = re.search(r"^hybrid_node_agent_config_last_reload_successful (\S+)", body, re.M)
            if not got or float(got[1]) != want:
                fail(f"config reload at {pending_reload[0] - t0:.0f} s: last_reload_successful {got and got[1]}, want {want}")
            pending_reload = None
    except OSError as e:
        stats["errors"] += 1
        fail(f"scrape at {now - t0:.0f} s: {e}")
    if now >= next_nc:
        write_nodeconfig()
        stats["nodeconfig"] += 1
        next_nc = now + 3
    if now >= next_cfg:
        broken = rng.random() < 0.1
        agent_config(broken)
        agent.proc.send_signal(signal.SIGHUP)
        pending_reload = (now, 0.0 if broken else 1.0)
        stats["broken_reloads" if broken else "reloads"] += 1
        next_cfg = now + 7
    if now >= next_sample:
        last = agent.sample()
        if first is None and now - t0 >= 60:
            first = last
        next_sample = now + 10
    if now >= next_print:
        print(f"{(now - t0) / 60:6.0f} {agent.proc.pid:8} {last[0]:8} {last[1]:4} {stats['scrapes']:8} {stats['errors']:6} {stats['restarts']:8}", flush=True)
        next_print = now + 60
    if now >= next_kill:
        agent.sample()
        agent.stop(kill_sig)
        stats["sigkill" if kill_sig == signal.SIGKILL else "sigterm"] += 1
        check_files(f"after {kill_sig.name} at {(now - t0) / 60:.1f} min", agent_settled=False)
        kill_sig = signal.SIGTERM if kill_sig == signal.SIGKILL else signal.SIGKILL
        agent.start()
        pending_reload = None
        stats["restarts"] += 1
        next_kill = time.monotonic() + (rng.uniform(20, 40) if total < 600 else rng.uniform(180, 720))
    time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))

# Settle: a valid NodeConfig and agent config, one reconcile, then the files.
agent_config()
agent.proc.send_signal(signal.SIGHUP)
time.sleep(12)
last = agent.sample()
check_files("at the end", agent_settled=True)
agent.stop(signal.SIGTERM)
logged = open(log_path, errors="replace").read()
for secret in (SECRET_CODE, SECRET_PASSWORD):
    if secret in logged:
        fail(f"a secret appears in the agent's log ({secret[:4]}…)")
sys.exit(report())
PY
