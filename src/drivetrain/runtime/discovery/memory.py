"""An in-process discovery store (``memory://``): tests and one-process setups.

``memory://`` gives a private store; ``memory://NAME`` gives a handle on the store of that name,
shared by every handle opened with the same name in this process (a frontend and workers
started in one event loop).  Leases expire on a timer (and are also checked on every call, so
an expiry is never missed when the loop that armed the timer is gone).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from drivetrain.runtime.discovery.base import (
    DiscoveryStore,
    KeyValue,
    Lease,
    LeaseNotFoundError,
    RevisionCompactedError,
    StoreUnavailableError,
    WatchEvent,
)

HISTORY = 10_000  # events kept for watches that start from an older revision


@dataclass
class _LeaseState:
    ttl: float
    deadline: float
    keys: set[str] = field(default_factory=set)


@dataclass
class _Entry:
    value: bytes
    lease_id: int | None
    revision: int


class _Watch:
    """One watch: a prefix and the queue its events go to (None ends it, an error breaks it)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[WatchEvent | BaseException | None] = asyncio.Queue()


class StoreState:
    """The content, revision and event history of one in-process store.

    A named memory store shares one; the kubernetes:// store keeps one as its local mirror of
    what the API server holds (``runtime/discovery/kubernetes.py``).
    """

    def __init__(self) -> None:
        self.revision = 0
        self.data: dict[str, _Entry] = {}
        self.leases: dict[int, _LeaseState] = {}
        self.history: deque[WatchEvent] = deque(maxlen=HISTORY)
        self.watches: set[_Watch] = set()
        self.compacted = 0  # the revision of the newest event dropped from the history
        self._lease_ids = itertools.count(1)

    def new_lease_id(self) -> int:
        return next(self._lease_ids)

    def emit(self, event: WatchEvent) -> None:
        if len(self.history) == self.history.maxlen:
            self.compacted = self.history[0].revision
        self.history.append(event)
        for watch in self.watches:
            if event.key.startswith(watch.prefix):
                watch.queue.put_nowait(event)

    def put(self, key: str, value: bytes, lease_id: int | None) -> int:
        self.revision += 1
        old = self.data.get(key)
        if old is not None and old.lease_id is not None and old.lease_id != lease_id:
            self.leases[old.lease_id].keys.discard(key)
        self.data[key] = _Entry(value, lease_id, self.revision)
        if lease_id is not None:
            self.leases[lease_id].keys.add(key)
        self.emit(WatchEvent("put", key, value, self.revision))
        return self.revision

    def delete(self, key: str) -> None:
        entry = self.data.pop(key, None)
        if entry is None:
            return
        if entry.lease_id is not None and entry.lease_id in self.leases:
            self.leases[entry.lease_id].keys.discard(key)
        self.revision += 1
        self.emit(WatchEvent("delete", key, None, self.revision))

    def advance(self) -> int:
        """Move the revision on without an event (a write that changed nothing seen here)."""
        self.revision += 1
        return self.revision

    def items(self, prefix: str) -> list[KeyValue]:
        return [
            KeyValue(key, entry.value, entry.revision)
            for key, entry in sorted(self.data.items())
            if key.startswith(prefix)
        ]

    def drop_lease(self, lease_id: int) -> None:
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return
        for key in sorted(lease.keys):
            self.delete(key)

    def expire_due(self) -> None:
        now = time.monotonic()
        for lease_id in [i for i, lease in self.leases.items() if lease.deadline <= now]:
            self.drop_lease(lease_id)

    def arm_expiry(self, lease: _LeaseState) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        # A little after the deadline, so that a refresh landing right on time still wins.
        loop.call_later(max(0.0, lease.deadline - time.monotonic()) + 0.01, self.expire_due)

    async def watch(
        self, prefix: str, start_revision: int | None, registry: set[_Watch]
    ) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix`` after ``start_revision``; the watch sits in ``registry``
        while it runs (so that its handle can end it)."""
        watch = _Watch(prefix)
        if start_revision is not None:
            if start_revision < self.compacted:
                raise RevisionCompactedError(
                    f"revision {start_revision} is older than the history kept "
                    f"(from {self.compacted + 1})"
                )
            for event in self.history:
                if event.revision > start_revision and event.key.startswith(prefix):
                    watch.queue.put_nowait(event)
        # Registered in the same step as the replay above: no event can fall between the two.
        self.watches.add(watch)
        registry.add(watch)
        try:
            while True:
                item = await watch.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.watches.discard(watch)
            registry.discard(watch)


_NAMED: dict[str, StoreState] = {}


class MemoryLease(Lease):
    def __init__(self, state: StoreState, lease_id: int, ttl: float) -> None:
        self._state = state
        self.id = lease_id
        self.ttl = ttl

    async def refresh(self) -> bool:
        self._state.expire_due()
        lease = self._state.leases.get(self.id)
        if lease is None:
            return False
        lease.deadline = time.monotonic() + lease.ttl
        self._state.arm_expiry(lease)
        return True

    async def revoke(self) -> None:
        self._state.drop_lease(self.id)


class MemoryStore(DiscoveryStore):
    def __init__(self, name: str | None = None) -> None:
        if name:
            self._state = _NAMED.setdefault(name, StoreState())
        else:
            self._state = StoreState()
        self.name = name
        self._watches: set[_Watch] = set()
        self._closed = False

    def _check(self) -> StoreState:
        if self._closed:
            raise StoreUnavailableError("memory store handle is closed")
        self._state.expire_due()
        return self._state

    async def grant_lease(self, ttl: float) -> Lease:
        state = self._check()
        lease_id = state.new_lease_id()
        lease = _LeaseState(ttl=ttl, deadline=time.monotonic() + ttl)
        state.leases[lease_id] = lease
        state.arm_expiry(lease)
        return MemoryLease(state, lease_id, ttl)

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        state = self._check()
        if lease is not None and lease.id not in state.leases:
            raise LeaseNotFoundError(f"lease {lease.id} has expired or was revoked")
        return state.put(key, value, lease.id if lease is not None else None)

    async def delete(self, key: str) -> None:
        self._check().delete(key)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        state = self._check()
        return state.items(prefix), state.revision

    async def watch_prefix(
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncIterator[WatchEvent]:
        async for event in self._check().watch(prefix, start_revision, self._watches):
            yield event

    def break_watches(self) -> None:
        """Make every open watch on this store fail, as a lost connection would (for tests)."""
        for watch in list(self._state.watches):
            watch.queue.put_nowait(StoreUnavailableError("watch broken on purpose"))

    async def close(self) -> None:
        self._closed = True
        for watch in list(self._watches):
            watch.queue.put_nowait(None)
