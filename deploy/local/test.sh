#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with Rust: sets up what the tests need
# (PostgreSQL binaries, the demo model, Python test clients), then every crate's tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bash deploy/local/setup.sh
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# One build profile (dev, with the numeric crates optimised: see Cargo.toml) for everything.
cargo test --workspace --locked --no-fail-fast
