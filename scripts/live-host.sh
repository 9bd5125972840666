#!/usr/bin/env bash
# Prepares what the live systemd suite (tests/tests/systemd_live.rs) boots:
# a minimal Debian 12 root with systemd (debootstrap), and the containerd and
# runc packages it installs into that root later, as an admin would. Both
# are cached: a second call costs nothing.
#
#   scripts/live-host.sh [CACHE_DIR]   (default: target/live)
#
#   CACHE_DIR/bookworm-root/   the root (with .complete once whole)
#   CACHE_DIR/debs/*.deb       containerd and runc for bookworm
#
# The Debian mirror is the one in this machine's apt sources; nothing else
# is contacted. Needs root, debootstrap and apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${1:-target/live}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
ROOT=$CACHE/bookworm-root
DEBS=$CACHE/debs

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
mirror() {
  local uri
  uri=$(apt_mirror)
  [ -n "$uri" ] || { echo "live-host.sh: no Debian mirror in the apt sources" >&2; exit 1; }
  echo "$uri"
}

if [ ! -e "$ROOT/.complete" ]; then
  rm -rf "$ROOT" "$ROOT.tmp"
  echo "live-host.sh: debootstrap bookworm into $ROOT" >&2
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,ca-certificates,iproute2 \
    bookworm "$ROOT.tmp" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
  # No console login, no first-boot questions: the suite only needs the
  # services.
  rm -f "$ROOT.tmp/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
  echo "hybrid-live" >"$ROOT.tmp/etc/hostname"
  rm -rf "$ROOT.tmp/var/cache/apt/archives/"*.deb
  touch "$ROOT.tmp/.complete"
  mv "$ROOT.tmp" "$ROOT"
fi

if ! ls "$DEBS"/containerd_*.deb "$DEBS"/runc_*.deb >/dev/null 2>&1; then
  rm -rf "$DEBS" && mkdir -p "$DEBS"
  fetch() { (cd "$DEBS" && apt-get download -q containerd runc >/dev/null 2>&1); }
  fetch || { apt-get update -qq && fetch; } \
    || { echo "live-host.sh: apt-get download containerd runc failed" >&2; exit 1; }
fi
echo "$ROOT"
