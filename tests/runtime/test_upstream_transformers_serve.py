"""An independent OpenAI-compatible server behind drivetrain: ``transformers serve``.

``transformers serve`` (the server that ships with transformers, FastAPI + uvicorn) serves the
tiny random Llama model; a drivetrain worker with ``--engine http`` and no ``--model-name`` sits
in front of it and a drivetrain frontend in front of that, all real processes.  The ``openai``
client drives them.  Replies through drivetrain are compared with the same request sent to
``transformers serve`` directly: drivetrain must pass them through, not reinterpret them.

Everything runs with ``OMP_NUM_THREADS=1``: the model is too small to gain from more threads,
and on a busy 2-core machine OpenMP threads spin waiting for each other.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.runtime.conftest import free_port
from tests.runtime.serving_processes import CliProcess, wait_for_instances, wait_for_model_listed

pytestmark = [pytest.mark.slow, pytest.mark.torch]

SERVE = Path(sys.executable).parent / "transformers"


class TransformersServe:
    """``transformers serve MODEL`` on a fixed loopback port; can be killed and started again."""

    def __init__(self, model: Path, log: Path) -> None:
        self.model = model
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        args = [str(SERVE), "serve", str(self.model), "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--device", "cpu", "--log-level", "warning"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"transformers serve not up: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Served:
    upstream: TransformersServe
    frontend: CliProcess
    worker: CliProcess
    frontend_url: str

    @property
    def model(self) -> str:
        return str(self.upstream.model)  # transformers serve names a model by its path

    def through_drivetrain(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.frontend_url + "/v1", api_key="x", max_retries=0)

    def direct(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.upstream.url + "/v1", api_key="x", max_retries=0)


@pytest.fixture(scope="module")
def served(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    for module in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(module) is None or not SERVE.exists():
            pytest.skip("transformers serve needs transformers[serving] (scripts/test-deps.sh)")
    tmp = tmp_path_factory.mktemp("serve")
    upstream = TransformersServe(tiny_llama, tmp / "serve.log")
    upstream.start()
    port = free_port()
    discovery = f"file://{tmp / 'discovery'}"
    frontend_args = ["frontend", "--host", "127.0.0.1", "--port", str(port)]
    frontend = CliProcess(
        [*frontend_args, "--discovery", discovery, "--retry-window", "1"],
        "frontend listening",
        tmp / "frontend.log",
    ).start()
    worker_args = ["worker", "--engine", "http", "--upstream", upstream.url]
    worker_args += ["--health-interval", "0.25", "--discovery", discovery]
    worker = CliProcess(worker_args, "worker ready", tmp / "worker.log")
    try:
        worker.start(timeout=60)
        url = f"http://127.0.0.1:{port}"
        wait_for_instances(url, 1)
        yield Served(upstream, frontend, worker, url)
    finally:
        worker.stop()
        frontend.stop()
        upstream.kill()


CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 24}


def test_the_worker_registers_under_the_upstreams_model_name(served: Served) -> None:
    assert f"model {served.model!r} (http)" in served.worker.line
    assert [m.id for m in served.through_drivetrain().models.list()] == [served.model]


def stream_text(client: openai.OpenAI, model: str, body: dict[str, Any]) -> str:
    stream = client.chat.completions.create(model=model, stream=True, **body)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_a_unary_chat_is_what_the_server_itself_answers(served: Served) -> None:
    ours = served.through_drivetrain().chat.completions.create(model=served.model, **CHAT)
    theirs = served.direct().chat.completions.create(model=served.model, **CHAT)
    # The http engine always streams from upstream; transformers serve's stream leaves out a
    # last incomplete UTF-8 character that its unary reply shows as U+FFFD, so the unary text
    # is compared with its stream.
    assert ours.choices[0].message.content == stream_text(served.direct(), served.model, CHAT)
    assert ours.choices[0].message.content
    assert ours.choices[0].finish_reason == theirs.choices[0].finish_reason == "length"
    assert ours.usage is not None and theirs.usage is not None
    assert ours.usage.prompt_tokens == theirs.usage.prompt_tokens > 0
    assert ours.usage.completion_tokens == theirs.usage.completion_tokens == 24


def test_a_stream_carries_the_same_text_token_by_token_with_usage(served: Served) -> None:
    client = served.through_drivetrain()
    unary = client.chat.completions.create(model=served.model, **CHAT)
    stream = client.chat.completions.create(
        model=served.model, stream=True, stream_options={"include_usage": True}, **CHAT
    )
    deltas, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            deltas.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(deltas) == unary.choices[0].message.content
    assert len([d for d in deltas if d]) > 5
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 24


def test_stop_sequences_reach_the_server_and_its_answer_comes_back(served: Served) -> None:
    full = served.direct().chat.completions.create(model=served.model, **CHAT)
    text = full.choices[0].message.content or ""
    stop = text[6:9]
    assert stop.strip(), text
    body = dict(CHAT, stop=[stop])
    ours = served.through_drivetrain().chat.completions.create(model=served.model, **body)
    theirs = served.direct().chat.completions.create(model=served.model, **body)
    assert ours.choices[0].finish_reason == theirs.choices[0].finish_reason == "stop"
    assert ours.choices[0].message.content == stream_text(served.direct(), served.model, body)
    assert len(ours.choices[0].message.content or "") < len(text)
    assert ours.usage is not None and ours.usage.completion_tokens < 24


def test_the_upstream_dying_mid_stream_ends_the_stream_with_an_error_then_it_comes_back(
    served: Served,
) -> None:
    client = served.through_drivetrain()
    stream = client.chat.completions.create(
        model=served.model,
        messages=[{"role": "user", "content": "go on"}],
        max_tokens=4000,
        stream=True,
    )
    received = 0
    with pytest.raises(openai.APIError):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
                if received == 5:
                    served.upstream.kill()
            if chunk.choices and chunk.choices[0].finish_reason:
                pytest.fail("the stream finished before the upstream was killed")
    assert received >= 5

    # Deregistered within a poll or so: the frontend has nothing to route to.  It remembers the
    # model (a restart may be under way): 503 once the retry window passed, not a 404.
    wait_for_instances(served.frontend_url, 0, timeout=10)
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model=served.model, **CHAT)
    assert err.value.status_code == 503 and err.value.code == "model_unavailable"

    served.upstream.start()  # same port, as a restarted engine container
    wait_for_instances(served.frontend_url, 1, timeout=20)
    wait_for_model_listed(served.frontend_url, served.model)
    again = client.chat.completions.create(model=served.model, **CHAT)
    assert again.usage is not None and again.usage.completion_tokens == 24
