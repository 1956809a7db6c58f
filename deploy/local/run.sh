#!/usr/bin/env bash
# Sets up and runs Enclave on its embedded defaults: a local PostgreSQL cluster it manages under
# ./data, and the bundled demo model. Extra arguments go to `enclave serve`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bash deploy/local/setup.sh
cargo build --release --locked -p enclave
exec target/release/enclave serve --model models/SmolLM2-135M-Instruct.Q4_1.gguf --data-dir data "$@"
