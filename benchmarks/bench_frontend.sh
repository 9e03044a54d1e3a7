#!/usr/bin/env bash
# `make bench-frontend`: drivetrain's frontend + mocker vs Dynamo 1.6.1's, side by side in one run.
# Installs what it needs: Dynamo once per machine (benchmarks/frontend/setup_dynamo.sh), and wrk (Debian) if missing.
# Results: benchmarks/results/frontend.md (also printed).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench-frontend: installing wrk" >&2
  SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
./benchmarks/frontend/setup_dynamo.sh
exec "$PYTHON" benchmarks/frontend/bench.py "$@"
