"""The frontend's routing table: served models, their instances, and a client per instance.

Rebuilt from the discovery watcher's full view (model cards + instance records in scope) on every
change; changes are rare, requests are many, so lookups are plain dict reads.  An instance whose
connection failed, or whose worker dropped the connection, is quarantined for ``QUARANTINE_S``
(or until discovery re-registers it), so requests stop going to a dead worker before its lease
expires.  ``wait_for_change`` lets a request wait for the next rebuild (a worker registering)
without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from drivetrain.runtime.records import InstanceRecord, ModelCard
from drivetrain.runtime.transport.client import RequestPlaneClient

QUARANTINE_S = 5.0


@dataclass(eq=False)
class Target:
    """One instance serving one model, reached through a shared client."""

    instance_id: str
    address: str
    client: RequestPlaneClient
    down_until: float = 0.0

    @property
    def in_flight(self) -> int:
        return self.client.in_flight


@dataclass(eq=False)
class ModelState:
    """What the frontend keeps about one served model across routing-table rebuilds.

    Discovery changes rebuild every ``ServedModel``; this object survives them (until the
    frontend stops), so per-model request state belongs here: today the creation time that
    /v1/models reports, later steps' admission queue, pause flag or weight version.
    """

    name: str
    created: int


@dataclass(eq=False)
class ServedModel:
    name: str
    model_types: frozenset[str]
    state: ModelState
    targets: list[Target] = field(default_factory=list)
    context_length: int | None = None
    max_output_tokens: int | None = None

    @property
    def created(self) -> int:
        return self.state.created

    def live_targets(self, now: float) -> list[Target]:
        return [t for t in self.targets if t.down_until <= now]


class ServingTable:
    def __init__(self) -> None:
        self.models: dict[str, ServedModel] = {}
        self.instances: dict[str, InstanceRecord] = {}
        self.enabled: frozenset[str] = frozenset()
        self._clients: dict[str, RequestPlaneClient] = {}
        self._down: dict[str, float] = {}  # instance_id -> quarantined until (loop time)
        self._states: dict[str, ModelState] = {}
        self._changed = asyncio.Event()  # set (and replaced) by every rebuild

    def rebuild(
        self, cards: Iterable[ModelCard], instances: Iterable[InstanceRecord]
    ) -> list[RequestPlaneClient]:
        """Replace the table; returns clients no longer used (the caller closes them)."""
        by_id = {record.instance_id: record for record in instances}
        models: dict[str, ServedModel] = {}
        used: dict[str, RequestPlaneClient] = {}
        for card in sorted(cards, key=lambda c: (c.name, c.instance_id)):
            model = models.get(card.name)
            if model is None:
                state = self._states.get(card.name)
                if state is None:
                    state = self._states[card.name] = ModelState(card.name, int(time.time()))
                model = models[card.name] = ServedModel(card.name, frozenset(), state)
            model.model_types |= frozenset(card.model_types)
            model.context_length = model.context_length or card.context_length
            model.max_output_tokens = model.max_output_tokens or card.max_output_tokens
            record = by_id.get(card.instance_id)
            if record is None or record.transport != "tcp":
                continue  # card without a reachable instance (yet): known but not routable
            client = used.get(record.address) or self._clients.get(record.address)
            if client is None or client.closed:
                client = RequestPlaneClient(record.address)
                client.on_lost = self._lost_callback(record.address)
            used[record.address] = client
            model.targets.append(
                Target(
                    record.instance_id,
                    record.address,
                    client,
                    self._down.get(record.instance_id, 0.0),
                )
            )
        stale = [c for addr, c in self._clients.items() if addr not in used]
        self._clients = used
        self._down = {i: t for i, t in self._down.items() if i in by_id}
        self.models = models
        self.instances = by_id
        self.enabled = frozenset(t for m in models.values() for t in m.model_types)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return stale

    async def wait_for_change(self, timeout: float) -> None:
        """Return at the next rebuild, or after ``timeout`` seconds."""
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def quarantine(self, target: Target, now: float) -> None:
        self._quarantine(lambda t: t.instance_id == target.instance_id, now)

    def _lost_callback(self, address: str) -> Callable[[], None]:
        """A worker that drops its connection is dead or leaving: quarantine every instance at
        its address at once, rather than let requests find out one by one until its lease
        expires (a SIGKILLed worker's lease lives for its TTL)."""

        def lost() -> None:
            self._quarantine(lambda t: t.address == address, asyncio.get_running_loop().time())

        return lost

    def _quarantine(self, which: Callable[[Target], bool], now: float) -> None:
        until = now + QUARANTINE_S
        for model in self.models.values():
            for t in model.targets:
                if which(t):
                    self._down[t.instance_id] = until
                    t.down_until = until

    def instance_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for record in self.instances.values():
            key = (record.namespace, record.component)
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients = {}
