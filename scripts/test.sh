#!/usr/bin/env bash
# Runs every check and test of the project: formatting, clippy, unit tests and the end-to-end
# tests (which start their own anvil, Redis, fluxus-api and fluxus-worker processes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
bash scripts/install-anvil.sh >/dev/null
cargo build --workspace --bins
# End-to-end tests start several processes each; two at a time fit a 2-core machine.
cargo test --workspace --no-fail-fast -- --test-threads "${FLUXUS_TEST_THREADS:-2}"
