#!/bin/sh
# Usage: scripts/bench-credentials.sh (after cargo build --workspace --bins), from the repository root.
# Time of one credentials-domain run on the IAM Roles Anywhere fixture root
# with an openssl-made certificate and key (P-256), as the daemon reports it.
set -e
R=$(mktemp -d); cp -a tests/fixtures/roots/iam-ra/. "$R"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj /CN=rack12-node07 -keyout "$R/etc/iam/pki/server.key" -out "$R/etc/iam/pki/server.pem" 2>/dev/null
chmod 600 "$R/etc/iam/pki/server.key"; touch "$R/eks-hybrid/.aws/credentials"
./target/debug/hybrid-node-agent --root "$R" run --listen 127.0.0.1:${PORT:-19556} 2>/dev/null & P=$!
sleep 3
curl -s 127.0.0.1:${PORT:-19556}/metrics | grep 'probe_duration_seconds{domain="credentials"}'
kill $P; rm -rf "$R"
