"""Admission and overload: the per-model queue, honest answers past its bounds, capacity-aware
routing, the retry window for a model without a live instance, and the hold used by a pause.

Counted, never timed: each test states how many requests get which answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp

from drivetrain.runtime.engines.mocker import MockerEngine
from drivetrain.runtime.frontend.admission import AdmissionConfig
from tests.paths import shared
from tests.runtime.serving_support import TEST_ADMISSION, Stack, serving_stack


def mocker(max_num_seqs: int, speedup: float = 1.0) -> MockerEngine:
    return MockerEngine(
        model_path=str(shared("models", "tiny")), speedup_ratio=speedup, max_num_seqs=max_num_seqs
    )


def chat(max_tokens: int, text: str = "hi") -> dict[str, Any]:
    return {
        "model": "tiny",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
    }


async def post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


def admission(**changes: Any) -> AdmissionConfig:
    return dataclasses.replace(TEST_ADMISSION, **changes)


def gate_of(stack: Stack) -> Any:
    state = stack.frontend.table.state("tiny")
    assert state is not None
    return state.gate


async def test_a_flood_at_ten_times_capacity_gets_429s_counted_by_reason() -> None:
    """Capacity 4 (two workers of 2), a queue of 4, 40 requests at once: 4 run, 4 wait, 32 are
    told at once that the model is saturated.  No request ever waits inside a worker."""
    async with serving_stack(admission=admission(max_queue=4)) as stack:
        engines = [mocker(2), mocker(2)]
        for engine in engines:
            await stack.add_worker(engine)
        async with aiohttp.ClientSession() as session:
            # About 6 s each at the mocker's speed 1: nothing finishes during the flood.
            flood = [asyncio.create_task(post(session, stack.url, chat(1000))) for _ in range(40)]
            metrics = stack.frontend.frontend.metrics
            await stack.wait(lambda: metrics.rejected[("tiny", "queue_full")] == 32, timeout=20)
            rejected = [t.result() for t in flood if t.done()]
            assert len(rejected) == 32
            assert all(status == 429 for status, _, _ in rejected)
            assert all(int(headers["Retry-After"]) >= 1 for _, _, headers in rejected)
            assert {body["error"]["code"] for _, body, _ in rejected} == {"model_overloaded"}
            # (The first connection to a worker may still be opening.)
            await stack.wait(lambda: sum(w.server.in_flight for w in stack.workers) == 4)
            assert gate_of(stack).waiting == 4
            assert [e.slots.waited for e in engines] == [0, 0]
            async with session.get(stack.url + "/metrics") as resp:
                text = await resp.text()
            assert (
                'drivetrain_frontend_rejected_requests_total{model="tiny",reason="queue_full"} 32'
                in (text)
            )
            assert 'drivetrain_frontend_queued_requests{model="tiny"} 4' in text
            for task in flood:
                task.cancel()
            await asyncio.gather(*flood, return_exceptions=True)
        await stack.wait(lambda: sum(w.server.in_flight for w in stack.workers) == 0)
        await stack.wait(lambda: gate_of(stack).waiting == 0)


async def test_queued_requests_are_served_in_arrival_order_as_room_opens() -> None:
    async with serving_stack() as stack:
        engine = mocker(1)
        await stack.add_worker(engine)
        order: list[int] = []

        async def ask(session: aiohttp.ClientSession, i: int) -> int:
            status, _, _ = await post(session, stack.url, chat(20, f"request {i}"))
            order.append(i)
            return status

        async with aiohttp.ClientSession() as session:
            tasks = []
            for i in range(5):
                tasks.append(asyncio.create_task(ask(session, i)))
                # Arrived (running or queued) before the next one is sent.
                await stack.wait(
                    lambda i=i: (
                        len(order) + stack.workers[0].server.in_flight + gate_of(stack).waiting
                        == i + 1
                    )
                )
            assert await asyncio.gather(*tasks) == [200] * 5
        assert order == [0, 1, 2, 3, 4]
        assert engine.slots.waited == 0


async def test_waiting_longer_than_the_queue_timeout_is_an_overload_answer() -> None:
    config = admission(queue_timeout=0.3, overload_status=529)  # Dynamo's code, configured
    async with serving_stack(admission=config) as stack:
        await stack.add_worker(mocker(1))
        async with aiohttp.ClientSession() as session:
            running = asyncio.create_task(post(session, stack.url, chat(1000)))
            await stack.wait(lambda: stack.workers[0].server.in_flight == 1)
            status, body, headers = await post(session, stack.url, chat(4))
            assert status == 529 and "Retry-After" in headers
            assert "--queue-timeout" in body["error"]["message"]
            metrics = stack.frontend.frontend.metrics
            assert metrics.rejected[("tiny", "queue_timeout")] == 1
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


async def test_the_router_never_picks_a_worker_at_capacity_while_another_has_room() -> None:
    async with serving_stack(router="round-robin") as stack:
        small, large = mocker(1), mocker(8)
        await stack.add_worker(small)
        await stack.add_worker(large)
        async with aiohttp.ClientSession() as session:
            long = [asyncio.create_task(post(session, stack.url, chat(1000))) for _ in range(2)]
            await stack.wait(lambda: small.slots.running == 1 and large.slots.running == 1)
            replies = [await post(session, stack.url, chat(4)) for _ in range(6)]
            assert [status for status, _, _ in replies] == [200] * 6
            assert small.slots.waited == 0  # round-robin alone would have queued 3 there
            for task in long:
                task.cancel()
            await asyncio.gather(*long, return_exceptions=True)


async def test_without_admission_control_requests_pile_up_in_the_worker() -> None:
    async with serving_stack(admission=admission(enabled=False, max_queue=0)) as stack:
        engine = mocker(1, speedup=100.0)
        await stack.add_worker(engine)
        async with aiohttp.ClientSession() as session:
            replies = await asyncio.gather(*(post(session, stack.url, chat(50)) for _ in range(6)))
        assert [status for status, _, _ in replies] == [200] * 6
        assert engine.slots.waited >= 1  # nothing held them back in the frontend


async def test_a_restart_in_progress_gets_the_retry_window_not_an_instant_503() -> None:
    async with serving_stack(admission=admission(retry_window=10.0)) as stack:
        first = await stack.add_worker(mocker(4, speedup=1e6))
        await first.stop()
        stack.workers.remove(first)
        await stack.wait(lambda: "tiny" not in stack.frontend.table.models)
        async with aiohttp.ClientSession() as session:
            waiting = asyncio.create_task(post(session, stack.url, chat(4)))
            await stack.wait(lambda: gate_of(stack).waiting == 1)  # known, waiting; not a 404
            await stack.add_worker(mocker(4, speedup=1e6))
            status, body, _ = await waiting
        assert status == 200 and body["usage"]["completion_tokens"] == 4


async def test_after_the_retry_window_a_model_without_instances_is_503() -> None:
    async with serving_stack(admission=admission(retry_window=0.2)) as stack:
        worker = await stack.add_worker(mocker(4, speedup=1e6))
        await worker.stop()
        stack.workers.remove(worker)
        await stack.wait(lambda: "tiny" not in stack.frontend.table.models)
        async with aiohttp.ClientSession() as session:
            status, body, headers = await post(session, stack.url, chat(4))
        assert status == 503 and body["error"]["code"] == "model_unavailable"
        assert "--retry-window" in body["error"]["message"] and "Retry-After" in headers
        assert stack.frontend.frontend.metrics.rejected[("tiny", "no_instance")] == 1


async def test_a_held_model_keeps_new_requests_in_its_queue_until_released() -> None:
    """The interface the RL API's pause (keep) uses: hold, then release."""
    async with serving_stack() as stack:
        worker = await stack.add_worker(mocker(4, speedup=1e6))
        gate = gate_of(stack)
        gate.hold()
        async with aiohttp.ClientSession() as session:
            held = [asyncio.create_task(post(session, stack.url, chat(4))) for _ in range(3)]
            await stack.wait(lambda: gate.waiting == 3)
            await asyncio.sleep(0.2)
            assert worker.server.in_flight == 0 and not any(t.done() for t in held)
            gate.release()
            replies = await asyncio.gather(*held)
        assert [status for status, _, _ in replies] == [200] * 3
