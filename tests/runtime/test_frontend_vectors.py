"""Dynamo's HTTP behaviours (../shared/vectors/dynamo-runtime-vectors.json) against drivetrain.

Where drivetrain matches, the vector's expected status is asserted.  Where it deliberately
differs (docs/runtime.md, "Differences from Dynamo"), the difference itself is asserted, so a
change of behaviour in either direction fails here.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from drivetrain.runtime.engines.base import ModelType
from drivetrain.runtime.engines.echo import EchoEngine
from tests.paths import shared
from tests.runtime.serving_support import chat_body, closed_port_address, serving_stack
from tests.runtime.test_frontend_resilience import BreakingEngine


def vector(vector_id: str) -> dict[str, Any]:
    data = json.loads(shared("vectors", "dynamo-runtime-vectors.json").read_text())
    return next(v for v in data["vectors"] if v["id"] == vector_id)


async def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + path, json=body) as resp,
    ):
        return resp.status, await resp.text()


async def test_http_404_model() -> None:
    expect = vector("http-404-model")["expect"]
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine())
        status, text = await call(stack.url, "POST", "/v1/chat/completions", chat_body("unknown"))
        assert status == expect["status"]
        # Different body: OpenAI's error shape, so OpenAI clients raise NotFoundError(code=...).
        assert json.loads(text)["error"]["code"] == "model_not_found"


async def test_http_503_unavailable() -> None:
    expect = vector("http-503-unavailable")["expect"]
    async with serving_stack() as stack:
        await stack.add_records("tiny", closed_port_address(), ["chat"])
        status, text = await call(stack.url, "POST", "/v1/chat/completions", chat_body())
        assert status == expect["status"]
        assert json.loads(text)["error"]["code"] == "model_unavailable"


@pytest.mark.parametrize(
    ("vector_id", "body"),
    [
        ("http-stream-options", chat_body(stream_options={"include_usage": True})),
        ("http-empty-messages", {"model": "tiny", "messages": []}),
        ("http-422-to-400", {"model": "tiny", "messages": [{"content": "no role"}]}),
    ],
)
async def test_validation_vectors_are_400(vector_id: str, body: dict) -> None:
    expect = vector(vector_id)["expect"]
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine())
        status, text = await call(stack.url, "POST", "/v1/chat/completions", body)
        assert status == 400
        if "message_contains" in expect:
            assert expect["message_contains"] in json.loads(text)["error"]["message"]


async def test_http_stream_done_and_error() -> None:
    done, error = vector("http-stream-done")["expect"], vector("http-stream-error")["expect"]
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine(), model="ok")
        await stack.add_worker(BreakingEngine(good=1), model="bad")
        status, text = await call(
            stack.url, "POST", "/v1/chat/completions", chat_body("ok", stream=True)
        )
        assert (status, text.strip().split("\n\n")[-1]) == (done["status"], done["last_event"])
        status, text = await call(
            stack.url, "POST", "/v1/chat/completions", chat_body("bad", stream=True)
        )
        assert status == error["status"]
        assert "event: error" in text
        assert ("data: [DONE]" in text) == error["done_sent"]


async def test_http_live_and_models_empty() -> None:
    async with serving_stack() as stack:
        status, text = await call(stack.url, "GET", "/live")
        assert (status, json.loads(text)) == (200, vector("http-live")["expect"]["body"])
        status, text = await call(stack.url, "GET", "/v1/models")
        assert (status, json.loads(text)) == (200, vector("http-models-empty")["expect"]["body"])


async def test_ep_disabled_is_404_but_with_an_openai_body() -> None:
    expect = vector("ep-disabled-01")["expect"]
    async with serving_stack() as stack:
        status, text = await call(stack.url, "POST", "/v1/chat/completions", chat_body())
        assert status == expect["status"]
        assert expect["body"] == "" and json.loads(text)["error"]["code"] == "endpoint_disabled"


async def test_ep_default_embeddings_is_off_until_an_embeddings_model_registers() -> None:
    expect = vector("ep-default-01")["expect"]
    assert expect["Embedding"] is True  # Dynamo: on from the start
    async with serving_stack() as stack:
        status, _ = await call(stack.url, "POST", "/v1/embeddings", {"model": "x", "input": "y"})
        assert status == 404
        assert "endpoint_disabled" in _


@pytest.mark.parametrize(
    ("types", "routes"),
    [
        (("chat",), {"/v1/chat/completions"}),
        (("completions",), {"/v1/completions"}),
        (("chat", "completions"), {"/v1/chat/completions", "/v1/completions"}),
        (("embeddings",), {"/v1/embeddings"}),
    ],
)
async def test_endpoint_enabling_by_model_type(
    types: tuple[ModelType, ...], routes: set[str]
) -> None:
    bodies = {
        "/v1/chat/completions": chat_body(),
        "/v1/completions": {"model": "tiny", "prompt": "x"},
        "/v1/embeddings": {"model": "tiny", "input": "x"},
    }
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine(model_types=types))
        enabled = set()
        for path, body in bodies.items():
            status, _ = await call(stack.url, "POST", path, body)
            if status == 200:
                enabled.add(path)
            else:
                assert status == 404
        assert enabled == routes


async def test_no_removal_quirk_a_remaining_model_keeps_its_routes() -> None:
    quirk = vector("ep-remove-quirk")
    assert quirk["expect"]["flags_after"]["Completion"] is False  # what Dynamo does
    async with serving_stack() as stack:
        both = await stack.add_worker(EchoEngine(model_types=("chat", "completions")), model="A")
        await stack.add_worker(EchoEngine(model_types=("completions",)), model="B")
        await both.stop()
        stack.workers.remove(both)
        await stack.wait(lambda: "A" not in stack.frontend.table.models)
        status, _ = await call(stack.url, "POST", "/v1/completions", {"model": "B", "prompt": "x"})
        assert status == 200
        status, _ = await call(stack.url, "POST", "/v1/chat/completions", chat_body("B"))
        assert status == 404


async def test_health_is_scoped_unlike_dynamo() -> None:
    expect = vector("http-health-apr26")["expect"]
    assert expect["instances_scope"].startswith("ALL namespaces")
    from drivetrain.runtime.scope import NamespaceScope

    async with serving_stack(scope=NamespaceScope.from_args("ns-a")) as stack:
        await stack.add_worker(EchoEngine(), namespace="ns-b", wait=False)
        mine = await stack.add_worker(EchoEngine(), namespace="ns-a")  # after ns-b's events
        status, text = await call(stack.url, "GET", "/health")
        assert status == expect["status"]
        body = json.loads(text)
        assert body["status"] == expect["status_value"]
        assert [i["instance_id"] for i in body["instances"]] == [mine.instance_id]
