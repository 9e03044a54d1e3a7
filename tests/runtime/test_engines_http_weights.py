"""The http engine's weight updates (docs/rl.md, "Engines"): the RL API mapped onto vLLM's and
SGLang's own routes, checked against an aiohttp stand-in that records every call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from drivetrain.runtime.engines.base import EngineError, UpdatesWeights, WeightSource
from drivetrain.runtime.engines.http import HttpEngine


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[tuple[str, object]], set[str]]]:
    """vLLM's and SGLang's weight routes; a path in ``refused`` is a failed load."""
    calls: list[tuple[str, object]] = []
    refused: set[str] = set()

    async def record(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        calls.append((request.path_qs, body))
        if request.path == "/update_weights_from_disk":
            path = body["model_path"]
            return web.json_response({"success": path not in refused, "message": "bad shapes"})
        if request.path == "/collective_rpc" and body["kwargs"]["weights_path"] in refused:
            return web.json_response({"error": "bad shapes"}, status=500)
        return web.json_response({})

    app = web.Application()
    for route in (
        "/pause",
        "/resume",
        "/collective_rpc",
        "/pause_generation",
        "/continue_generation",
        "/update_weights_from_disk",
    ):
        app.router.add_post(route, record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", calls, refused
    await runner.cleanup()


async def test_vllm_gets_pause_collective_rpc_reload_weights_and_resume(upstream) -> None:
    url, calls, refused = upstream
    engine = HttpEngine(url, "m", upstream_api="vllm")
    assert isinstance(engine, UpdatesWeights)
    await engine.start()
    try:
        await engine.load_weights("v1", WeightSource(path="/ckpt/v1"))
        engine.keep_weights()
        assert calls == [
            ("/pause?mode=wait", None),
            (
                "/collective_rpc",
                {"method": "reload_weights", "kwargs": {"weights_path": "/ckpt/v1"}},
            ),
            ("/resume", None),
        ]
        # A failed load is a clean failure; the fleet's rollback loads the committed path again.
        calls.clear()
        refused.add("/ckpt/bad")
        with pytest.raises(EngineError):
            await engine.load_weights("v2", WeightSource(path="/ckpt/bad"))
        assert ("/resume", None) in calls  # never left paused
        assert await engine.restore_weights() is True
        await engine.load_weights("v3", WeightSource(path="/ckpt/v3"))
        calls.clear()
        assert await engine.restore_weights() is True
        assert calls[1] == (
            "/collective_rpc",
            {"method": "reload_weights", "kwargs": {"weights_path": "/ckpt/v1"}},
        )
    finally:
        await engine.close()


async def test_sglang_gets_update_weights_from_disk_between_pause_and_continue(upstream) -> None:
    url, calls, refused = upstream
    engine = HttpEngine(url, "m", upstream_api="sglang")
    await engine.start()
    try:
        await engine.load_weights("v1", WeightSource(path="/ckpt/v1"))
        assert calls == [
            ("/pause_generation", None),
            ("/update_weights_from_disk", {"model_path": "/ckpt/v1"}),
            ("/continue_generation", None),
        ]
        # Nothing committed before: going back from an uncommitted load is impossible.
        assert await engine.restore_weights() is False
        refused.add("/ckpt/bad")
        with pytest.raises(EngineError, match="bad shapes"):
            await engine.load_weights("v2", WeightSource(path="/ckpt/bad"))
        with pytest.raises(EngineError) as err:
            await engine.load_weights("v3", WeightSource(nccl={"group_name": "g"}))
        assert err.value.status == 501
    finally:
        await engine.close()


def test_an_unknown_upstream_api_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="--upstream-api: expected vllm or sglang"):
        HttpEngine("http://x", "m", upstream_api="trtllm")
