#!/usr/bin/env bash
# Benchmark, not a test: runs llama.cpp (llama-cpp-python, low-level API) and `enclave bench engine`
# on the same GGUF with the same thread count, one after the other in this run, and prints the
# ratios ours / llama.cpp for prefill (512 tokens) and decode at 1, 8 and 16 sequences.
#
#   bench/compare-llama-cpp.sh [--model PATH] [--threads N] [--runs N] [--profile release|dev]
#
# --profile dev builds the workspace's dev profile (kernels and model-core at opt-level 3, no LTO),
# which shares its build with `cargo test`: quicker on a busy machine, a little slower to run.
# Figures are medians over --runs repetitions on each side. On a shared or busy machine they are
# noisy: run it when nothing else is using the cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '[compare] %s\n' "$*" >&2; }

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
threads=2
runs=3
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) log "unknown argument: $1"; exit 2 ;;
  esac
done

# The project venv (and the demo model) come from the set-up script.
if [ ! -x .venv/bin/python ] || [ ! -s "$model" ]; then
  log "running deploy/local/setup.sh"
  deploy/local/setup.sh
fi
[ -s "$model" ] || { log "no model at $model"; exit 1; }
py=.venv/bin/python

llama_version=0.3.36
if ! $py -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$llama_version')" 2>/dev/null; then
  # PyPI has only the source distribution; building it for this CPU takes ~10 minutes on 2 cores.
  # No wheel cache: a cached wheel may have been built with other flags.
  log "building llama-cpp-python==$llama_version from source into .venv (takes a while)"
  CMAKE_ARGS="-DGGML_NATIVE=ON" $py -m pip install -q --disable-pip-version-check --no-cache-dir \
    "llama-cpp-python==$llama_version"
fi

log "building enclave ($profile)"
case "$profile" in
  release) cargo build --release -q -p enclave; enclave="${CARGO_TARGET_DIR:-target}/release/enclave" ;;
  dev) cargo build -q -p enclave; enclave="${CARGO_TARGET_DIR:-target}/debug/enclave" ;;
  *) log "unknown profile: $profile"; exit 2 ;;
esac

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
log "llama.cpp: $model, $threads threads, median of $runs"
$py bench/llama_cpp_bench.py --model "$model" --threads "$threads" --runs "$runs" | tee "$out/llama.jsonl"
log "enclave: $model, $threads threads, median of $runs"
"$enclave" bench engine --model "$model" --threads "$threads" --runs "$runs" | tee "$out/enclave.jsonl"

$py - "$out/llama.jsonl" "$out/enclave.jsonl" <<'PY'
import json, sys

def load(path, bench):
    rows = (json.loads(line) for line in open(path) if line.startswith("{"))
    return {r["metric"]: r["value"] for r in rows if r.get("bench") == bench}

theirs = load(sys.argv[1], "llama.cpp")
ours = load(sys.argv[2], "engine")
# metric, label, target ratio from the acceptance criteria
rows = [
    ("prefill_512", "prefill, 512-token prompt", 0.5),
    ("decode_x1", "decode, 1 sequence", 0.8),
    ("decode_x8", "decode, 8 sequences (aggregate)", 1.0),
    ("decode_x16", "decode, 16 sequences (aggregate)", None),
]
print()
print(f"{'measurement (tok/s)':36} {'llama.cpp':>10} {'enclave':>10} {'ratio':>7}  target")
ratios = []
for metric, label, target in rows:
    a, b = theirs.get(metric), ours.get(metric)
    ratio = b / a if a and b is not None else None
    tgt = f">= {target}x" if target else ""
    if ratio is not None and target:
        tgt += "  ok" if ratio >= target else "  MISSED"
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"
    print(f"{label:36} {fmt(a, '10.1f')} {fmt(b, '10.1f')} {fmt(ratio, '6.2f')}x  {tgt}")
    if ratio is not None:
        ratios.append({"bench": "enclave/llama.cpp", "metric": metric, "value": round(ratio, 3), "unit": "ratio"})
x8, x16 = ours.get("decode_x8"), ours.get("decode_x16")
if x8 and x16:
    print(f"enclave decode x16 / x8: {x16 / x8:.2f} (target: no drop, >= 1.0)")
print()
for r in ratios:
    print(json.dumps(r))
PY
