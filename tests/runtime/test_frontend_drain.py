"""Stopping with a bound: stop admitting, let requests in flight finish for the drain, then end
the rest cleanly (an error event or a 503), in-process and as real processes on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp

from drivetrain.runtime.engines.mocker import MockerEngine
from tests.paths import shared
from tests.runtime.serving_processes import CliProcess
from tests.runtime.serving_support import serving_stack


def mocker(speedup: float = 1.0) -> MockerEngine:
    return MockerEngine(model_path=str(shared("models", "tiny")), speedup_ratio=speedup)


def chat(max_tokens: int, stream: bool = False) -> dict[str, Any]:
    return {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
        "stream": stream,
    }


async def read_stream(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> str:
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        return (await resp.read()).decode()


async def status_of(session: aiohttp.ClientSession, url: str, path: str, **kw: Any) -> int:
    method = session.post if "json" in kw else session.get
    async with method(url + path, **kw) as resp:
        await resp.read()
        return resp.status


async def test_a_drain_stops_admitting_then_ends_what_outlasts_it(tmp_path: Path) -> None:
    async with serving_stack(drain_timeout=0.5) as stack:
        worker = await stack.add_worker(mocker())
        async with aiohttp.ClientSession() as session:
            long = asyncio.create_task(read_stream(session, stack.url, chat(2000, stream=True)))
            unary = asyncio.create_task(
                session.post(stack.url + "/v1/chat/completions", json=chat(2000))
            )
            short = asyncio.create_task(read_stream(session, stack.url, chat(20, stream=True)))
            await stack.wait(lambda: worker.server.in_flight == 3)
            stopping = asyncio.create_task(stack.frontend.stop())
            await stack.wait(lambda: stack.frontend.frontend.shutting_down)
            # While draining: not live, and new requests get a 503 at once.
            assert await status_of(session, stack.url, "/live") == 503
            assert await status_of(session, stack.url, "/v1/chat/completions", json=chat(4)) == 503
            events = (await long).strip().split("\n\n")
            assert events[0].startswith("data: ")
            assert events[-1].startswith("event: error")
            assert "shutting down" in events[-1] and "data: [DONE]" not in events
            resp = await unary
            assert resp.status == 503
            assert (await resp.json())["error"]["code"] == "shutting_down"
            assert (await short).strip().endswith("data: [DONE]")  # finished within the drain
            await stopping
        # The requests it ended were cancelled on the worker too.
        await stack.wait(lambda: worker.server.in_flight == 0, timeout=5.0)
    assert stack.frontend.frontend.metrics.rejected[("", "shutting_down")] == 1


async def test_a_stopping_worker_ends_what_outlasts_its_drain_with_an_error() -> None:
    async with serving_stack() as stack:
        worker = await stack.add_worker(mocker())
        worker.config.drain_timeout = 0.3
        async with aiohttp.ClientSession() as session:
            long = asyncio.create_task(read_stream(session, stack.url, chat(2000, stream=True)))
            await stack.wait(lambda: worker.server.in_flight == 1)
            await worker.stop()
            stack.workers.remove(worker)
            events = (await long).strip().split("\n\n")
        assert events[-1].startswith("event: error") and "worker stopped" in events[-1]


async def test_a_draining_worker_refuses_new_requests_and_the_frontend_retries_elsewhere() -> None:
    """A frontend that has not yet seen a stopping worker deregister still routes to it; the
    worker's refusal is retried on another instance."""
    async with serving_stack(router="round-robin") as stack:
        draining = await stack.add_worker(mocker(1e6))
        await stack.add_worker(mocker(1e6))
        draining.server.draining = True  # as stop() sets it, before the records go
        async with aiohttp.ClientSession() as session:
            statuses = [
                await status_of(session, stack.url, "/v1/chat/completions", json=chat(4))
                for _ in range(4)
            ]
        assert statuses == [200] * 4
        assert stack.frontend.frontend.metrics.retries["tiny"] >= 1


def test_sigterm_drains_the_frontend_process_and_it_exits_cleanly(tmp_path: Path) -> None:
    discovery = f"file://{tmp_path / 'discovery'}"
    frontend = CliProcess(
        ["frontend", "--port", "0", "--host", "127.0.0.1", "--drain-timeout", "1"],
        "listening on",
        tmp_path / "frontend.log",
        env={"DRIVETRAIN_DISCOVERY": discovery},
    )
    tiny = str(shared("models", "tiny"))
    worker = CliProcess(
        ["worker", "--engine", "mocker", "--model-name", "tiny", "--model-path", tiny],
        "worker ready",
        tmp_path / "worker.log",
        env={"DRIVETRAIN_DISCOVERY": discovery},
    )
    frontend.start()
    worker.start()
    try:
        url = frontend.line.split("listening on ")[1].split()[0]

        async def scenario() -> tuple[str, float]:
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 20
                while await status_of(session, url, "/v1/chat/completions", json=chat(1)) != 200:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
                long = asyncio.create_task(read_stream(session, url, chat(3000, stream=True)))
                await asyncio.sleep(0.5)
                frontend.signal(signal.SIGTERM)
                signalled = time.monotonic()
                return await long, signalled

        text, signalled = asyncio.run(scenario())
        assert frontend.process is not None
        assert frontend.process.wait(timeout=15) == 0
        took = time.monotonic() - signalled
        events = text.strip().split("\n\n")
        assert events[-1].startswith("event: error") and "shutting down" in events[-1]
        assert took < 10  # the 1 s drain, not the 17 s the stream would have lasted
        assert "ended 1 requests still running after the 1s drain" in frontend.log.read_text()
    finally:
        worker.stop()
        frontend.stop()
