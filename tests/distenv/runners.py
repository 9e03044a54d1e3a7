"""Run one input environment through the Python derivation or the POSIX script under dash,
and report the same thing for both: the environment the command starts with, or an error."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from drivetrain.distenv import DistEnvError, apply, script_path, sh_quote

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


#: Variables a shell exports on its own (bash: SHLVL and `_`; busybox: a default PATH); not
#: part of the derivation.
_SHELL_OWNED = ("PWD", "OLDPWD", "SHLVL", "_", "PATH")


def shell_argv(shell: str) -> list[str]:
    """``dash``, ``bash`` or ``busybox`` (its ``sh``), skipping when it is not installed."""
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed (apt-get install {shell})")
    return [path, "sh"] if shell == "busybox" else [path]


def source_and_dump(
    shell: str, given: Mapping[str, str], prelude: str = ""
) -> tuple[int, str, str]:
    """An entrypoint that runs ``prelude``, sources distenv.sh, then prints the status that
    returned and its environment, NUL-separated: (status, env text, stderr)."""
    entrypoint = (
        f"{prelude}\n"
        f". {sh_quote(str(script_path()))}\n"
        "_st=$?\n"
        "printf 'status=%s\\0' \"$_st\"\n"
        f"exec {' '.join(_DUMP)}\n"
    )
    proc = subprocess.run(
        [*shell_argv(shell), "-c", entrypoint, "entrypoint"],
        env=dict(given),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, f"the entrypoint did not run to its end: {proc.stderr}"
    status, _, env = proc.stdout.partition("\0")
    return int(status.removeprefix("status=")), env, proc.stderr


def parse_env(text: str, given: Mapping[str, str]) -> dict[str, str]:
    env = dict(item.split("=", 1) for item in text.split("\0") if item)
    for name in _SHELL_OWNED:
        if name not in given:
            env.pop(name, None)
    return env


def sourced_outcome(shell: str, given: Mapping[str, str]) -> Outcome:
    """``. distenv.sh`` from an entrypoint under ``shell``: what the entrypoint's later
    commands see, or the refusal (the entrypoint still runs on, with nothing exported)."""
    status, env_text, stderr = source_and_dump(shell, given)
    env = parse_env(env_text, given)
    if status != 0:
        assert env == dict(given), "a refused input must export nothing"
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("distenv: "), stderr
        return Outcome(env=None, error=lines[0].removeprefix("distenv: "))
    assert stderr == ""
    return Outcome(env=env)


def sh_status(given: Mapping[str, str]) -> int:
    """The exit status of the script run as a command (``dash distenv.sh --print``)."""
    return sh_print(given).returncode
