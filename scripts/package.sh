#!/usr/bin/env bash
# Builds the .deb and .rpm with release settings (LTO, one codegen unit,
# stripped) and prints their sizes.
#
#   scripts/package.sh        → target/debian/*.deb, target/generate-rpm/*.rpm
#
# Installs cargo-deb and cargo-generate-rpm (cargo install --locked) when
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo-deb cargo-generate-rpm; do
  if ! command -v "$tool" >/dev/null; then
    cargo install --locked "$tool"
  fi
done

cargo build --release --locked -p hybrid-node-agent
BIN=target/release/hybrid-node-agent

# Man page and completions, generated from the clap definitions.
ASSETS=target/package-assets
rm -rf "$ASSETS" && mkdir -p "$ASSETS"
"$BIN" manpage | gzip -9n > "$ASSETS/hybrid-node-agent.8.gz"
"$BIN" completions bash > "$ASSETS/hybrid-node-agent.bash"
"$BIN" completions zsh > "$ASSETS/_hybrid-node-agent"
"$BIN" completions fish > "$ASSETS/hybrid-node-agent.fish"

rm -f target/debian/*.deb target/generate-rpm/*.rpm
cargo deb --no-build -p hybrid-node-agent
cargo generate-rpm -p agent

echo
printf '%-12s %10s  %s\n' "artifact" "bytes" "file"
printf '%-12s %10s  %s\n' "binary" "$(stat -c %s "$BIN")" "$BIN"
for f in target/debian/*.deb target/generate-rpm/*.rpm; do
  printf '%-12s %10s  %s\n' "${f##*.}" "$(stat -c %s "$f")" "$f"
done
