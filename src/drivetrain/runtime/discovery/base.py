"""The discovery store interface every backend (etcd, files, memory) implements.

Keys are plain strings; values are bytes.  A key is attached to a lease when it is put; a
lease that is not kept alive expires and its keys disappear (a DELETE event is watched).
Watching a prefix from a revision first yields the keys that exist (as PUT events), then
every change, so a watcher never misses a key between its snapshot and its watch.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    revision: int


@dataclass(frozen=True)
class WatchEvent:
    type: Literal["put", "delete"]
    key: str
    value: bytes | None
    revision: int


class Lease(abc.ABC):
    """A lease with a TTL; keep it alive with ``keep_alive`` (usually a background task)."""

    id: int
    ttl: float

    @abc.abstractmethod
    async def refresh(self) -> bool:
        """Renew once; False when the lease is already gone (expired or revoked)."""

    @abc.abstractmethod
    async def revoke(self) -> None: ...


class DiscoveryStore(abc.ABC):
    @abc.abstractmethod
    async def grant_lease(self, ttl: float) -> Lease: ...

    @abc.abstractmethod
    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        """Store ``value``; returns the store revision after the write."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix`` and the revision the snapshot was taken at."""

    @abc.abstractmethod
    def watch_prefix(self, prefix: str, start_revision: int | None = None) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix`` after ``start_revision`` (exclusive), until cancelled."""

    @abc.abstractmethod
    async def close(self) -> None: ...
