"""Acceptance: ``drivetrain up -f examples/real-cpu.yaml`` serves the real tiny model.

One ``up`` for the module (the frontend and a transformers worker as real processes), driven by
the ``openai`` client: unary and streaming chat, seeds, ``max_tokens`` and stop strings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.cli.helpers import CLI
from tests.paths import REPO
from tests.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.torch]

MODEL = "tiny-llama"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def client(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAI]:
    assert tiny_llama == REPO / "examples" / "models" / "tiny-llama"  # what the graph names
    port = free_port()
    log = tmp_path_factory.mktemp("up") / "up.log"
    proc = subprocess.Popen(
        [*CLI, "up", "-f", "examples/real-cpu.yaml", "--port", str(port)],
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while "up: ready" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"drivetrain up did not become ready:\n{log.read_text()}")
            time.sleep(0.1)
        yield OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chat(client: OpenAI, **body: object) -> tuple[str, str, int]:
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, **body)  # type: ignore[call-overload]
    assert reply.usage is not None
    return (
        reply.choices[0].message.content,
        reply.choices[0].finish_reason,
        reply.usage.completion_tokens,
    )


def test_the_model_is_listed_with_its_context_window(client: OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    assert models[0].model_extra is not None and models[0].model_extra["context_window"] == 4096


def test_unary_chat_respects_max_tokens(client: OpenAI) -> None:
    text, reason, tokens = chat(client, max_tokens=12, seed=1)
    assert text and reason == "length" and tokens == 12


def test_streaming_chat_is_the_unary_text_token_by_token(client: OpenAI) -> None:
    unary, _, _ = chat(client, max_tokens=16, seed=3)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=16,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(deltas) == unary
    assert len(deltas) > 4
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 16


def test_the_same_seed_gives_the_same_text_and_another_seed_another(client: OpenAI) -> None:
    first, _, _ = chat(client, max_tokens=20, seed=42)
    again, _, _ = chat(client, max_tokens=20, seed=42)
    other, _, _ = chat(client, max_tokens=20, seed=43)
    assert first == again
    assert first != other


def test_stop_strings_end_the_reply_before_them(client: OpenAI) -> None:
    full, _, _ = chat(client, max_tokens=40, seed=9)
    stop = full[8:11]
    assert stop.strip(), full
    text, reason, tokens = chat(client, max_tokens=40, seed=9, stop=[stop])
    assert text == full[: full.index(stop)]
    assert reason == "stop" and tokens < 40
