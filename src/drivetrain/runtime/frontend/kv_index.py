"""Which worker caches which KV blocks: the KV router's prefix index (docs/kv-routing.md).

Block hashes are chained (``kv/blocks.py``): one hash names a whole prefix, so the radix tree of
Dynamo's router flattens to a map from block hash to the workers holding it.  A request's
overlap with a worker is how many of its leading blocks that worker holds, walked from the
first block until the worker misses one (a later block without an earlier one is of no use:
the prefill has to start at the first miss).

``KvIndex`` is fed by the workers' events (``apply``), one sequence per worker: an event out of
order or missing marks the worker stale (its view is dropped) and asks for a snapshot, which
replaces it.  ``ApproxIndex`` needs no events: it records where the router sent each prompt and
forgets it after a TTL, as Dynamo's router without KV events does.  Workers are keyed by their
request-plane address (one worker process, one cache).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from drivetrain.runtime.kv.cache import ALL, REMOVED, STORED

DEFAULT_APPROX_TTL_S = 120.0  # Dynamo's --router-ttl-secs


class KvIndex:
    def __init__(self) -> None:
        self._holders: dict[int, set[str]] = {}  # block hash -> workers holding it
        self._blocks: dict[str, set[int]] = {}  # worker -> its blocks
        self._seq: dict[str, int] = {}  # worker -> last event applied
        #: called with a worker whose events were lost or reordered (ask it for a snapshot)
        self.on_stale: Callable[[str], Any] | None = None
        self.resyncs = 0

    # ---- what the workers say -----------------------------------------------------------------

    def apply(self, worker: str, event: Sequence[Any] | None) -> None:
        """One event ``[seq, kind, hashes]`` from ``worker``; None: its connection was lost."""
        if event is None:
            self.drop(worker)
            return
        seq, kind, hashes = event
        if kind == ALL:
            self._replace(worker, hashes)
            self._seq[worker] = seq
            return
        last = self._seq.get(worker)
        if last is None:
            return  # stale, waiting for the snapshot: later events are relative to it
        if seq != last + 1:
            # Lost or reordered: what it holds is unknown; drop it and ask for everything.
            self.drop(worker)
            self.resyncs += 1
            if self.on_stale is not None:
                self.on_stale(worker)
            return
        self._seq[worker] = seq
        if kind == STORED:
            self._add(worker, hashes)
        elif kind == REMOVED:
            self._remove(worker, hashes)

    def drop(self, worker: str) -> None:
        """Forget a worker (it left discovery, its connection dropped, or its events broke)."""
        self._seq.pop(worker, None)
        for h in self._blocks.pop(worker, ()):
            holders = self._holders.get(h)
            if holders is not None:
                holders.discard(worker)
                if not holders:
                    del self._holders[h]

    def _replace(self, worker: str, hashes: Iterable[int]) -> None:
        self.drop(worker)
        self._add(worker, hashes)

    def _add(self, worker: str, hashes: Iterable[int]) -> None:
        mine = self._blocks.setdefault(worker, set())
        holders = self._holders
        for h in hashes:
            if h not in mine:
                mine.add(h)
                found = holders.get(h)
                if found is None:
                    holders[h] = {worker}
                else:
                    found.add(worker)

    def _remove(self, worker: str, hashes: Iterable[int]) -> None:
        mine = self._blocks.get(worker)
        if mine is None:
            return
        holders = self._holders
        for h in hashes:
            if h in mine:
                mine.discard(h)
                found = holders.get(h)
                if found is not None:
                    found.discard(worker)
                    if not found:
                        del holders[h]

    # ---- what the router asks -------------------------------------------------------------------

    def blocks(self, worker: str) -> frozenset[int]:
        return frozenset(self._blocks.get(worker, ()))

    def workers(self) -> list[str]:
        return list(self._blocks)

    def block_counts(self) -> dict[str, int]:
        """Blocks indexed per worker (the ``kv_indexed_blocks`` gauge)."""
        return {w: len(b) for w, b in self._blocks.items()}

    def overlaps(self, hashes: Sequence[int], workers: Iterable[str]) -> dict[str, int]:
        """For each of ``workers`` holding the first block: how many leading blocks it holds
        (workers that are absent hold none)."""
        return {w: depth for depth, level in self.levels(hashes, workers) for w in level}

    def levels(
        self, hashes: Sequence[int], workers: Iterable[str]
    ) -> list[tuple[int, Collection[str]]]:
        """``overlaps`` grouped by depth, deepest first: the router reads the deepest level
        that has an idle worker without looking at the others."""
        holders = self._holders
        first = holders.get(hashes[0]) if hashes else None
        if not first:
            return []
        live = first.intersection(workers)
        out: list[tuple[int, Collection[str]]] = []
        depth = 1
        for h in hashes[1:]:
            if not live:
                break
            found = holders.get(h)
            if found is None:
                break
            if len(found) >= len(live) and live <= found:
                depth += 1  # every one still matching holds it too (a shared system prompt)
                continue
            kept = live & found
            out.append((depth, live - kept))
            live = kept
            depth += 1
        if live:
            out.append((depth, live))
        out.reverse()
        return out


class ApproxIndex(KvIndex):
    """Predicted caches: a prompt's blocks count as cached where the router sent it, for
    ``ttl`` seconds after the last time it did (``record``)."""

    def __init__(self, ttl: float = DEFAULT_APPROX_TTL_S) -> None:
        super().__init__()
        self.ttl = ttl
        self._expiry: dict[tuple[str, int], float] = {}
        self._log: collections.deque[tuple[float, str, Sequence[int]]] = collections.deque()

    def record(self, worker: str, hashes: Sequence[int], now: float) -> None:
        self.expire(now)
        until = now + self.ttl
        expiry = self._expiry
        for h in hashes:
            expiry[(worker, h)] = until
        self._add(worker, hashes)
        self._log.append((until, worker, hashes))

    def expire(self, now: float) -> None:
        log, expiry = self._log, self._expiry
        while log and log[0][0] <= now:
            _, worker, hashes = log.popleft()
            gone = [h for h in hashes if expiry.get((worker, h), 0.0) <= now]
            for h in gone:
                expiry.pop((worker, h), None)
            self._remove(worker, gone)

    def drop(self, worker: str) -> None:
        for h in self._blocks.get(worker, ()):
            self._expiry.pop((worker, h), None)
        super().drop(worker)
