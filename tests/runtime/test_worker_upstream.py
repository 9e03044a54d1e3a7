"""The http engine as a sidecar: a worker registers only while its upstream answers.

The upstream here is an aiohttp stand-in whose health can be switched and which can be stopped
and started again on the same port (the real ``transformers serve`` behind workers is in
test_upstream_transformers_serve.py).  Worker, frontend and discovery are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from drivetrain.runtime.engines.http import HttpEngine
from drivetrain.runtime.worker import RunningWorker, WorkerConfig
from tests.runtime.conftest import free_port
from tests.runtime.serving_support import Stack, serving_stack

POLL = 0.2


class Upstream:
    """An OpenAI-style server: ``/health`` answers ``health`` (None: no such route)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.health: int | None = 200
        self.models = ["upstream-model"]
        self.seen: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        if self.health is None:
            raise web.HTTPNotFound()
        return web.json_response({"status": "ok"}, status=self.health)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m} for m in self.models]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append(body)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in ("fine", " thanks"):
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        end = {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2},
        }
        await resp.write(b"data: " + orjson.dumps(end) + b"\n\n")  # no [DONE], like some servers
        return resp


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    yield server
    await server.stop()


async def sidecar(stack: Stack, upstream: Upstream, model: str | None = None) -> RunningWorker:
    """A worker with the http engine in front of ``upstream``, polling every POLL seconds."""
    worker = RunningWorker(
        WorkerConfig(model_name=model, lease_ttl=5),
        HttpEngine(upstream.url, model, health_interval=POLL),
        store=stack.store,
    )
    await worker.start()
    stack.workers.append(worker)
    return worker


def instances(stack: Stack) -> int:
    return sum(stack.frontend.table.instance_counts().values())


async def test_registers_only_once_the_upstream_answers_under_its_model_name(
    upstream: Upstream,
) -> None:
    async with serving_stack() as stack:
        upstream.health = 503  # listening, still loading the model
        await upstream.start()
        worker = await sidecar(stack, upstream)
        await asyncio.sleep(POLL * 4)
        assert not worker.registered.is_set()
        assert instances(stack) == 0

        upstream.health = 200
        async with asyncio.timeout(5):
            await worker.registered.wait()
        assert worker.model_name == "upstream-model"
        await stack.wait_routable("upstream-model", worker.instance_id)


async def test_nothing_listening_means_not_registered(upstream: Upstream) -> None:
    async with serving_stack() as stack:
        worker = await sidecar(stack, upstream, model="given")
        await asyncio.sleep(POLL * 3)
        assert not worker.registered.is_set()
        await upstream.start()
        async with asyncio.timeout(5):
            await worker.registered.wait()
        assert worker.model_name == "given"


async def test_deregisters_at_the_first_failed_poll_and_comes_back_with_the_same_id(
    upstream: Upstream,
) -> None:
    async with serving_stack() as stack:
        await upstream.start()
        worker = await sidecar(stack, upstream)
        async with asyncio.timeout(5):
            await worker.registered.wait()
        await stack.wait_routable("upstream-model", worker.instance_id)

        await upstream.stop()
        # One poll interval plus the probe: the records are revoked, the frontend drops them.
        async with asyncio.timeout(POLL * 5 + 2):
            while worker.registered.is_set() or instances(stack):
                await asyncio.sleep(0.01)

        await upstream.start()
        await stack.wait_routable("upstream-model", worker.instance_id)
        reply = await stack.client().chat.completions.create(
            model="upstream-model", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "fine thanks"


async def test_an_unhealthy_answer_deregisters_too(upstream: Upstream) -> None:
    async with serving_stack() as stack:
        await upstream.start()
        worker = await sidecar(stack, upstream)
        async with asyncio.timeout(5):
            await worker.registered.wait()
        upstream.health = 500
        async with asyncio.timeout(POLL * 5 + 2):
            while worker.registered.is_set():
                await asyncio.sleep(0.01)


async def test_a_server_without_health_is_checked_on_v1_models(upstream: Upstream) -> None:
    async with serving_stack() as stack:
        upstream.health = None
        await upstream.start()
        worker = await sidecar(stack, upstream)
        async with asyncio.timeout(5):
            await worker.registered.wait()
        assert worker.model_name == "upstream-model"


async def test_model_messages_and_sampling_fields_go_upstream_unchanged(
    upstream: Upstream,
) -> None:
    async with serving_stack() as stack:
        await upstream.start()
        worker = await sidecar(stack, upstream)
        async with asyncio.timeout(5):
            await worker.registered.wait()
        await stack.wait_routable("upstream-model", worker.instance_id)
        messages = [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ]
        sampling = {
            "temperature": 0.3,
            "top_p": 0.8,
            "seed": 42,
            "stop": ["\n\n", "END"],
            "max_tokens": 7,
            "presence_penalty": 0.5,
        }
        extra = {"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}}
        reply = await stack.client().chat.completions.create(
            model="upstream-model", messages=messages, extra_body=extra, **sampling
        )
        assert reply.usage is not None and reply.usage.completion_tokens == 2
        sent = upstream.seen[-1]
        assert sent["model"] == "upstream-model"
        assert sent["messages"] == messages  # not templated, not flattened
        for key, value in {**sampling, **extra}.items():
            assert sent[key] == value
        assert sent["stream"] is True  # the worker always streams from upstream


def test_the_health_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="--health-interval"):
        HttpEngine("http://127.0.0.1:1", None, health_interval=0)
