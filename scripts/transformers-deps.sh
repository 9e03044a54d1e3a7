#!/usr/bin/env bash
# Installs the transformers engine's extra (and `transformers serve`, the independent OpenAI
# server the tests put behind the http engine) into a venv: CPU torch first, so that pip never
# resolves torch itself (plain `torch`, asked for by transformers' serving extra through
# accelerate, is a CUDA build of several GB; this machine kind keeps the 2.13.0 CPU wheel on
# local disk).  Idempotent: does nothing when everything imports.
set -euo pipefail
BIN=${1:-.venv/bin}
REPO=$(cd "$(dirname "$0")/.." && pwd)
if ! "$BIN/python" -c 'import torch' >/dev/null 2>&1; then
  "$BIN/pip" install -q torch==2.13.0 || { echo "torch unavailable: the transformers engine needs it"; exit 1; }
fi
if ! "$BIN/python" -c 'import transformers, safetensors, fastapi, uvicorn' >/dev/null 2>&1; then
  "$BIN/pip" install -q -e "$REPO[transformers]" 'transformers[serving]>=5.0'
fi
