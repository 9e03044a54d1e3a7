"""Run one input environment through the Python derivation or the POSIX script under dash,
and report the same thing for both: the environment the command starts with, or an error."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from drivetrain.distenv import DistEnvError, apply, script_path

DASH = shutil.which("dash")


@dataclass(frozen=True)
class Outcome:
    """``env`` when the command ran; ``error`` (the one-line message) when input was refused."""

    env: dict[str, str] | None
    error: str | None = None


def python_outcome(given: Mapping[str, str]) -> Outcome:
    try:
        return Outcome(env=apply(given))
    except DistEnvError as exc:
        return Outcome(env=None, error=str(exc))


def need_dash() -> str:
    if DASH is None:
        pytest.skip("dash is not installed (apt-get install dash); the sh version runs under it")
    return DASH


# The command the script execs prints its environment, NUL-separated, unchanged (a Python
# child would not do: it adds LC_CTYPE under the C locale).
_DUMP = [shutil.which("env") or "/usr/bin/env", "-0"]


def sh_outcome(given: Mapping[str, str]) -> Outcome:
    """``dash distenv.sh -- <dump env>`` with exactly ``given`` as the environment."""
    proc = subprocess.run(
        [need_dash(), str(script_path()), "--", *_DUMP],
        env=dict(given),
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == "", "nothing may run when the input is refused"
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("distenv: "), proc.stderr
        return Outcome(env=None, error=lines[0].removeprefix("distenv: "))
    env = dict(item.split("=", 1) for item in proc.stdout.split("\0") if item)
    # dash exports PWD on its own; it is not part of the derivation.
    if "PWD" not in given:
        env.pop("PWD", None)
    return Outcome(env=env)


def sh_print(given: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need_dash(), str(script_path()), "--print"],
        env=dict(given),
        capture_output=True,
        text=True,
        timeout=30,
    )
