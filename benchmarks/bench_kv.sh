#!/usr/bin/env bash
# `make bench-kv`: KV-aware routing under a multi-turn, prefix-heavy workload, drivetrain's
# routers vs Dynamo 1.6.1's KV router (benchmarks/kv/bench.py; arguments are passed on, e.g.
# --quick, --decision, --no-dynamo). `make bench-disagg` runs benchmarks/kv/disagg.py the same
# way. Installs Dynamo once per machine (benchmarks/frontend/setup_dynamo.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SCRIPT="benchmarks/kv/bench.py"
if [[ "${1:-}" == "--disagg" ]]; then SCRIPT="benchmarks/kv/disagg.py"; shift; fi
if [[ " $* " != *" --no-dynamo "* ]]; then ./benchmarks/frontend/setup_dynamo.sh; fi
exec "$PYTHON" "$SCRIPT" "$@"
