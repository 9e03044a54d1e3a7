#!/usr/bin/env bash
# Creates a venv with Dynamo 1.6.1 (frontend + mocker) from PyPI, once per machine: at
# $DYNAMO_VENV, default ~/.cache/drivetrain/dynamo-1.6.1 (every clone and worktree shares it).
# Prints nothing on success; `dynamo_python` below is how scripts find its interpreter.
#
# ai-dynamo declares `aisimulate`, whose wheel stub downloads from outside PyPI and fails here,
# so ai-dynamo is installed with --no-deps and its Requires-Dist (read from the wheel METADATA)
# is installed minus aisimulate, plus `packaging` (imported but undeclared).
# Idempotent: a stamp file marks a finished install; a lock file makes concurrent callers (several
# clones running `make test` at once) wait for one install instead of racing in one venv.
set -euo pipefail
VENV="${DYNAMO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/drivetrain/dynamo-1.6.1}"
WORK="$VENV.work"
STAMP="$VENV/.dynamo-1.6.1"
PY="${PY:-python3}"

if [[ -f "$STAMP" ]]; then
  exit 0
fi
mkdir -p "$WORK" "$(dirname "$VENV")"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$VENV.lock"
  flock 9
  [[ -f "$STAMP" ]] && exit 0  # another caller finished it while this one waited
fi
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "ai-dynamo-runtime==1.6.1"
rm -rf "$WORK/wheels" && mkdir -p "$WORK/wheels"
"$VENV/bin/pip" download -q --no-deps -d "$WORK/wheels" "ai-dynamo==1.6.1"
WHEEL="$(ls "$WORK"/wheels/ai_dynamo-1.6.1-*.whl | head -n1)"
# Requires-Dist lines without an extra marker; drop aisimulate and the runtime (already installed).
mapfile -t DEPS < <("$VENV/bin/python" - "$WHEEL" <<'PY'
import sys, zipfile
from email.parser import Parser
with zipfile.ZipFile(sys.argv[1]) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zf.read(name).decode())
for req in meta.get_all("Requires-Dist") or []:
    if "extra ==" in req:
        continue
    head = req.split(";")[0].strip()
    low = head.lower()
    if low.startswith("aisimulate") or low.startswith("ai-dynamo-runtime"):
        continue
    print(req)
PY
)
echo "dynamo deps: ${DEPS[*]}" >&2
"$VENV/bin/pip" install -q --no-deps "$WHEEL"
if ! "$VENV/bin/pip" install -q "${DEPS[@]}" packaging; then
  # The index may lag the wheel's newest lower bounds (certifi>=2026.10.19 was not on it here):
  # install each requirement, relaxing to the bare name only the ones that cannot be met.
  for dep in "${DEPS[@]}" packaging; do
    if ! "$VENV/bin/pip" install -q "$dep"; then
      bare="$(echo "${dep%%;*}" | sed -E 's/[<>=!~ ].*//')"
      echo "setup_dynamo: '$dep' cannot be met from the index; installing '$bare'" >&2
      "$VENV/bin/pip" install -q "$bare"
    fi
  done
fi
touch "$STAMP"
