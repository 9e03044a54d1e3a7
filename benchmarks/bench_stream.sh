#!/usr/bin/env bash
# `make bench-stream`: streaming chat under realistic per-token timing, drivetrain vs Dynamo 1.6.1,
# measured with aiperf 0.13.0 (benchmarks/stream/bench.py; arguments are passed on, e.g. --quick,
# --guard, --compare-rev REV). Installs once per machine what it needs: Dynamo
# (benchmarks/frontend/setup_dynamo.sh) and aiperf (benchmarks/stream/setup_aiperf.sh), each in
# its own venv under ~/.cache/drivetrain. Results: benchmarks/results/stream.md (also printed).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
./benchmarks/frontend/setup_dynamo.sh
./benchmarks/stream/setup_aiperf.sh
if [[ " $* " == *" --profile "* ]]; then ./benchmarks/stream/setup_pyspy.sh; fi
exec "$PYTHON" benchmarks/stream/bench.py "$@"
