#!/usr/bin/env bash
# Builds release binaries and runs the benchmark: fluxus-bench starts its own dev node, Redis,
# fluxus-api and fluxus-worker processes on loopback ports and prints its figures as key=value
# lines. Arguments go to fluxus-bench (try --help), e.g. `bash scripts/bench.sh --payments 200`,
# or `bash scripts/bench.sh --matrix` for automine and 0.5 s blocks with 1, 2 and 4 workers.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo build --release --bins -p fluxus-api -p fluxus-worker -p fluxus-bench
bash scripts/install-anvil.sh >/dev/null

target="${CARGO_TARGET_DIR:-target}"
case "$target" in
  /*) ;;
  *) target="$root/$target" ;;
esac
# The harness starts the fluxus-api and fluxus-worker found here: the release builds just made.
export FLUXUS_BIN_DIR="$target/release"
exec "$FLUXUS_BIN_DIR/fluxus-bench" "$@"
