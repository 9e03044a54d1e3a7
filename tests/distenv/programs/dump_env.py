"""A torchrun worker that writes its environment to <dir>/<GROUP_RANK>-<LOCAL_RANK>.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

out = Path(sys.argv[1]) / f"{os.environ['GROUP_RANK']}-{os.environ['LOCAL_RANK']}.json"
out.write_text(json.dumps(dict(os.environ)))
