"""The mocker's batch limit: sequences and KV blocks, arrival order, and what it reports."""

from __future__ import annotations

import asyncio

import pytest

from drivetrain.runtime.engines.base import EngineError
from drivetrain.runtime.engines.slots import BatchSlots


async def test_kv_blocks_bound_the_batch_and_waiters_go_in_arrival_order() -> None:
    slots = BatchSlots(max_seqs=8, num_blocks=10, block_size=16)
    assert slots.blocks_for(33) == 3
    await slots.acquire(6)
    order: list[str] = []

    async def take(name: str, blocks: int) -> None:
        await slots.acquire(blocks)
        order.append(name)

    big = asyncio.create_task(take("big", 6))  # does not fit next to the first
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 1))  # would fit, but must not overtake
    await asyncio.sleep(0)
    assert (slots.running, slots.waiting, slots.capacity()) == (1, 2, 1)  # full: one runs
    slots.release(6)
    await asyncio.gather(big, small)
    assert order == ["big", "small"] and slots.used_blocks == 7
    assert slots.waited == 2


async def test_a_waiter_that_leaves_lets_the_next_one_in() -> None:
    slots = BatchSlots(max_seqs=1, num_blocks=100, block_size=16)
    await slots.acquire(1)
    first = asyncio.create_task(slots.acquire(1))
    second = asyncio.create_task(slots.acquire(1))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    slots.release(1)
    await second
    assert (slots.running, slots.waiting, slots.capacity()) == (1, 0, 1)


async def test_a_request_larger_than_the_cache_is_refused() -> None:
    slots = BatchSlots(max_seqs=4, num_blocks=2, block_size=16)
    with pytest.raises(EngineError) as err:
        await slots.acquire(3)
    assert err.value.status == 400 and "--num-blocks" in err.value.message
    assert slots.capacity() == 4  # nothing waits: the batch limit
