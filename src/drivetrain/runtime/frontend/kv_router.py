"""``--router kv`` and ``--router kv-approx``: choose the worker whose cache holds most of the
prompt, weighed against how busy it is (docs/kv-routing.md).

For each candidate worker the router computes Dynamo's cost (lower is better)::

    cost = overlap_weight * prefill_blocks + active_blocks
    prefill_blocks = (prompt tokens not cached there + prompt tokens it is still prefilling)
                     / block_size
    active_blocks  = KV blocks of the requests this frontend has running there

``overlap_weight`` (``--kv-overlap-weight``, Dynamo's ``--router-kv-overlap-score-weight``,
default 1.0) trades cache hits against load: 0 ignores the cache, larger values follow it
harder.  The load terms are this frontend's own bookkeeping (``Ticket``): a request adds its
prompt blocks and its uncached prompt tokens when routed, gives the prompt tokens back at its
first frame (prefill done) and the blocks when it ends.  Equal costs are broken at random.

``kv`` reads the workers' KV events (``KvIndex``); ``kv-approx`` needs none and records where
it sent each prompt, for ``--kv-approx-ttl`` seconds (``ApproxIndex``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drivetrain.runtime.frontend.kv_index import DEFAULT_APPROX_TTL_S, ApproxIndex, KvIndex
from drivetrain.runtime.frontend.prompt_ids import PromptIds
from drivetrain.runtime.frontend.registry import Target
from drivetrain.runtime.kv.blocks import block_hashes
from drivetrain.runtime.transport.client import RequestPlaneClient

KV_MODES = ("kv", "kv-approx")
DEFAULT_BLOCK_SIZE = 64  # a model whose workers publish none (kv-approx in front of http)


@dataclass
class KvConfig:
    mode: str = "kv"
    overlap_weight: float = 1.0
    approx_ttl: float = DEFAULT_APPROX_TTL_S
    seed: int | None = None


@dataclass
class WorkerLoad:
    active_blocks: int = 0
    prefill_tokens: int = 0


class Ticket:
    """A routed request's share of its worker's load, given back as the request goes on.

    ``loads`` holds only busy workers: an entry goes when its last request gives its share
    back, so that scoring looks at busy workers one by one and at idle ones by level."""

    __slots__ = ("address", "blocks", "load", "loads", "prefill")

    def __init__(self, loads: dict[str, WorkerLoad], address: str, blocks: int, prefill: int):
        load = loads.get(address)
        if load is None:
            load = loads[address] = WorkerLoad()
        self.loads = loads
        self.address = address
        self.load = load
        self.blocks = blocks
        self.prefill = prefill
        load.active_blocks += blocks
        load.prefill_tokens += prefill

    def prefilled(self) -> None:
        self.load.prefill_tokens -= self.prefill
        self.prefill = 0

    def done(self) -> None:
        self.prefilled()
        load = self.load
        load.active_blocks -= self.blocks
        self.blocks = 0
        idle = not load.active_blocks and not load.prefill_tokens
        if idle and self.loads.get(self.address) is load:
            del self.loads[self.address]


@dataclass
class Route:
    """What the router knows of one request's prompt."""

    ids: list[int] | None  # None: the frontend cannot tokenize this model (the worker does)
    hashes: list[int]
    block_size: int
    prompt_tokens: int
    overlap: int = 0  # blocks cached on the chosen worker
    ticket: Ticket | None = field(default=None, repr=False)

    def release(self) -> None:
        if self.ticket is not None:
            self.ticket.done()
            self.ticket = None


def make_route(ids: list[int] | None, block_size: int | None) -> Route:
    """A request's route from its prompt ids (None: not tokenized here) and the model's block
    size (None: its workers publish no KV events; ``DEFAULT_BLOCK_SIZE``)."""
    size = block_size or DEFAULT_BLOCK_SIZE
    if ids is None:
        return Route(None, [], size, 0)
    return Route(ids, block_hashes(ids, size), size, len(ids))


