"""A worker's batch limit: at most ``max_seqs`` requests and ``num_blocks`` KV blocks at once.

The mocker's stand-in for an engine's scheduler (vLLM's ``--max-num-seqs`` and its KV cache):
a request holds blocks for its prompt and every token it may generate (``block_size`` tokens
per block) from the moment it is admitted until it ends, and requests that do not fit wait in
arrival order.  Reserving the whole budget up front means nothing is ever preempted, so
``capacity()`` is exact: how many requests run at once without one waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque

from drivetrain.runtime.engines.base import EngineError


class BatchSlots:
    def __init__(self, max_seqs: int, num_blocks: int, block_size: int) -> None:
        if max_seqs < 1:
            raise ValueError(f"--max-num-seqs: expected at least 1, got {max_seqs}")
        if num_blocks < 1:
            raise ValueError(f"--num-blocks: expected at least 1, got {num_blocks}")
        if block_size < 1:
            raise ValueError(f"--block-size: expected at least 1, got {block_size}")
        self.max_seqs = max_seqs
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.running = 0
        self.used_blocks = 0
        self.waited = 0  # requests that had to wait here (a router that sees capacity avoids it)
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def capacity(self) -> int:
        """The batch limit while nothing waits; once something does, what runs now (full)."""
        if self._waiting or self.used_blocks >= self.num_blocks:
            return self.running
        return self.max_seqs

    def _fits(self, blocks: int) -> bool:
        return self.running < self.max_seqs and self.used_blocks + blocks <= self.num_blocks

    async def acquire(self, blocks: int) -> None:
        """Wait (in arrival order) until the request fits; EngineError(400) if it never can."""
        if blocks > self.num_blocks:
            raise EngineError(
                400,
                f"the request needs {blocks} KV blocks of {self.block_size} tokens; "
                f"this worker has {self.num_blocks} (--num-blocks)",
            )
        if not self._waiting and self._fits(blocks):
            self._take(blocks)
            return
        self.waited += 1
        future = asyncio.get_running_loop().create_future()
        entry = (blocks, future)
        self._waiting.append(entry)
        try:
            await future  # _admit_waiting took the slot for us
        except BaseException:
            if future.done() and not future.cancelled():
                self.release(blocks)  # admitted, then cancelled before it ran
            else:
                self._waiting.remove(entry)
                self._admit_waiting()  # the head may have been what held the others back
            raise

    def release(self, blocks: int) -> None:
        self.running -= 1
        self.used_blocks -= blocks
        self._admit_waiting()

    def _take(self, blocks: int) -> None:
        self.running += 1
        self.used_blocks += blocks

    def _admit_waiting(self) -> None:
        while self._waiting and self._fits(self._waiting[0][0]):
            blocks, future = self._waiting.popleft()
            self._take(blocks)
            future.set_result(None)
