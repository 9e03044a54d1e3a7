"""/health lists the instances in the frontend's scope; /metrics speaks Prometheus text."""

from __future__ import annotations

import aiohttp

from drivetrain.runtime.engines.echo import EchoEngine
from drivetrain.runtime.scope import NamespaceScope
from tests.runtime.serving_support import chat_body, serving_stack


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def test_health_lists_only_instances_in_scope() -> None:
    async with serving_stack(scope=NamespaceScope.from_args("team-a")) as stack:
        await stack.add_worker(EchoEngine(), model="b", namespace="team-b", wait=False)
        await stack.add_worker(EchoEngine(), model="c", namespace="team-a-2", wait=False)
        mine = await stack.add_worker(EchoEngine(), model="a", namespace="team-a")  # seen last
        async with aiohttp.ClientSession() as session, session.get(stack.url + "/health") as resp:
            health = await resp.json()
        assert resp.status == 200
        assert health["status"] == "healthy"
        assert [i["instance_id"] for i in health["instances"]] == [mine.instance_id]
        assert health["models"] == ["a"]


async def test_a_prefix_scoped_frontend_serves_models_of_every_matching_namespace() -> None:
    async with serving_stack(scope=NamespaceScope.from_args(None, "team")) as stack:
        await stack.add_worker(EchoEngine(), model="c", namespace="other", wait=False)
        await stack.add_worker(EchoEngine(), model="a", namespace="team-a")
        await stack.add_worker(EchoEngine(), model="b", namespace="teamb")
        models = await stack.client().models.list()
        assert sorted(m.id for m in models.data) == ["a", "b"]


async def test_metrics_count_requests_by_model_route_and_status() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine())
        async with aiohttp.ClientSession() as session:
            for body in (chat_body(), chat_body(stream=True), chat_body("nope"), {"model": 1}):
                async with session.post(stack.url + "/v1/chat/completions", json=body) as resp:
                    await resp.read()
        status, content_type, text = await get(stack.url + "/metrics")
        assert status == 200
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        lines = text.splitlines()
        prefix = "drivetrain_frontend_requests_total"
        assert (
            f'{prefix}{{model="tiny",endpoint="chat_completions",status="200",request_type="unary"}} 1'
            in lines
        )
        assert (
            f'{prefix}{{model="tiny",endpoint="chat_completions",status="200",request_type="stream"}} 1'
            in lines
        )
        assert (
            f'{prefix}{{model="",endpoint="chat_completions",status="404",request_type="unary"}} 1'
            in lines
        )
        assert (
            f'{prefix}{{model="",endpoint="chat_completions",status="400",request_type="unary"}} 1'
            in lines
        )
        assert 'drivetrain_frontend_instances{namespace="global",component="backend"} 1' in lines
        assert 'drivetrain_frontend_inflight_requests{model="tiny"} 0' in lines
        assert "# TYPE drivetrain_frontend_time_to_first_token_seconds histogram" in lines
        assert any(
            line.startswith('drivetrain_frontend_time_to_first_token_seconds_count{model="tiny"} 2')
            for line in lines
        )
        assert any(
            line.startswith(
                'drivetrain_frontend_inter_token_latency_seconds_bucket{model="tiny",le="+Inf"}'
            )
            for line in lines
        )


async def test_histogram_buckets_are_cumulative() -> None:
    from drivetrain.runtime.metrics import Histogram

    histogram = Histogram("x_seconds", "x", (0.1, 1.0), ("model",))
    for value in (0.05, 0.5, 0.5, 5.0):
        histogram.observe(("m",), value)
    lines = list(histogram.render())
    assert 'drivetrain_frontend_x_seconds_bucket{model="m",le="0.1"} 1' in lines
    assert 'drivetrain_frontend_x_seconds_bucket{model="m",le="1.0"} 3' in lines
    assert 'drivetrain_frontend_x_seconds_bucket{model="m",le="+Inf"} 4' in lines
    assert 'drivetrain_frontend_x_seconds_count{model="m"} 4' in lines
