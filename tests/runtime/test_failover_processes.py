"""Failover through the CLI: a frontend and two ``drivetrain worker --failover-lock`` processes.

The active engine is SIGKILLed with two requests on it: one already streaming (it must end with
an error event: its tokens came from the dead engine) and one still in prefill (it must be
answered by the shadow, the client seeing nothing of the failure).  The mocker runs 100 times
slower than a GPU (``--speedup-ratio 0.01``: 1.65 s of prefill) so that both states last long
enough to be certain of, even on a loaded machine.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.runtime.conftest import free_port
from tests.runtime.serving_processes import CliProcess

pytestmark = pytest.mark.slow


def engine(i: int, lock: Path, discovery: str, log: Path, ready: str) -> CliProcess:
    return CliProcess(
        [
            "worker",
            "--engine",
            "mocker",
            "--model-name",
            "tiny",
            "--speedup-ratio",
            "0.01",
            "--discovery",
            discovery,
            "--failover-lock",
            str(lock),
        ],
        ready,
        log,
        env={"ENGINE_ID": str(i)},
    )


def next_line(process: CliProcess, text: str, timeout: float = 30.0) -> str:
    """The next stdout line of ``process`` containing ``text``."""
    assert process.process is not None and process.process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.process.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited: {process.log.read_text()[-2000:]}")
        if text in line:
            return line
    raise TimeoutError(text)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics") as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )


def instances(url: str) -> list[str]:
    with urllib.request.urlopen(url + "/health") as resp:
        return [i["instance_id"] for i in json.load(resp)["instances"]]


async def test_sigkill_of_the_active_engine_hands_over_to_the_shadow(tmp_path: Path) -> None:
    discovery = f"file://{tmp_path / 'discovery'}"
    lock = tmp_path / "failover.lock"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    frontend = CliProcess(
        [
            *("frontend", "--port", str(port), "--host", "127.0.0.1"),
            *("--discovery", discovery, "--retry-window", "30"),
        ],
        "listening on",
        tmp_path / "frontend.log",
    )
    active = engine(0, lock, discovery, tmp_path / "engine-0.log", "worker ready")
    shadow = engine(1, lock, discovery, tmp_path / "engine-1.log", "worker standby")
    restarted = engine(0, lock, discovery, tmp_path / "engine-0b.log", "worker standby")
    started: list[CliProcess] = []
    try:
        for process in (frontend, active, shadow):
            started.append(process.start())
        assert "(engine 0)" in active.line and "(engine 1)" in shadow.line
        assert f"waiting for the failover lock {lock}" in shadow.line
        deadline = time.monotonic() + 20
        while len(instances(url)) != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(instances(url)) == 1  # the shadow is not registered

        async with aiohttp.ClientSession() as session:
            streaming = await session.post(
                url + "/v1/chat/completions",
                json={
                    "model": "tiny",
                    "messages": [{"role": "user", "content": "stream me"}],
                    "max_tokens": 40,
                    "stream": True,
                },
            )
            assert streaming.status == 200
            first = await streaming.content.readline()
            assert first.startswith(b"data: ")  # a token from the active engine
            waiting = asyncio.create_task(
                session.post(
                    url + "/v1/chat/completions",
                    json={
                        "model": "tiny",
                        "messages": [{"role": "user", "content": "wait for me"}],
                        "max_tokens": 2,
                    },
                )
            )
            while metric(url, "drivetrain_frontend_inflight_requests") < 2:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # at the active engine, in its 1.65 s of prefill
            assert active.process is not None
            active.process.send_signal(signal.SIGKILL)

            rest = (await streaming.read()).decode()
            assert "event: error" in rest and "[DONE]" not in rest  # it was streaming: it fails
            answered = await asyncio.wait_for(waiting, 60)
            assert answered.status == 200  # it had no token yet: the shadow answered it
            body = await answered.json()
            assert body["usage"]["completion_tokens"] == 2
        assert metric(url, "drivetrain_frontend_retries_total") >= 1
        assert "worker ready" in next_line(shadow, "worker ready")
        assert len(instances(url)) >= 1

        # The killed engine, started again (as its container would be), is the new shadow.
        started.append(restarted.start())
        assert "waiting for the failover lock" in restarted.line
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url + "/v1/chat/completions",
                json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
                | {"max_tokens": 1},
            ) as resp,
        ):
            assert resp.status == 200
    finally:
        for process in reversed(started):
            process.stop()
