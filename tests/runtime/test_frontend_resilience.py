"""Failures the frontend must contain: dead instances, stalled workers, streams that break."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from drivetrain.runtime.engines.base import Chunk, Embeddings, Finish, ModelInfo, Op
from drivetrain.runtime.engines.echo import EchoEngine
from tests.runtime.serving_support import (
    StalledServer,
    chat_body,
    closed_port_address,
    serving_stack,
)


class BreakingEngine:
    """Sends ``good`` tokens, then fails (raises, or waits forever for the test to kill it)."""

    def __init__(self, good: int = 2, hang: bool = False) -> None:
        self.good = good
        self.hang = hang
        self.started = asyncio.Event()

    def info(self) -> ModelInfo:
        return ModelInfo(model_types=("chat",))

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def generate(self, op: Op, body: dict[str, Any]) -> AsyncIterator[Chunk | Finish]:
        for i in range(self.good):
            yield Chunk(f"t{i}")
        self.started.set()
        if self.hang:
            await asyncio.Event().wait()
        raise RuntimeError("the GPU caught fire")

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        raise NotImplementedError


async def sse_events(url: str, body: dict) -> list[str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        return (await resp.text()).strip().split("\n\n")


async def test_a_dead_instance_is_retried_on_another_before_the_first_token() -> None:
    async with serving_stack(router="round-robin") as stack:
        await stack.add_records("tiny", closed_port_address(), ["chat"])
        await stack.add_worker(EchoEngine())
        client = stack.client()
        replies = await asyncio.gather(
            *[
                client.chat.completions.create(
                    model="tiny", messages=[{"role": "user", "content": f"m{i}"}]
                )
                for i in range(6)
            ]
        )
        assert [r.choices[0].message.content for r in replies] == [f"m{i}" for i in range(6)]
        assert stack.frontend.frontend.metrics.retries["tiny"] >= 1


async def test_a_stalled_worker_does_not_block_requests_to_a_healthy_one() -> None:
    stalled = StalledServer()
    address = await stalled.start()
    try:
        async with serving_stack(router="round-robin", request_timeout=4.0) as stack:
            await stack.add_records("tiny", address, ["chat"])
            await stack.add_worker(EchoEngine())
            client = stack.client()

            async def ask(i: int) -> str:
                try:
                    r = await client.chat.completions.create(
                        model="tiny", messages=[{"role": "user", "content": f"m{i}"}]
                    )
                    return r.choices[0].message.content or ""
                except openai.APIStatusError as exc:
                    return f"status {exc.status_code}"

            tasks = [asyncio.create_task(ask(i)) for i in range(6)]
            done, pending = await asyncio.wait(tasks, timeout=3.0)
            # Half went to the healthy worker and are answered while the others still hang.
            assert sorted(t.result() for t in done) == ["m1", "m3", "m5"] or sorted(
                t.result() for t in done
            ) == ["m0", "m2", "m4"]
            assert len(pending) == 3
            assert stalled.requests > 0
            late = await asyncio.gather(*pending)
            assert late == ["status 504"] * 3
    finally:
        await stalled.stop()


async def test_an_engine_failing_midstream_ends_the_sse_stream_with_an_error_event() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(BreakingEngine(good=2))
        events = await sse_events(stack.url, chat_body(stream=True))
        assert events[0].startswith("data: ")
        assert events[-1].startswith("event: error\ndata: ")
        assert "the GPU caught fire" in events[-1]
        assert "data: [DONE]" not in events


async def test_the_openai_client_raises_on_a_midstream_error() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(BreakingEngine(good=1))
        stream = await stack.client().chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x"}], stream=True
        )
        seen: list[str] = []
        with pytest.raises(openai.APIError, match="GPU caught fire"):
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
        assert seen == ["t0"]


async def test_a_worker_dying_midstream_ends_the_stream_with_an_error_event() -> None:
    async with serving_stack() as stack:
        engine = BreakingEngine(good=2, hang=True)
        worker = await stack.add_worker(engine)
        task = asyncio.create_task(sse_events(stack.url, chat_body(stream=True)))
        await engine.started.wait()
        for conn in list(worker.server.connections):
            conn.close()  # the worker's side of the connection goes away mid-stream
        events = await task
        assert events[-1].startswith("event: error")
        assert "data: [DONE]" not in events


async def test_an_engine_error_before_any_token_is_a_json_error_not_a_stream() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(BreakingEngine(good=0))
        async with (
            aiohttp.ClientSession() as session,
            session.post(stack.url + "/v1/chat/completions", json=chat_body(stream=True)) as resp,
        ):
            assert resp.status == 500
            assert "GPU caught fire" in (await resp.json())["error"]["message"]


async def test_least_loaded_router_avoids_the_instance_with_requests_in_flight() -> None:
    stalled = StalledServer()
    address = await stalled.start()
    try:
        async with serving_stack(router="least-loaded", request_timeout=10.0) as stack:
            await stack.add_records("tiny", address, ["chat"])
            await stack.add_worker(EchoEngine())
            client = stack.client()
            sent: list[asyncio.Task[Any]] = []
            while stalled.requests == 0:  # ties are broken at random: send until one hangs
                sent.append(
                    asyncio.create_task(
                        client.chat.completions.create(
                            model="tiny", messages=[{"role": "user", "content": "a"}]
                        )
                    )
                )
                await asyncio.sleep(0.05)
            replies = [
                await client.chat.completions.create(
                    model="tiny", messages=[{"role": "user", "content": f"b{i}"}]
                )
                for i in range(5)
            ]
            assert [r.choices[0].message.content for r in replies] == [f"b{i}" for i in range(5)]
            await stalled.stop()
            await asyncio.gather(*sent, return_exceptions=True)
    finally:
        await stalled.stop()


async def test_a_client_leaving_midstream_stops_the_generation_on_the_worker() -> None:
    async with serving_stack() as stack:
        worker = await stack.add_worker(EchoEngine(delay_ms=20))
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                stack.url + "/v1/chat/completions", json=chat_body(text="x" * 500, stream=True)
            ) as resp,
        ):
            await resp.content.readuntil(b"\n\n")
            assert worker.server.in_flight == 1
        # The session is closed: the frontend's next write fails and it cancels the stream.
        await stack.wait(lambda: worker.server.in_flight == 0, timeout=5.0)


async def test_a_stream_outliving_the_request_timeout_ends_with_an_error_event() -> None:
    async with serving_stack(request_timeout=1.0) as stack:
        await stack.add_worker(EchoEngine(delay_ms=20))
        events = await sse_events(stack.url, chat_body(text="y" * 200, stream=True))
        assert events[0].startswith("data: ")
        assert events[-1].startswith("event: error")
        assert "timed out" in events[-1]
        assert "data: [DONE]" not in events
