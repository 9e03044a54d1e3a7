"""``--router kv`` and ``kv-approx`` end to end: real frontend, real mocker workers with prefix
caches, real request-plane connections carrying the KV events, the ``openai`` client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from drivetrain.runtime.engines.mocker import MockerEngine
from drivetrain.runtime.frontend.kv_router import KvConfig
from tests.runtime.serving_support import TINY, Stack, serving_stack

SYSTEM = "You are a careful assistant who answers in full sentences. " * 12


def conversation(user: int, turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": f"user {user}: {SYSTEM}"}]
    for t in range(turns):
        messages.append({"role": "user", "content": f"question {t} from user {user}"})
        messages.append({"role": "assistant", "content": f"answer {t} to user {user}"})
    messages.append({"role": "user", "content": f"question {turns} from user {user}"})
    return messages


def mockers(n: int, prefix_caching: bool = True) -> list[MockerEngine]:
    return [
        MockerEngine(str(TINY), speedup_ratio=1000, seed=i, prefix_caching=prefix_caching)
        for i in range(n)
    ]


async def metrics(stack: Stack) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(stack.url + "/metrics")).text


def server_of(stack: Stack, engine: MockerEngine) -> str:
    for worker in stack.workers:
        if worker.engine is engine:
            return worker.address
    raise AssertionError("not a worker of this stack")


async def test_kv_routes_each_turn_to_the_worker_holding_the_conversation() -> None:
    async with serving_stack(router="kv") as stack:
        engines = mockers(3)
        for engine in engines:
            await stack.add_worker(engine)
        client = stack.client()
        cached: list[int] = []
        for turn in range(4):
            for user in range(3):
                reply = await client.chat.completions.create(
                    model="tiny",
                    messages=conversation(user, turn),
                    max_tokens=3,  # type: ignore[arg-type]
                )
                assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
                cached.append(reply.usage.prompt_tokens_details.cached_tokens or 0)
        # The first turn of each user finds nothing; every later turn finds its history.
        assert cached[:3] == [0, 0, 0]
        assert all(c > 0 for c in cached[3:])
        # The frontend subscribed to every worker's events; its index is what they hold.
        for worker in stack.workers:
            assert all(c.kv_subscribed for c in worker.server.connections)
        index = stack.frontend.kv
        assert index is not None
        for engine in engines:
            assert engine.kv_cache is not None
            assert index.index.blocks(server_of(stack, engine)) == frozenset(
                engine.kv_cache._blocks
            )
        text = await metrics(stack)
        assert "drivetrain_frontend_kv_overlap_blocks_count" in text
        assert 'drivetrain_frontend_kv_cache_hit_rate{instance="127.0.0.1:' in text
        assert "drivetrain_frontend_kv_indexed_blocks{" in text


async def test_streamed_usage_reports_cached_tokens() -> None:
    async with serving_stack(router="kv") as stack:
        for engine in mockers(2):
            await stack.add_worker(engine)
        client = stack.client()
        usages = []
        for _ in range(2):
            stream = await client.chat.completions.create(
                model="tiny",
                messages=conversation(7, 1),  # type: ignore[arg-type]
                max_tokens=3,
                stream=True,
                stream_options={"include_usage": True},
            )
            usages += [chunk.usage async for chunk in stream if chunk.usage is not None]
        details = [u.prompt_tokens_details for u in usages]
        assert details[0] is not None and details[0].cached_tokens == 0
        assert details[1] is not None and details[1].cached_tokens and details[1].cached_tokens > 0
        # A completions request too, and a router that is not kv (0 cached, still reported).
        reply = await client.completions.create(model="tiny", prompt=SYSTEM, max_tokens=2)
        assert reply.usage is not None and reply.usage.prompt_tokens_details is not None


async def test_round_robin_reports_cached_tokens_as_well() -> None:
    async with serving_stack(router="round-robin") as stack:
        await stack.add_worker(mockers(1)[0])
        client = stack.client()
        details = []
        for _ in range(2):
            reply = await client.chat.completions.create(
                model="tiny",
                messages=conversation(1, 2),
                max_tokens=2,  # type: ignore[arg-type]
            )
            assert reply.usage is not None
            details.append(reply.usage.prompt_tokens_details)
        assert details[0] is not None and details[0].cached_tokens == 0
        assert details[1] is not None and (details[1].cached_tokens or 0) > 0
        # No KV router: the worker sends this frontend no KV events at all.
        connections = stack.workers[0].server.connections
        assert connections and not any(c.kv_subscribed for c in connections)
        assert stack.frontend.kv is None


async def test_the_worker_uses_the_frontends_tokens() -> None:
    async with serving_stack(router="kv") as stack:
        engine = mockers(1)[0]

        async def no_tokenizing(*args: Any) -> list[int]:
            raise AssertionError("the worker tokenized a prompt the frontend had tokenized")

        engine._prompts.ids = no_tokenizing  # type: ignore[method-assign]
        await stack.add_worker(engine)
        reply = await stack.client().chat.completions.create(
            model="tiny",
            messages=conversation(1, 1),
            max_tokens=2,  # type: ignore[arg-type]
        )
        assert reply.usage is not None and reply.usage.prompt_tokens > 100


async def test_a_lost_event_is_repaired_over_the_connection() -> None:
    async with serving_stack(router="kv") as stack:
        engine = mockers(1)[0]
        worker = await stack.add_worker(engine)
        kv = stack.frontend.kv
        assert kv is not None and engine.kv_cache is not None
        client = stack.client()
        await client.chat.completions.create(
            model="tiny",
            messages=conversation(1, 0),
            max_tokens=2,  # type: ignore[arg-type]
        )
        await stack.wait(lambda: len(kv.index.blocks(worker.address)) == len(engine.kv_cache))
        engine.kv_cache.seq += 1  # an event the frontend never gets
        await client.chat.completions.create(
            model="tiny",
            messages=conversation(2, 0),
            max_tokens=2,  # type: ignore[arg-type]
        )
        # The gap is seen, the worker asked for its snapshot, and the index rebuilt from it.
        await stack.wait(lambda: kv.index.resyncs == 1)
        await stack.wait(
            lambda: kv.index.blocks(worker.address) == frozenset(engine.kv_cache._blocks)
        )


async def test_a_reconnect_rebuilds_the_index_from_the_snapshot() -> None:
    async with serving_stack(router="kv") as stack:
        engine = mockers(1)[0]
        worker = await stack.add_worker(engine)
        kv = stack.frontend.kv
        assert kv is not None and engine.kv_cache is not None
        await stack.client().chat.completions.create(
            model="tiny",
            messages=conversation(1, 0),
            max_tokens=2,  # type: ignore[arg-type]
        )
        await stack.wait(lambda: len(kv.index.blocks(worker.address)) > 0)
        connection = stack.frontend.table.client_for(worker.address)
        assert connection is not None
        connection.drop("test: the connection broke")
        assert kv.index.blocks(worker.address) == frozenset()  # unknown while disconnected
        await connection.connect()
        await stack.wait(
            lambda: kv.index.blocks(worker.address) == frozenset(engine.kv_cache._blocks)
        )


async def test_an_instance_leaving_is_dropped_from_the_index() -> None:
    async with serving_stack(router="kv") as stack:
        engines = mockers(2)
        for engine in engines:
            await stack.add_worker(engine)
        kv = stack.frontend.kv
        assert kv is not None
        client = stack.client()
        for user in range(4):
            await client.chat.completions.create(
                model="tiny",
                messages=conversation(user, 0),
                max_tokens=2,  # type: ignore[arg-type]
            )
        leaving = stack.workers[0]
        await stack.wait(lambda: any(kv.index.blocks(w.address) for w in stack.workers))
        await leaving.stop()
        stack.workers.remove(leaving)
        await stack.wait(lambda: leaving.address not in kv.index.workers())
        assert leaving.address not in kv.loads
        # Requests keep flowing to the one left.
        reply = await client.chat.completions.create(
            model="tiny",
            messages=conversation(0, 1),
            max_tokens=2,  # type: ignore[arg-type]
        )
        assert reply.choices[0].finish_reason == "length"


async def test_kv_approx_follows_its_own_routing_without_events() -> None:
    async with serving_stack(router="kv-approx", kv=KvConfig(seed=1)) as stack:
        engines = mockers(3)
        for engine in engines:
            await stack.add_worker(engine)
        kv = stack.frontend.kv
        assert kv is not None
        client = stack.client()
        for turn in range(3):
            for user in range(3):
                await client.chat.completions.create(
                    model="tiny",
                    messages=conversation(user, turn),
                    max_tokens=2,  # type: ignore[arg-type]
                )
        # Each conversation stayed where it started: every later turn hit the cache there.
        for engine in engines:
            assert engine.kv_cache is not None
        hits = sum(e.kv_cache.hits for e in engines if e.kv_cache is not None)
        lookups = sum(e.kv_cache.lookups for e in engines if e.kv_cache is not None)
        assert hits / lookups > 0.5
        # It predicted from routing alone: no snapshot was ever applied to its index.
        assert kv.index._seq == {}


async def test_kv_balances_load_between_cold_prompts() -> None:
    """Prompts that share nothing spread over the workers instead of piling on one."""
    async with serving_stack(router="kv") as stack:
        engines = mockers(3)
        for engine in engines:
            await stack.add_worker(engine)
        client = stack.client()
        await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="tiny",
                    messages=conversation(user, 0),
                    max_tokens=20,  # type: ignore[arg-type]
                )
                for user in range(9)
            )
        )
        used = [e for e in engines if e.kv_cache is not None and len(e.kv_cache)]
        assert len(used) == 3


@pytest.mark.parametrize("router", ["kv", "kv-approx"])
async def test_kv_routers_serve_a_model_the_frontend_cannot_tokenize(router: str) -> None:
    async with serving_stack(router=router) as stack:
        await stack.add_worker(MockerEngine(None, speedup_ratio=1000))  # no tokenizer files
        reply = await stack.client().chat.completions.create(
            model="tiny",
            messages=conversation(1, 0),
            max_tokens=2,  # type: ignore[arg-type]
        )
        assert reply.usage is not None and reply.usage.prompt_tokens > 0
