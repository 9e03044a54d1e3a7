"""``drivetrain worker`` / ``drivetrain frontend`` as commands: a bad option value is one line
and exit 2 (usage); a model folder that is not there is invalid input, exit 1."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.runtime.conftest import free_port
from tests.runtime.serving_processes import CliProcess
from tests.tiny_llama import need_transformers


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drivetrain.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["worker", "--engine", "vllm", "--model-name", "m", "--discovery", "memory://"],
            "--engine",
        ),
        (
            ["worker", "--engine", "http", "--model-name", "m", "--discovery", "memory://"],
            "--upstream",
        ),
        (
            ["worker", "--engine", "echo", "--model-name", "m", "--discovery", "zk://x"],
            "--discovery",
        ),
        (
            [
                "worker",
                "--engine",
                "echo",
                "--model-name",
                "m",
                "--model-types",
                "chat,images",
                "--discovery",
                "memory://",
            ],
            "--model-types",
        ),
        (
            [
                "worker",
                "--engine",
                "mocker",
                "--model-name",
                "m",
                "--model-path",
                "/nonexistent",
                "--discovery",
                "memory://",
            ],
            "--model-path",
        ),
        (
            [
                "worker",
                "--engine",
                "mocker",
                "--model-name",
                "m",
                "--speedup-ratio",
                "0",
                "--discovery",
                "memory://",
            ],
            "--speedup-ratio",
        ),
        (["worker", "--engine", "mocker", "--discovery", "memory://"], "--model-name"),
        (
            [
                "worker",
                "--engine",
                "http",
                "--upstream",
                "http://127.0.0.1:1",
                "--health-interval",
                "0",
                "--discovery",
                "memory://",
            ],
            "--health-interval",
        ),
        (["frontend", "--router", "fastest", "--discovery", "memory://"], "--router"),
        (["frontend", "--request-timeout", "0", "--discovery", "memory://"], "--request-timeout"),
        (
            ["frontend", "--router", "kv", "--kv-overlap-weight", "-1", "--discovery", "memory://"],
            "--kv-overlap-weight",
        ),
        (
            ["frontend", "--disagg-threshold", "-5", "--discovery", "memory://"],
            "--disagg-threshold",
        ),
        (
            [
                "worker",
                "--engine",
                "echo",
                "--model-name",
                "m",
                "--disaggregation-mode",
                "prefill",
                "--discovery",
                "memory://",
            ],
            "--disaggregation-mode",
        ),
        (
            [
                "worker",
                "--engine",
                "mocker",
                "--model-name",
                "m",
                "--disaggregation-mode",
                "both",
                "--discovery",
                "memory://",
            ],
            "--disaggregation-mode",
        ),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(args: list[str], needle: str) -> None:
    result = run_cli(*args)
    assert result.returncode == (1 if needle == "--model-path" else 2)
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_worker_takes_its_request_plane_address_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("DRIVETRAIN_RPC_HOST", "127.0.0.1")
    monkeypatch.setenv("DRIVETRAIN_RPC_PORT", str(port))
    monkeypatch.setenv("DRIVETRAIN_ADVERTISE_HOST", "worker.example")
    worker = CliProcess(
        ["worker", "--engine", "echo", "--model-name", "m", "--discovery", f"file://{tmp_path}"],
        "worker ready",
        tmp_path / "worker.log",
    ).start()
    try:
        assert f"at worker.example:{port}," in worker.line
    finally:
        assert worker.stop() == 0


def test_frontend_on_a_port_in_use_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "frontend",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--discovery",
            f"file://{tmp_path}",
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "frontend could not start" in result.stderr


@pytest.mark.parametrize(
    ("extra", "needle", "code"),
    [
        # The README's exit-code table: a missing or malformed option is usage (2), a file
        # an option names that is not there is invalid input (1).
        ([], "--model-path", 2),
        (["--model-path", "/nonexistent"], "--model-path", 1),
        (["--model-path", "examples/models/tiny", "--device", "tpu"], "--device", 2),
        (["--model-path", "examples/models/tiny", "--max-queue", "-1"], "--max-queue", 2),
    ],
)
def test_bad_transformers_flags_give_one_line_and_the_table_s_exit_code(
    extra: list[str], needle: str, code: int
) -> None:
    need_transformers()
    result = run_cli(
        "worker",
        "--engine",
        "transformers",
        "--model-name",
        "m",
        "--discovery",
        "memory://",
        *extra,
    )
    assert result.returncode == code, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
