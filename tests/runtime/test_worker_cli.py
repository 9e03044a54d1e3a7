"""``drivetrain worker`` / ``drivetrain frontend`` as commands: bad input is one line, exit 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.paths import REPO


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drivetrain.cli.main", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["worker", "--engine", "vllm", "--model-name", "m", "--discovery", "memory://"], "--engine"),
        (["worker", "--engine", "http", "--model-name", "m", "--discovery", "memory://"], "--upstream"),
        (["worker", "--engine", "echo", "--model-name", "m", "--discovery", "zk://x"], "--discovery"),
        (["worker", "--engine", "echo", "--model-name", "m", "--model-types", "chat,images",
          "--discovery", "memory://"], "--model-types"),
        (["worker", "--engine", "mocker", "--model-name", "m", "--model-path", "/nonexistent",
          "--discovery", "memory://"], "--model-path"),
        (["worker", "--engine", "mocker", "--model-name", "m", "--speedup-ratio", "0",
          "--discovery", "memory://"], "--speedup-ratio"),
        (["frontend", "--router", "fastest", "--discovery", "memory://"], "--router"),
        (["frontend", "--request-timeout", "0", "--discovery", "memory://"], "--request-timeout"),
    ],
)
def test_bad_flags_give_one_line_and_exit_1(args: list[str], needle: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 1
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