class KvRouter:
    def __init__(self, config: KvConfig) -> None:
        if config.mode not in KV_MODES:
            raise ValueError(
                f"--router: expected one of {', '.join(KV_MODES)}, got {config.mode!r}"
            )
        if config.overlap_weight < 0:
            raise ValueError("--kv-overlap-weight: expected a number >= 0")
        self.config = config
        self.approx = config.mode == "kv-approx"
        self.index: KvIndex = ApproxIndex(config.approx_ttl) if self.approx else KvIndex()
        self.index.on_stale = self._resync
        self.prompt_ids = PromptIds()
        self.loads: dict[str, WorkerLoad] = {}
        self._clients: dict[str, RequestPlaneClient] = {}
        self._random = random.Random(config.seed)

    # ---- workers coming and going ------------------------------------------------------------

    def attach(self, client: RequestPlaneClient) -> None:
        """A new worker connection: its events feed the index (``kv``)."""
        address = client.address
        self._clients[address] = client
        if not self.approx:
            index, clients = self.index, self._clients

            def on_kv(event: list[Any] | None) -> None:
                if clients.get(address) is client:  # not an old connection closing late
                    index.apply(address, event)

            client.on_kv = on_kv

    def forget(self, address: str) -> None:
        """The worker left discovery: its index and load go with it."""
        self._clients.pop(address, None)
        self.index.drop(address)
        self.loads.pop(address, None)

    def _resync(self, address: str) -> None:
        client = self._clients.get(address)
        if client is not None:
            client.request_kv_snapshot()

    # ---- one request -------------------------------------------------------------------------

    def pick(self, targets: Sequence[Target], route: Route, now: float) -> Target:
        """The cheapest target (``targets`` is never empty); books its load on ``route``.

        Idle workers (no request of ours running) cost ``weight * uncached / block_size``, so
        the best of them is one of the deepest overlap level that has an idle worker
        (``KvIndex.levels``); busy workers are scored one by one.  With 1,000 instances this
        keeps a decision well under a millisecond (docs/performance.md)."""
        route.release()  # a retry: the previous choice failed before its first frame
        index = self.index
        if self.approx:
            assert isinstance(index, ApproxIndex)
            index.expire(now)
        by_address = {t.address: t for t in targets}
        levels = index.levels(route.hashes, by_address.keys())
        weight = self.config.overlap_weight
        size = route.block_size
        tokens = route.prompt_tokens
        busy = self.loads
        best: list[str] = []
        low = 0.0
        best_depth: dict[str, int] = {}
        for depth, level in levels:
            idle = [a for a in level if a not in busy]
            if idle:
                best, low = idle, weight * max(tokens - depth * size, 0) / size
                best_depth = dict.fromkeys(idle, depth)
                break
        else:
            scored = {a for _, level in levels for a in level}
            idle = [a for a in by_address if a not in busy and a not in scored]
            if idle:
                best, low = idle, weight * tokens / size
                best_depth = dict.fromkeys(idle, 0)
        if busy:
            depth_of = {a: d for d, level in levels for a in level}
            for address, load in busy.items():
                if address not in by_address:
                    continue
                depth = depth_of.get(address, 0)
                prefill = max(tokens - depth * size, 0) + load.prefill_tokens
                cost = weight * prefill / size + load.active_blocks
                if not best or cost < low:
                    best, low, best_depth = [address], cost, {address: depth}
                elif cost == low:
                    best.append(address)
                    best_depth[address] = depth
        chosen = best[0] if len(best) == 1 else self._random.choice(best)
        target = by_address[chosen]
        overlap = best_depth[chosen]
        route.overlap = overlap
        blocks = -(-tokens // size)
        route.ticket = Ticket(busy, chosen, blocks, max(tokens - overlap * size, 0))
        if self.approx and route.hashes:
            assert isinstance(index, ApproxIndex)
            index.record(chosen, route.hashes, now)
        return target
