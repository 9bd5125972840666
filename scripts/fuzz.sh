#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/), each for SECONDS (default 60).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      JOBS=N runs N targets at once
#
# The corpus (fuzz/corpus/<target>, not committed) is seeded from the
# project's fixtures and fuzz/seeds; every input in fuzz/regressions/<target>
# (the crashes found so far) is replayed first and must pass. A crash stops
# with the input in fuzz/artifacts/<target>/ and a non-zero exit: turn it into
# a regression (copy it to fuzz/regressions/<target>/, fix, add a unit test).
# Per target it prints executions, exec/s, coverage and corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(nodeconfig containerd_toml hosts_toml ca_intake webconfig http)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
jobs=${JOBS:-1}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 69
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is needed (cargo install cargo-fuzz --locked)" >&2
  exit 69
fi

# Seeds. The PKI (a CA, a server pair, a DER copy, a key) is made fresh so
# that its validity covers today.
pki=fuzz/corpus/.pki
mkdir -p "$pki"
if [ ! -s "$pki/ca.crt" ] || ! openssl x509 -in "$pki/ca.crt" -noout -checkend 86400 >/dev/null 2>&1; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=fuzz-ca -addext basicConstraints=critical,CA:TRUE \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
  openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 30 -out "$pki/server.crt" 2>/dev/null
  openssl x509 -in "$pki/ca.crt" -outform DER -out "$pki/ca.der"
fi
seed() { # target files...
  local dir=fuzz/corpus/$1
  shift
  mkdir -p "$dir"
  for f in "$@"; do
    [ -f "$f" ] && cp "$f" "$dir/seed-$(basename "$f")"
  done
  return 0
}
seed nodeconfig tests/fixtures/nodeconfig/*
seed containerd_toml fuzz/seeds/containerd_toml/*
seed ca_intake "$pki/ca.crt" "$pki/ca.der" "$pki/server.crt" agent/testdata/*.pem
cat "$pki/server.crt" "$pki/ca.crt" > fuzz/corpus/ca_intake/seed-chain.pem
cp "$pki/server.key" fuzz/corpus/ca_intake/seed-key.pem
seed webconfig fuzz/seeds/webconfig/*
seed http fuzz/seeds/http/*
mkdir -p fuzz/corpus/hosts_toml
export HNA_FUZZ_PKI=$PWD/$pki

echo "fuzz.sh: building the fuzz targets (nightly, sanitizers)"
if ! (cd fuzz && cargo +nightly fuzz build -O >"../fuzz/corpus/.build.log" 2>&1); then
  tail -30 fuzz/corpus/.build.log >&2
  exit 1
fi
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir=fuzz/target/$triple/release

max_len() { # a request head is capped at 16 KiB; half of that covers it
  if [ "$1" = http ]; then echo 8192; else echo 16384; fi
}

run_one() { # target -> writes fuzz/corpus/.log/<target>.log
  local t=$1 log=fuzz/corpus/.log/$1.log
  mkdir -p fuzz/corpus/.log "fuzz/artifacts/$t"
  # Known crashes first: each must now pass.
  if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
    if ! "$bin_dir/$t" -runs=0 "fuzz/regressions/$t"/* >"$log.regressions" 2>&1; then
      echo "$t: a regression input fails again (see $log.regressions)" >&2
      return 1
    fi
  fi
  local start=$SECONDS
  trap 'echo $((SECONDS - start)) > "$log.seconds"' RETURN
  "$bin_dir/$t" "fuzz/corpus/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
}

summary() { # target status
  local t=$1 log=fuzz/corpus/.log/$1.log
  local execs rate cov corpus
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  printf '%-16s %-6s %6ss %12s execs %8s exec/s  cov %6s  corpus %6s\n' \
    "$t" "$2" "$(cat "$log.seconds" 2>/dev/null || echo '?')" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corpus"
}

failed=0
declare -A pids=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" &
  pids[$t]=$!
done
echo "fuzz.sh: target           result   time        executions     rate       coverage   corpus"
for t in "${targets[@]}"; do
  if wait "${pids[$t]}"; then
    summary "$t" ok
  else
    summary "$t" CRASH
    failed=1
    grep -E '^==[0-9]+==|panicked at|^SUMMARY|Test unit written' "fuzz/corpus/.log/$t.log" | head -8 >&2 || true
  fi
done
exit $failed
