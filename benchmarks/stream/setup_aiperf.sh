#!/usr/bin/env bash
# Creates a venv with aiperf 0.13.0 (NVIDIA's load generator for OpenAI-compatible servers), once
# per machine: at $AIPERF_VENV, default ~/.cache/drivetrain/aiperf-0.13.0. Its own venv: aiperf
# pins versions of pydantic, aiohttp, transformers... that must not leak into drivetrain's venv or
# Dynamo's. Prints nothing on success; scripts find the CLI at "$AIPERF_VENV/bin/aiperf".
# Idempotent: a stamp file marks a finished install; a lock serialises concurrent first runs.
set -euo pipefail
VENV="${AIPERF_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/drivetrain/aiperf-0.13.0}"
STAMP="$VENV/.aiperf-0.13.0"
PY="${PY:-python3}"

[[ -f "$STAMP" ]] && exit 0
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
[[ -f "$STAMP" ]] && exit 0  # another run finished it while we waited
echo "setup_aiperf: installing aiperf 0.13.0 into $VENV (once per machine)" >&2
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# aiperf's tokenizer support pulls in transformers, which wants torch only optionally; never let
# pip choose a CUDA torch here (docs/performance.md).
"$VENV/bin/pip" install -q "aiperf==0.13.0"
"$VENV/bin/aiperf" --version >/dev/null 2>&1 || "$VENV/bin/aiperf" --help >/dev/null
touch "$STAMP"
