"""End to end: `drivetrain up examples/agg.yaml` as a subprocess, used with the openai client,
then stopped with SIGINT (Ctrl-C) or SIGTERM: every child process must be gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.local.procs import alive, descendants
from tests.paths import REPO
from tests.ports import free_port

pytestmark = pytest.mark.slow


@dataclass
class Up:
    proc: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text()

    def children(self) -> set[int]:
        return descendants(self.proc.pid)

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def start_up(tmp_path: Path, *extra: str, graph: str = "examples/agg.yaml") -> Up:
    port = free_port()
    log = tmp_path / "up.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drivetrain.cli.main",
            "up",
            graph,
            "--port",
            str(port),
            *extra,
        ],
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    up = Up(proc, port, log)
    deadline = time.monotonic() + 60
    while "up: ready" not in up.output:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"drivetrain up did not become ready:\n{up.output}")
        time.sleep(0.1)
    return up


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    running = start_up(tmp_path)
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
        running.proc.wait()


@pytest.fixture
def client(up: Up) -> OpenAI:
    return OpenAI(base_url=f"http://127.0.0.1:{up.port}/v1", api_key="unused", max_retries=0)


def test_lists_the_graphs_model(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["tiny"]


def test_chat_completion(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=8
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 8
    assert reply.choices[0].message.content


def test_streaming_chat_completion(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=8,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason == "length"


def test_completion(client: OpenAI) -> None:
    reply = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=5)
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert reply.choices[0].text


def test_status_table_shows_every_replica(up: Up) -> None:
    out = up.output
    assert "serving tiny at http://127.0.0.1:" in out
    assert out.count("MockerWorker") >= 2 and "Frontend" in out


def test_logs_are_prefixed_by_service_and_replica(up: Up) -> None:
    out = up.output
    for name in ("Frontend/0", "MockerWorker/0", "MockerWorker/1"):
        assert f"\n{name}" in out and " | " in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_every_child_process(tmp_path: Path, sig: signal.Signals) -> None:
    up = start_up(tmp_path)
    children = up.children()
    assert len(children) >= 3  # a frontend and two workers (and anything they forked)
    assert up.stop(sig) == 0
    assert sorted(pid for pid in children if alive(pid)) == []
    assert "up: stopped" in up.output


def test_a_killed_worker_is_restarted(up: Up, client: OpenAI) -> None:
    pid = next(p for p in up.children() if b"worker" in Path(f"/proc/{p}/cmdline").read_bytes())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while "MockerWorker/0 exited" not in up.output and "MockerWorker/1 exited" not in up.output:
        assert time.monotonic() < deadline, up.output
        time.sleep(0.1)
    assert "restarting in" in up.output
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "still there?"}], max_tokens=4
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 4


def test_processes_register_in_the_graphs_namespace_and_component(up: Up) -> None:
    health = httpx.get(f"http://127.0.0.1:{up.port}/health", timeout=5).json()
    assert health["scope"] == "namespace 'default-agg'"
    instances = health["instances"]
    assert len(instances) == 2
    assert {(i["namespace"], i["component"]) for i in instances} == {
        ("default-agg", "MockerWorker")
    }


def test_sigterm_drains_a_request_in_flight_and_nothing_needs_sigkill(tmp_path: Path) -> None:
    """A stream of 3000 tokens (17 s at the mocker's speed 1) is running when `up` gets
    SIGTERM: after the 1 s drain it ends with an error event, and every process exits by
    itself, well within the grace (default: the drain + 5 s)."""
    up = start_up(tmp_path, "--drain-timeout", "1")
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "a long one"}],
        "max_tokens": 3000,
        "stream": True,
    }
    url = f"http://127.0.0.1:{up.port}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=30) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        assert next(lines).startswith("data: ")
        up.proc.send_signal(signal.SIGTERM)
        rest = list(lines)
    assert up.proc.wait(timeout=30) == 0
    assert any(line.startswith("event: error") for line in rest)
    assert "data: [DONE]" not in rest
    assert "SIGKILL" not in up.output
    assert "up: stopped" in up.output
