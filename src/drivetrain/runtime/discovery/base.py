"""The discovery store interface every backend (etcd, files, memory) implements.

Keys are plain strings; values are bytes.  A key is attached to a lease when it is put; a
lease that is not kept alive expires and its keys disappear (a DELETE event is watched).
Every write moves the store's revision forward.  A watcher reads a snapshot with ``get_prefix``
(keys plus the revision it was taken at) and then watches from that revision, so it never misses
a change between its snapshot and its watch.

Failures are reported with the exceptions below: ``StoreUnavailableError`` when the store cannot
be reached (retry later), ``RevisionCompactedError`` when a watch asks for history the store no
longer keeps (take a new snapshot), ``LeaseNotFoundError`` when a put names a lease that is gone.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from drivetrain.errors import DrivetrainError


class DiscoveryError(DrivetrainError):
    """Base class of the store errors below."""


class StoreUnavailableError(DiscoveryError):
    """The store did not answer (down, unreachable, timed out); the caller may retry."""


class RevisionCompactedError(DiscoveryError):
    """A watch started before the oldest revision the store still keeps."""


class LeaseNotFoundError(DiscoveryError):
    """A put or refresh named a lease that expired or was revoked."""


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
    async def revoke(self) -> None:
        """End the lease now: its keys are deleted at once (no error when already gone)."""


class DiscoveryStore(abc.ABC):
    #: whether a worker's handle may read the store as well as write it (the RL API's
    #: committed weight version, docs/rl.md); False where a worker holds write-only rights
    workers_read: bool = True

    @abc.abstractmethod
    async def grant_lease(self, ttl: float) -> Lease: ...

    @abc.abstractmethod
    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        """Store ``value``; returns the store revision after the write.

        ``LeaseNotFoundError`` when ``lease`` has already expired or been revoked.
        """

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""

    @abc.abstractmethod
    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix`` and the revision the snapshot was taken at."""

    @abc.abstractmethod
    def watch_prefix(
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix`` after ``start_revision`` (exclusive), until cancelled.

        ``None`` means changes from now on.  The iterator raises ``StoreUnavailableError`` when the
        store goes away and ``RevisionCompactedError`` when ``start_revision`` is too old; either
        way the caller re-reads a snapshot and watches again.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and background tasks (leases are not revoked)."""

    async def __aenter__(self) -> DiscoveryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
