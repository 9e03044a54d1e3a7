"""A client that goes away cancels its request on the worker, whatever the route and mode.

Each request would run for many seconds; the client disconnects while the worker is busy with
it, and the worker's count of requests in flight (its own, and the one it reports to the
frontend's ``/health``) must return to zero at once, not when the generation would have ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from drivetrain.runtime.engines.mocker import MockerEngine
from tests.paths import shared
from tests.runtime.serving_support import Stack, serving_stack

LONG = 2000  # tokens: about 11 s at the mocker's speed 1


def mocker(speedup: float = 1.0) -> MockerEngine:
    return MockerEngine(
        model_path=str(shared("models", "tiny")),
        speedup_ratio=speedup,
        model_types=("chat", "completions", "embeddings"),
    )


def request_for(endpoint: str, stream: bool) -> tuple[str, dict[str, Any]]:
    if endpoint == "chat":
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
        return "/v1/chat/completions", {**body, "max_tokens": LONG, "stream": stream}
    if endpoint == "completions":
        body = {"model": "tiny", "prompt": "hi", "max_tokens": LONG, "stream": stream}
        return "/v1/completions", body
    return "/v1/embeddings", {"model": "tiny", "input": "word " * 500}


async def health_active(stack: Stack) -> int | None:
    async with aiohttp.ClientSession() as session, session.get(stack.url + "/health") as resp:
        (instance,) = (await resp.json())["instances"]
        return instance["active"]  # type: ignore[no-any-return]


def frontend_received(stack: Stack) -> bool:
    """Whether the frontend has the first frame of its (only) request from the worker."""
    return any(s.received for c in stack.frontend.table.clients() for s in c.streams.values())


async def disconnect_midway(
    stack: Stack, path: str, body: dict[str, Any], stream: bool, after_first: bool = True
) -> None:
    """Send the request, wait until the worker is busy with it (and, ``after_first``, until
    tokens flow), then drop the connection."""
    worker = stack.workers[0]
    session = aiohttp.ClientSession()
    try:
        if stream:
            resp = await session.post(stack.url + path, json=body)
            assert resp.status == 200
            assert (await resp.content.readuntil(b"\n\n")).startswith(b"data: ")
            assert worker.server.in_flight == 1
            resp.close()
        else:
            task = asyncio.create_task(session.post(stack.url + path, json=body))
            await stack.wait(lambda: worker.server.in_flight == 1)
            if after_first:
                await stack.wait(lambda: frontend_received(stack))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        await session.close()


@pytest.mark.parametrize(
    ("endpoint", "stream"),
    [
        ("chat", True),
        ("chat", False),
        ("completions", True),
        ("completions", False),
        ("embeddings", False),
    ],
)
async def test_a_client_that_leaves_cancels_the_work_on_the_worker(
    endpoint: str, stream: bool
) -> None:
    # Embeddings: a simulated prefill of 500 words at speed 0.001 lasts minutes (its one
    # frame is the result, so it is left before it).
    engine = mocker(0.001 if endpoint == "embeddings" else 1.0)
    async with serving_stack() as stack:
        worker = await stack.add_worker(engine)
        path, body = request_for(endpoint, stream)
        await disconnect_midway(stack, path, body, stream, after_first=endpoint != "embeddings")
        await stack.wait(lambda: worker.server.in_flight == 0, timeout=5.0)
        assert engine.slots.running == 0  # the mocker freed the batch slot and its KV blocks
        metrics = stack.frontend.frontend.metrics
        await stack.wait(lambda: metrics.inflight["tiny"] == 0, timeout=5.0)
        label = "chat_completions" if endpoint == "chat" else endpoint
        mode = "stream" if stream else "unary"
        assert metrics.requests[("tiny", label, "499", mode)] == 1
        # The worker told the frontend: /health shows its count back at zero.
        deadline = asyncio.get_running_loop().time() + 5.0
        while await health_active(stack) != 0:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_leaves_before_the_first_token_cancels_the_prefill(
    stream: bool,
) -> None:
    engine = mocker(0.01)  # a prefill of 1.6 s
    async with serving_stack() as stack:
        worker = await stack.add_worker(engine)
        path, body = request_for("chat", stream)
        await disconnect_midway(stack, path, body, False, after_first=False)
        assert not frontend_received(stack)
        await stack.wait(lambda: worker.server.in_flight == 0, timeout=5.0)
        assert engine.slots.running == 0


async def test_a_client_that_leaves_while_queued_frees_its_place() -> None:
    engine = MockerEngine(model_path=str(shared("models", "tiny")), max_num_seqs=1)
    async with serving_stack() as stack:
        worker = await stack.add_worker(engine)
        session = aiohttp.ClientSession()
        try:
            path, body = request_for("chat", False)
            running = asyncio.create_task(session.post(stack.url + path, json=body))
            await stack.wait(lambda: worker.server.in_flight == 1)
            queued = asyncio.create_task(session.post(stack.url + path, json=body))
            state = stack.frontend.table.state("tiny")
            assert state is not None
            await stack.wait(lambda: state.gate.waiting == 1)
            queued.cancel()
            await stack.wait(lambda: state.gate.waiting == 0, timeout=5.0)
            assert worker.server.in_flight == 1  # the queued one never reached the worker
            running.cancel()
            await stack.wait(lambda: worker.server.in_flight == 0, timeout=5.0)
            await asyncio.gather(running, queued, return_exceptions=True)
        finally:
            await session.close()
