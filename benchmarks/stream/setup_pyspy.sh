#!/usr/bin/env bash
# Installs py-spy 0.4.3 (a sampling profiler for Python processes, from PyPI) once per machine, in
# its own venv at $PYSPY_VENV (default ~/.cache/drivetrain/py-spy-0.4.3), for
# `benchmarks/stream/bench.py --profile`. Prints nothing on success. Idempotent.
set -euo pipefail
VENV="${PYSPY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/drivetrain/py-spy-0.4.3}"
[[ -x "$VENV/bin/py-spy" ]] && exit 0
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
[[ -x "$VENV/bin/py-spy" ]] && exit 0
"${PY:-python3}" -m venv "$VENV"
"$VENV/bin/pip" install -q "py-spy==0.4.3" 2>&1 | grep -v "^WARNING: Location" >&2 || true
"$VENV/bin/py-spy" --version >/dev/null
