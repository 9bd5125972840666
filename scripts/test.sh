#!/usr/bin/env bash
# The test suite: formatting, lints, then every unit and end-to-end test.
# End-to-end tests need the tools .ci/run installs (promtool, …); under
# CI=true a missing one fails its test instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)
cargo clippy --workspace --all-targets --locked -- -D warnings
# The package tests need the .deb and .rpm (release build, cargo-deb,
# cargo-generate-rpm): built under CI, or when asked with PACKAGE_TESTS=1.
if [ "${CI:-}" = "true" ] || [ "${PACKAGE_TESTS:-}" = "1" ]; then
  scripts/package.sh
fi
# The black-box tests drive the built binary (and the GPU tests load the
# scripted NVML library, a cdylib: --lib builds it).
cargo build --workspace --bins --lib --locked
# Every test binary runs, so one failure does not hide the next.
cargo test --workspace --locked --no-fail-fast
# Every fuzz target for a short, bounded time (and the crashes found so far
# replayed): under CI, or when asked with FUZZ_SECONDS.
if [ "${CI:-}" = "true" ] || [ -n "${FUZZ_SECONDS:-}" ]; then
  JOBS=${JOBS:-$(nproc)} scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
