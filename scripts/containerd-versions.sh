#!/usr/bin/env bash
# Fetches the containerd lines a hybrid node runs besides Debian 12's own
# (1.6, installed by .ci/run): containerd 1.7 from trixie and 2.x from sid,
# each unpacked with `dpkg -x` (never installed) into a cache. A second call
# with the cache in place contacts nothing.
#
#   scripts/containerd-versions.sh [CACHE_DIR]   (default: target/containerd-versions)
#
#   CACHE_DIR/<suite>/usr/bin/{containerd,ctr,containerd-shim-runc-v2}
#   CACHE_DIR/<suite>/.version   the Debian package version unpacked there
#
# Prints one line per suite: `<suite> <CACHE_DIR>/<suite>/usr/bin`.
#
# Trust chain: the suite's InRelease is checked with gpgv against
# debian-archive-keyring, Packages.xz against the SHA256 InRelease lists,
# and the .deb against the SHA256 in Packages. The pool path comes from
# Packages.xz (`Filename:`). The mirror is the one in this machine's apt
# sources; nothing else is contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${1:-target/containerd-versions}
SUITES=${CONTAINERD_SUITES:-"trixie sid"}
KEYRING=${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

die() { echo "containerd-versions.sh: $*" >&2; exit 1; }

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
mirror() {
  local uri
  uri=$(apt_mirror)
  [ -n "$uri" ] || { die "no Debian mirror in the apt sources"; }
  echo "$uri"
}

get() { curl -fsS --retry 3 --max-time 300 -o "$2" "$1" || die "cannot download $1"; }

fetch_suite() {
  local suite=$1 dest=$CACHE/$1 work base sum size want got fields
  work=$(mktemp -d "$CACHE/.work-$suite.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  base=$(mirror)
  get "$base/dists/$suite/InRelease" "$work/InRelease"
  gpgv --keyring "$KEYRING" "$work/InRelease" >"$work/gpgv.log" 2>&1 \
    || { cat "$work/gpgv.log" >&2; die "$suite: InRelease signature does not verify against $KEYRING"; }
  # The SHA256 section lists "<sha256> <size> <path>".
  want=$(awk '/^SHA256:/ {s = 1; next} /^[^ ]/ {s = 0} s && $3 == "main/binary-amd64/Packages.xz" {print $1}' "$work/InRelease")
  [ -n "$want" ] || die "$suite: InRelease lists no main/binary-amd64/Packages.xz"
  get "$base/dists/$suite/main/binary-amd64/Packages.xz" "$work/Packages.xz"
  got=$(sha256sum "$work/Packages.xz" | awk '{print $1}')
  [ "$got" = "$want" ] || die "$suite: Packages.xz SHA256 $got, InRelease says $want"
  fields=$(xz -dc "$work/Packages.xz" | awk -v RS= '/(^|\n)Package: containerd\n/' \
           | awk '/^Version:/ {v = $2} /^Filename:/ {f = $2} /^SHA256:/ {s = $2} /^Size:/ {z = $2} END {print v, f, s, z}')
  read -r version pool sum size <<<"$fields"
  [ -n "${pool:-}" ] || die "$suite: no containerd package in Packages.xz"
  echo "containerd-versions.sh: $suite: containerd $version ($size bytes) from $pool" >&2
  get "$base/$pool" "$work/containerd.deb"
  got=$(sha256sum "$work/containerd.deb" | awk '{print $1}')
  [ "$got" = "$sum" ] || die "$suite: $pool SHA256 $got, Packages says $sum"
  mkdir "$work/root"
  dpkg-deb -x "$work/containerd.deb" "$work/root"
  # Only what the tests run: the daemon, its CLI and the runc shim.
  mkdir -p "$work/out/usr/bin"
  for b in containerd ctr containerd-shim-runc-v2; do
    [ -x "$work/root/usr/bin/$b" ] || die "$suite: $pool has no usr/bin/$b"
    mv "$work/root/usr/bin/$b" "$work/out/usr/bin/$b"
  done
  "$work/out/usr/bin/containerd" --version >/dev/null \
    || die "$suite: the unpacked containerd does not run on this host"
  echo "$version" >"$work/out/.version"
  rm -rf "$dest"
  mv "$work/out" "$dest"
}

for suite in $SUITES; do
  if [ ! -s "$CACHE/$suite/.version" ] || [ ! -x "$CACHE/$suite/usr/bin/containerd" ]; then
    fetch_suite "$suite"
  fi
  echo "$suite $CACHE/$suite/usr/bin"
done
