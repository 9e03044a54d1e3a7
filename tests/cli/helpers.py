"""The CLI as a user runs it: a real ``python -m drivetrain.cli.main`` process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from tests.paths import REPO

#: The command line that runs the CLI of this checkout with this interpreter.
CLI = [sys.executable, "-m", "drivetrain.cli.main"]


def environment(
    env: Mapping[str, str | None] | None = None, inherit_env: bool = True
) -> dict[str, str]:
    """This process's environment (or an empty one) with ``env`` added, a value of None
    removing that variable."""
    environ = dict(os.environ) if inherit_env else {}
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return environ


def run_cli(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str | None] | None = None,
    inherit_env: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``drivetrain ARGS`` run to its end from the repository root, its output as text.

    ``stdin`` is what it reads (else nothing: a test never shares its terminal); the process
    gets ``environment(env, inherit_env)``.  The timeout only bounds a hung command.
    """
    feed: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment(env, inherit_env),
        timeout=timeout,
        **feed,
    )
