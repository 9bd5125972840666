#!/usr/bin/env bash
# What one round of the endpoints domain costs: the agent (`run`) in a
# client network namespace whose resolver is a dnsmasq in a server
# namespace; `openssl s_server` there stands in for the AWS endpoints and
# the API server (a CA made here, in the --root trust bundle and in the
# NodeConfig). Each round probes ssm, ssmmessages, ec2messages, sts and the
# API server (DNS, TCP, verified TLS, a GET). Prints, after ROUNDS rounds,
# the round's wall time (hybrid_node_probe_duration_seconds{domain=
# "endpoints"}) as min/median/max, the per-endpoint TCP and TLS times of
# the latest round, and the agent's RSS. (s_server answers the API GET
# with 200 and HTML, so api-server reads down: the cost is what counts.)
# Needs root, iproute2, dnsmasq, openssl, curl.
#
#   scripts/bench-endpoints.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
BIN=${BIN:-target/debug/hybrid-node-agent}
[ -x "$BIN" ] || { echo "build first: cargo build --workspace --bins" >&2; exit 1; }
for t in dnsmasq openssl curl; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || { echo "$t is missing" >&2; exit 1; }
done
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
C=hna-bep-c-$$ S=hna-bep-s-$$ SRV=10.77.0.2
WORK=$(mktemp -d)
cleanup() {
  for p in $(ip netns pids "$S" 2>/dev/null) $(ip netns pids "$C" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
  rm -rf "/etc/netns/$C" "$WORK"
}
trap cleanup EXIT
ip netns add "$C"; ip netns add "$S"
ip link add hec$$ netns "$C" type veth peer name hes$$ netns "$S"
ip -n "$C" addr add 10.77.0.1/24 dev hec$$
ip -n "$S" addr add $SRV/24 dev hes$$
for ns in "$C" "$S"; do ip -n "$ns" link set lo up; done
ip -n "$C" link set hec$$ up; ip -n "$S" link set hes$$ up
mkdir -p "/etc/netns/$C"; echo "nameserver $SRV" > "/etc/netns/$C/resolv.conf"

# A CA and one server certificate for every name.
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -subj "/CN=bench CA" -days 1 -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr -subj "/CN=bench" 2>/dev/null
printf 'subjectAltName=DNS:ssm.us-west-2.amazonaws.com,DNS:ssmmessages.us-west-2.amazonaws.com,DNS:ec2messages.us-west-2.amazonaws.com,DNS:sts.us-west-2.amazonaws.com,DNS:api.cluster.test\n' > ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile ext 2>/dev/null
mkdir -p root/etc/ssl/certs root/etc/nodeadm
cp ca.pem root/etc/ssl/certs/ca-certificates.crt
cat > root/etc/nodeadm/nodeconfig.yaml <<YAML
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: bench
    region: us-west-2
    apiServerEndpoint: https://api.cluster.test
    certificateAuthority: $(base64 -w0 ca.pem)
  hybrid:
    ssm:
      activationCode: "Xk3pQ9vL2mN8rT5wY7zA1bC4dE6fG0hJ"
      activationId: "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
YAML
cat > agent.toml <<TOML
[agent]
listen = "127.0.0.1:10063"
[network]
api_server = false
[endpoints]
interval = "1s"
TOML
cd - >/dev/null

ip netns exec "$S" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
  --bind-interfaces --listen-address=$SRV --pid-file= --address=/amazonaws.com/$SRV \
  --address=/cluster.test/$SRV >/dev/null 2>&1 &
ip netns exec "$S" openssl s_server -quiet -www -accept $SRV:443 -cert "$WORK/srv.pem" \
  -key "$WORK/srv.key" </dev/zero >/dev/null 2>&1 &
sleep 0.5
ip netns exec "$C" env -u HTTPS_PROXY -u https_proxy "$BIN" --root "$WORK/root" \
  --config "$WORK/agent.toml" run >"$WORK/agent.log" 2>&1 &
AGENT=$!

scrape() { ip netns exec "$C" curl -s http://127.0.0.1:10063/metrics; }
samples=()
last=""
for _ in $(seq 1 200); do
  sleep 0.5
  m=$(scrape || true)
  d=$(grep '^hybrid_node_probe_duration_seconds{domain="endpoints"}' <<<"$m" | awk '{print $2}')
  runs=$(grep '^hybrid_node_probe_runs_total{domain="endpoints",result="ok"}' <<<"$m" | awk '{print $2}')
  if [ -n "$d" ] && [ "$runs" != "$last" ]; then samples+=("$d"); last=$runs; fi
  [ "${#samples[@]}" -ge "$ROUNDS" ] && break
done
echo "endpoints rounds: ${#samples[@]} (5 endpoints each)"
printf '%s\n' "${samples[@]}" | sort -g | awk '{a[NR]=$1} END {printf "round wall time: min %.1f ms, median %.1f ms, max %.1f ms\n", a[1]*1000, a[int((NR+1)/2)]*1000, a[NR]*1000}'
grep -E '^hybrid_node_endpoints_(up|tcp_connect_seconds|tls_handshake_seconds|dns_seconds)' <<<"$m"
echo "agent RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$AGENT/status)"
kill "$AGENT"
