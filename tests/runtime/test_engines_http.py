"""The http engine fronts a real OpenAI-compatible HTTP server (an aiohttp stand-in for vLLM)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import orjson
import pytest
from aiohttp import web

from drivetrain.runtime.engines.http import HttpEngine
from tests.runtime.serving_support import serving_stack


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[dict]]]:
    """An OpenAI-style server that streams the words of the prompt and records what it got."""
    seen: list[dict] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body)
        if body["model"] != "upstream-name":
            return web.json_response({"error": {"message": "no such model"}}, status=404)
        words = body["messages"][-1]["content"].split()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for word in words:
            chunk = {
                "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]
            }
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        usage = {
            "choices": [],
            "usage": {
                "prompt_tokens": 11,
                "completion_tokens": len(words),
                "prompt_tokens_details": {"cached_tokens": 8},  # as vLLM reports a cache hit
            },
        }
        await resp.write(
            b"data: " + orjson.dumps(end) + b"\n\ndata: " + orjson.dumps(usage) + b"\n\n"
        )
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        data = [{"index": i, "embedding": [float(len(t))]} for i, t in enumerate(body["input"])]
        return web.json_response({"data": data[::-1], "usage": {"prompt_tokens": 4}})

    async def models(request: web.Request) -> web.Response:
        # No /health: the worker checks /v1/models instead before it registers.
        # vLLM and SGLang list the context length as max_model_len.
        return web.json_response({"data": [{"id": "upstream-name", "max_model_len": 2048}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", seen
    await runner.cleanup()


async def test_chat_streams_through_from_upstream_with_its_usage(
    upstream: tuple[str, list[dict]],
) -> None:
    url, seen = upstream
    async with serving_stack() as stack:
        await stack.add_worker(
            HttpEngine(url, "upstream-name", ("chat", "embeddings")), model="served"
        )
        reply = await stack.client().chat.completions.create(
            model="served", messages=[{"role": "user", "content": "a b c"}]
        )
        assert reply.choices[0].message.content == "a b c "
        assert reply.usage is not None and reply.usage.prompt_tokens == 11
        assert reply.usage.prompt_tokens_details is not None
        assert reply.usage.prompt_tokens_details.cached_tokens == 8
        assert seen[0]["model"] == "upstream-name"
        assert seen[0]["stream"] is True


async def test_embeddings_come_back_in_input_order(upstream: tuple[str, list[dict]]) -> None:
    url, _ = upstream
    async with serving_stack() as stack:
        await stack.add_worker(
            HttpEngine(url, "upstream-name", ("chat", "embeddings")), model="served"
        )
        result = await stack.client().embeddings.create(
            model="served", input=["aa", "b"], encoding_format="float"
        )
        assert [d.embedding for d in result.data] == [[2.0], [1.0]]


async def test_an_upstream_error_keeps_its_status(upstream: tuple[str, list[dict]]) -> None:
    url, _ = upstream
    async with serving_stack() as stack:
        await stack.add_worker(HttpEngine(url, "other-name"), model="served")
        with pytest.raises(openai.NotFoundError, match="no such model"):
            await stack.client().chat.completions.create(
                model="served", messages=[{"role": "user", "content": "x"}]
            )


def test_the_upstream_must_be_an_http_url() -> None:
    with pytest.raises(ValueError, match="--upstream"):
        HttpEngine("localhost:8000", "m")


def test_engine_info_lists_the_configured_model_types() -> None:
    assert HttpEngine("http://x", "m", ("chat",)).info().model_types == ("chat",)
    assert (
        json.dumps(list(HttpEngine("http://x", "m").info().model_types))
        == '["chat", "completions"]'
    )


async def test_the_http_engine_can_front_another_drivetrain_frontend() -> None:
    """A real OpenAI-compatible server upstream: drivetrain's own frontend with a mocker."""
    from drivetrain.runtime.engines.mocker import MockerEngine
    from tests.paths import shared

    async with serving_stack() as upstream_stack, serving_stack() as stack:
        await upstream_stack.add_worker(
            MockerEngine(model_path=str(shared("models", "tiny")), speedup_ratio=1e6)
        )
        await stack.add_worker(HttpEngine(upstream_stack.url, "tiny"), model="proxied")
        reply = await stack.client().chat.completions.create(
            model="proxied", messages=[{"role": "user", "content": "hi"}], max_tokens=6
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 6
        assert reply.choices[0].finish_reason == "length"


async def test_the_context_length_comes_from_the_upstream_or_the_flag_and_capacity_from_the_flag(
    upstream: tuple[str, list[dict]],
) -> None:
    url, _ = upstream
    async with serving_stack() as stack:
        await stack.add_worker(HttpEngine(url, "upstream-name"), model="listed")
        await stack.add_worker(
            HttpEngine(url, "upstream-name", context_length=1000, max_num_seqs=3), model="flagged"
        )
        models = {m.id: m for m in (await stack.client().models.list()).data}
        assert models["listed"].model_extra["context_window"] == 2048  # type: ignore[index]
        assert models["flagged"].model_extra["context_window"] == 1000  # type: ignore[index]
        capacities = {r.model_names[0]: r.capacity for r in stack.frontend.table.instances.values()}
        assert capacities == {"listed": None, "flagged": 3}
