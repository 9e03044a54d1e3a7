"""End to end over processes: ``drivetrain frontend`` + ``drivetrain worker``, on file:// and etcd://."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.paths import shared
from tests.runtime.conftest import free_port
from tests.runtime.serving_processes import CliProcess, wait_for_instances, wait_for_models

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path, multiprocess_store_url: str) -> Iterator[tuple[str, list[CliProcess]]]:
    tiny = str(shared("models", "tiny"))
    discovery = multiprocess_store_url
    port = free_port()
    frontend = CliProcess(
        ["frontend", "--port", str(port), "--host", "127.0.0.1", "--discovery", discovery],
        "listening on",
        tmp_path / "frontend.log",
    )
    workers = [
        CliProcess(
            [
                "worker",
                "--engine",
                "mocker",
                "--model-name",
                "tiny",
                "--model-path",
                tiny,
                "--speedup-ratio",
                "1000000",
                "--discovery",
                discovery,
                "--lease-ttl",
                "3",
            ],
            "worker ready",
            tmp_path / f"worker{i}.log",
        )
        for i in range(2)
    ]
    started: list[CliProcess] = []
    try:
        for process in (frontend, *workers):
            started.append(process.start())
        url = f"http://127.0.0.1:{port}"
        wait_for_models(url, 2)
        yield url, workers
    finally:
        for process in reversed(started):
            process.stop()


async def test_models_chat_and_completions_through_the_openai_client(
    cluster: tuple[str, list[CliProcess]],
) -> None:
    url, _ = cluster
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    assert [m.id for m in (await client.models.list()).data] == ["tiny"]
    reply = await client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=16
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 16
    stream = await client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    completion = await client.completions.create(model="tiny", prompt="once upon", max_tokens=4)
    assert completion.usage is not None and completion.usage.completion_tokens == 4


async def test_a_killed_worker_is_routed_around(cluster: tuple[str, list[CliProcess]]) -> None:
    url, workers = cluster
    workers[0].signal(signal.SIGKILL)  # no deregistration: its records stay until the lease ends
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    for _ in range(6):
        reply = await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert reply.choices[0].finish_reason == "length"
    wait_for_instances(url, 1, timeout=15.0)  # the lease (3 s) runs out: it leaves /health


async def test_a_worker_stopped_with_sigterm_leaves_health_at_once(
    cluster: tuple[str, list[CliProcess]],
) -> None:
    url, workers = cluster
    assert workers[1].stop() == 0
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(url + "/health") as resp:
                if len((await resp.json())["instances"]) == 1:
                    break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the stopped worker is still listed")


async def test_a_thousand_concurrent_streams_all_complete(
    cluster: tuple[str, list[CliProcess]],
) -> None:
    url, _ = cluster
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "tell me"}],
        "max_tokens": 32,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> tuple[int, int, bool]:
            async with session.post(url + "/v1/chat/completions", json=body) as resp:
                text = await resp.text()
                events = text.strip().split("\n\n")
                usage = json.loads(events[-2].removeprefix("data: "))["usage"]
                return resp.status, usage["completion_tokens"], events[-1] == "data: [DONE]"

        results = await asyncio.gather(*[one() for _ in range(1000)])
    # all 32 tokens (counted in the usage chunk) and [DONE], every one of them
    assert results == [(200, 32, True)] * 1000


def test_a_restarted_frontend_finds_the_running_workers(tmp_path: Path) -> None:
    discovery = f"file://{tmp_path / 'store'}"
    port = free_port()

    def frontend(name: str) -> CliProcess:
        return CliProcess(
            ["frontend", "--port", str(port), "--host", "127.0.0.1", "--discovery", discovery],
            "listening on",
            tmp_path / f"{name}.log",
        )

    worker = CliProcess(
        ["worker", "--engine", "echo", "--model-name", "e", "--discovery", discovery],
        "worker ready",
        tmp_path / "worker.log",
    ).start()
    try:
        first = frontend("first").start()
        wait_for_models(f"http://127.0.0.1:{port}", 1)
        assert first.stop() == 0
        second = frontend("second").start()
        try:
            wait_for_models(f"http://127.0.0.1:{port}", 1)
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
            )
            reply = client.completions.create(model="e", prompt="back")
            assert reply.choices[0].text == "back"
        finally:
            second.stop()
    finally:
        worker.stop()
