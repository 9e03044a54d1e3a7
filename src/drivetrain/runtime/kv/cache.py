"""A worker's prefix cache: KV blocks by chained hash, least recently used evicted first, and
the events that tell frontends what it holds (docs/kv-routing.md).

The cache holds at most ``num_blocks`` blocks (the mocker's ``--num-blocks``).  A request looks
up its prompt's leading blocks (``match``: how many are cached, and those are touched), then,
once prefilled, stores the rest (``store``), evicting the least recently used blocks when full.
Every change is an event ``(seq, kind, hashes)`` with ``kind`` ``"s"`` (stored) or ``"r"``
(removed) and ``seq`` counting up by one; ``snapshot()`` is ``(seq, "a", every hash)``: the
whole cache as of ``seq``, what a frontend rebuilds its view from when it missed an event.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

STORED = "s"
REMOVED = "r"
ALL = "a"

KvEvent = tuple[int, str, list[int]]


class PrefixCache:
    def __init__(self, num_blocks: int) -> None:
        if num_blocks < 1:
            raise ValueError(f"--num-blocks: expected at least 1, got {num_blocks}")
        self.num_blocks = num_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()  # oldest first
        self.seq = 0
        #: called with every event (the request-plane server sends it to each frontend)
        self.listeners: list[Callable[[KvEvent], Any]] = []
        self.hits = 0  # prompt blocks found cached, over all lookups
        self.lookups = 0  # prompt blocks looked up

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block: int) -> bool:
        return block in self._blocks

    def match(self, hashes: Sequence[int]) -> int:
        """How many leading blocks of ``hashes`` are cached; those become the most recent."""
        blocks = self._blocks
        n = 0
        for h in hashes:
            if h not in blocks:
                break
            blocks.move_to_end(h)
            n += 1
        self.hits += n
        self.lookups += len(hashes)
        return n

    def store(self, hashes: Sequence[int]) -> None:
        """Cache ``hashes`` (a prompt's blocks, in order), evicting the least recently used."""
        blocks = self._blocks
        stored: list[int] = []
        for h in hashes:
            if h in blocks:
                blocks.move_to_end(h)
            else:
                blocks[h] = None
                stored.append(h)
        removed: list[int] = []
        while len(blocks) > self.num_blocks:
            old, _ = blocks.popitem(last=False)
            removed.append(old)
        if stored:
            self._emit(STORED, stored)
        if removed:
            self._emit(REMOVED, removed)

    def snapshot(self) -> KvEvent:
        return (self.seq, ALL, list(self._blocks))

    def _emit(self, kind: str, hashes: list[int]) -> None:
        self.seq += 1
        event = (self.seq, kind, hashes)
        for listener in self.listeners:
            listener(event)
