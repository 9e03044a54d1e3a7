"""Stopping a worker: records go first, running requests finish, then the connections close."""

from __future__ import annotations

import asyncio

import aiohttp

from drivetrain.runtime.engines.echo import EchoEngine
from tests.runtime.serving_support import chat_body, serving_stack


async def test_a_request_running_at_shutdown_completes() -> None:
    async with serving_stack() as stack:
        worker = await stack.add_worker(EchoEngine(delay_ms=20))
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                stack.url + "/v1/chat/completions", json=chat_body(text="abcdefghij", stream=True)
            ) as resp,
        ):
            first = await resp.content.readuntil(b"\n\n")
            assert first.startswith(b"data: ")
            stopping = asyncio.create_task(worker.stop())
            await stack.wait(lambda: "tiny" not in stack.frontend.table.models)
            rest = (await resp.content.read()).decode()
            await stopping
        stack.workers.remove(worker)
        assert rest.strip().endswith("data: [DONE]")
        assert "event: error" not in rest


async def test_after_shutdown_the_model_is_gone_from_the_frontend() -> None:
    async with serving_stack() as stack:
        worker = await stack.add_worker(EchoEngine())
        await worker.stop()
        stack.workers.remove(worker)
        await stack.wait(lambda: not stack.frontend.table.models)
        assert [m.id for m in (await stack.client().models.list()).data] == []
