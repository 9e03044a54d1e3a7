"""The CLI as a user runs it: a real ``python -m drivetrain.cli.main`` process."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drivetrain.cli.main", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=REPO,
        timeout=120,
    )
