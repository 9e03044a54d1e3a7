"""The mocker's step scheduler: one timer per worker, tokens on the simulated timeline.

Nothing here asserts speed: bounds are on counts (wake-ups, steps, tokens) and on tokens never
arriving before their simulated due time (a lower bound that a slow machine cannot break).
"""

from __future__ import annotations

import asyncio

import pytest

from drivetrain.runtime.engines.base import Finish, TokenTexts
from drivetrain.runtime.engines.mocker import MockerEngine, decode_ms, prefill_ms
from drivetrain.runtime.engines.scheduler import DUE_SLACK_S


async def timed_tokens(engine: MockerEngine, max_tokens: int) -> tuple[float, list[float], Finish]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals: list[float] = []
    finish = None
    async for item in engine.generate("completions", {"prompt": "a b c", "max_tokens": max_tokens}):
        if isinstance(item, TokenTexts):  # tokens due together: one arrival time each
            arrivals.extend([loop.time()] * len(item.texts))
        else:
            finish = item
    assert isinstance(finish, Finish)
    return start, arrivals, finish


async def test_concurrent_requests_share_one_timer_per_step() -> None:
    # 5 ms steps: far above the loop's timer resolution, so steps are not merged by rounding.
    engine = MockerEngine(speedup_ratio=5.74 / 5)
    results = await asyncio.gather(*(timed_tokens(engine, 12) for _ in range(8)))
    scheduler = engine._scheduler
    assert all(len(arrivals) == 12 for _, arrivals, _ in results)
    assert all(finish.completion_tokens == 12 for _, _, finish in results)
    # All eight share the steps: 12 for 96 tokens (13 when the first, added a few microseconds
    # earlier, starts its first step alone), and about one wake-up per step (an early timer may
    # re-arm once), never one per token per request.
    assert scheduler.steps <= 13
    assert scheduler.wakeups <= 2 * scheduler.steps + 2
    assert scheduler.active_kv == 0


async def test_tokens_never_arrive_before_their_simulated_time() -> None:
    speedup = 5.74 / 4  # 4 ms per step, 11.5 ms prefill for 3 prompt tokens
    engine = MockerEngine(speedup_ratio=speedup)
    start, arrivals, _ = await timed_tokens(engine, 10)
    prefill_s = prefill_ms(3) / 1000 / speedup
    for i, arrived in enumerate(arrivals, start=1):
        step_s = decode_ms(0.0) / 1000 / speedup
        # KV use is tiny, so every step lasts decode_ms(~0); the scheduler may run a step up to
        # half a timer tick early (it rounds to the loop's millisecond clock).
        assert arrived >= start + prefill_s + i * step_s * 0.999 - DUE_SLACK_S - 1e-3


async def test_a_huge_speedup_gives_every_token_in_one_batch() -> None:
    engine = MockerEngine(speedup_ratio=1e6)
    _, arrivals, finish = await timed_tokens(engine, 64)
    assert len(arrivals) == finish.completion_tokens == 64
    assert engine._scheduler.steps == 64
    assert engine._scheduler.wakeups == 1  # one wake-up ran all 64 steps


async def test_tokens_due_together_leave_the_engine_as_one_item() -> None:
    # One item per batch of due tokens (one yield, one draw), not one per token: the worker
    # forwards it as one frame, and the per-token texts stay apart for --event-per-token.
    engine = MockerEngine(speedup_ratio=1e6)
    body = {"prompt": "a b c", "max_tokens": 64}
    items = [item async for item in engine.generate("completions", body)]
    assert len(items) == 2
    batch, finish = items
    assert isinstance(batch, TokenTexts) and len(batch.texts) == 64
    assert isinstance(finish, Finish) and finish.completion_tokens == 64


async def test_a_cancelled_request_leaves_the_batch_and_frees_its_kv() -> None:
    engine = MockerEngine(speedup_ratio=5.74 / 5)
    scheduler = engine._scheduler
    long = asyncio.ensure_future(timed_tokens(engine, 1000))
    short = asyncio.ensure_future(timed_tokens(engine, 5))
    _, arrivals, _ = await short
    assert len(arrivals) == 5
    assert scheduler.active_kv > 0  # the long one still holds its prompt and tokens
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
    assert scheduler.active_kv == 0
    steps = scheduler.steps
    await asyncio.sleep(0.03)
    assert scheduler.steps == steps  # nothing left to step: the timer is gone


async def test_a_request_arriving_mid_batch_joins_at_a_step_boundary() -> None:
    engine = MockerEngine(speedup_ratio=5.74 / 5)
    first = asyncio.ensure_future(timed_tokens(engine, 40))  # 14 ms prefill + 200 ms
    await asyncio.sleep(0.02)
    _, late_arrivals, _ = await timed_tokens(engine, 5)
    _, early_arrivals, _ = await first
    assert len(late_arrivals) == 5 and len(early_arrivals) == 40
    assert engine._scheduler.steps == 40  # the late one's 5 tokens came from shared steps


async def test_zero_max_tokens_finishes_at_once() -> None:
    _, arrivals, finish = await timed_tokens(MockerEngine(speedup_ratio=1.0), 0)
    assert arrivals == [] and finish.completion_tokens == 0
