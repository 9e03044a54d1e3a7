"""Frontend and worker as real subprocesses (``python -m drivetrain.cli.main ...``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.paths import REPO


class CliProcess:
    """A drivetrain command that prints a readiness line on stdout."""

    def __init__(
        self, args: list[str], ready: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.args = args
        self.ready = ready
        self.log = log
        self.env = env or {}  # on top of this process's environment
        self.process: subprocess.Popen[str] | None = None
        self.line = ""

    def start(self, timeout: float = 30.0) -> CliProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self._log = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "drivetrain.cli.main", *self.args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.args[0]} exited: {self.log.read_text()[-2000:]}")
            if self.ready in line:
                self.line = line
                return self
        raise TimeoutError(f"{self.args[0]} not ready: {self.log.read_text()[-2000:]}")

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self._log.close()


def _instances(url: str) -> int:
    with urllib.request.urlopen(url + "/health") as resp:
        return len(json.load(resp)["instances"])


def wait_for_models(url: str, count: int, timeout: float = 20.0) -> None:
    """Wait until the frontend at ``url`` lists at least ``count`` instances."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _instances(url) >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{count} instances never appeared at {url}")


def wait_for_model_listed(url: str, model: str, timeout: float = 20.0) -> None:
    """Wait until ``/v1/models`` lists ``model``: a worker writes its instance record and its
    model card one after the other, so ``/health`` can show the instance a moment earlier."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/v1/models") as resp:
            if model in {m["id"] for m in json.load(resp)["data"]}:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} never listed the model {model}")


def wait_for_instances(url: str, count: int, timeout: float = 20.0) -> None:
    """Wait until the frontend at ``url`` lists exactly ``count`` instances."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _instances(url) == count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{url} never listed exactly {count} instances")
