"""The etcd discovery store (``etcd://host:port``), on aetcd (gRPC; works with current protobuf).

Mapping onto etcd: a lease is an etcd lease (TTL rounded up to whole seconds, as etcd grants
them); a refresh is one LeaseKeepAlive round trip whose TTL answer of 0 means the lease is gone;
a prefix watch is an etcd range watch from ``start_revision + 1`` (etcd's start is inclusive,
ours exclusive).  aetcd errors become the store errors of ``base.py``.

Recovery after an etcd restart: the gRPC channel reconnects on its own, with its backoff capped
at ``reconnect_backoff`` (gRPC's default grows to two minutes, far too slow for discovery), and
calls made while it is down fail at once (``StoreUnavailableError``) instead of waiting.  A watch
stream broken by the restart raises, and the caller re-reads and re-watches.  A watch can also
fall silent without an error (a stream closed cleanly, a half-open connection); every
``probe_interval`` without events the watch checks that the server still answers and that its
stream is still open, and raises ``StoreUnavailableError`` when either is not so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions as aetcd_errors
from aetcd import rtypes

from drivetrain.runtime.discovery.base import (
    DiscoveryStore,
    KeyValue,
    Lease,
    LeaseNotFoundError,
    RevisionCompactedError,
    StoreUnavailableError,
    WatchEvent,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


def _range_end(prefix: bytes) -> bytes:
    """etcd's range end for a prefix; b'\\0' (every key) for the empty prefix."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def _translate(exc: BaseException, what: str) -> Exception:
    if isinstance(exc, aetcd_errors.RevisionCompactedError):
        return RevisionCompactedError(f"{what}: {exc}")
    text = str(exc)
    if "lease not found" in text:
        return LeaseNotFoundError(f"{what}: {text}")
    return StoreUnavailableError(f"{what}: {text or type(exc).__name__}")


class EtcdLease(Lease):
    def __init__(self, store: EtcdStore, lease_id: int, ttl: float) -> None:
        self._store = store
        self.id = lease_id
        self.ttl = ttl

    async def refresh(self) -> bool:
        reply = await self._store._call(
            lambda c: c.refresh_lease(self.id), f"refresh lease {self.id:x}"
        )
        # LeaseKeepAlive answers TTL <= 0 for a lease that expired or was revoked.
        return reply is not None and int(reply.TTL) > 0

    async def revoke(self) -> None:
        with contextlib.suppress(LeaseNotFoundError):
            await self._store._call(lambda c: c.revoke_lease(self.id), f"revoke lease {self.id:x}")


class EtcdStore(DiscoveryStore):
    def __init__(
        self,
        client: aetcd.Client,
        *,
        probe_interval: float = 2.0,
        call_timeout: float = 5.0,
    ) -> None:
        self.client = client
        self.probe_interval = probe_interval
        self.call_timeout = call_timeout

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        call_timeout: float = 5.0,
        probe_interval: float = 2.0,
        reconnect_backoff: float = 1.0,
    ) -> EtcdStore:
        backoff_ms = int(reconnect_backoff * 1000)
        options = {
            # Not grpc.min_reconnect_backoff_ms: gRPC core also uses it as the connect deadline,
            # and a small one makes every connection over a slow link time out.
            "grpc.initial_reconnect_backoff_ms": min(100, backoff_ms),
            "grpc.max_reconnect_backoff_ms": backoff_ms,
            # Detect a dead peer on an idle connection (etcd permits pings every 5 s).
            "grpc.keepalive_time_ms": 10_000,
            "grpc.keepalive_timeout_ms": 5_000,
            "grpc.keepalive_permit_without_calls": 1,
        }
        client = aetcd.Client(host=host, port=port, timeout=None, options=options)
        store = cls(client, probe_interval=probe_interval, call_timeout=call_timeout)
        await store._call(lambda c: c.connect(), f"connect to etcd at {host}:{port}")
        return store

    async def _call(self, fn: Callable[[aetcd.Client], Awaitable[T]], what: str) -> T:
        try:
            async with asyncio.timeout(self.call_timeout):
                return await fn(self.client)
        except TimeoutError:
            raise StoreUnavailableError(f"{what}: no answer in {self.call_timeout}s") from None
        except (aetcd_errors.ClientError, OSError) as exc:
            raise _translate(exc, what) from exc

    async def grant_lease(self, ttl: float) -> Lease:
        granted = await self._call(lambda c: c.lease(max(1, math.ceil(ttl))), "grant lease")
        return EtcdLease(self, granted.id, float(granted.ttl))

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        lease_id = lease.id if lease is not None else None
        reply = await self._call(lambda c: c.put(key.encode(), value, lease=lease_id), f"put {key}")
        return int(reply.header.revision)

    async def delete(self, key: str) -> None:
        await self._call(lambda c: c.delete(key.encode()), f"delete {key}")

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        raw = prefix.encode()
        reply = await self._call(
            lambda c: c.get_range(raw, _range_end(raw)), f"get prefix {prefix!r}"
        )
        items = [KeyValue(kv.key.decode(), kv.value, kv.mod_revision) for kv in reply]
        items.sort(key=lambda kv: kv.key)
        return items, int(reply.header.revision)

    async def watch_prefix(
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncIterator[WatchEvent]:
        raw = prefix.encode()
        start = None if start_revision is None else start_revision + 1
        watch: Any = await self._call(
            lambda c: c.watch(raw, range_end=_range_end(raw), start_revision=start),
            f"watch {prefix!r}",
        )
        events = watch.__aiter__()
        next_event: asyncio.Task[Any] | None = None
        try:
            while True:
                if next_event is None:
                    next_event = asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({next_event}, timeout=self.probe_interval)
                if not done:
                    await self._probe(prefix)
                    continue
                task, next_event = next_event, None
                try:
                    event = task.result()
                except StopAsyncIteration:
                    raise StoreUnavailableError(f"watch {prefix!r} ended") from None
                except (aetcd_errors.ClientError, OSError) as exc:
                    raise _translate(exc, f"watch {prefix!r}") from exc
                kv = event.kv
                if event.kind == rtypes.EventKind.DELETE:
                    yield WatchEvent("delete", kv.key.decode(), None, int(kv.mod_revision))
                else:
                    yield WatchEvent("put", kv.key.decode(), kv.value, int(kv.mod_revision))
        finally:
            if next_event is not None:
                next_event.cancel()
                with contextlib.suppress(BaseException):
                    await next_event
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watch.cancel(), 1.0)

    async def _probe(self, prefix: str) -> None:
        """Raise ``StoreUnavailableError`` if the server or this client's watch stream is gone."""
        await self._call(lambda c: c.status(), f"watch {prefix!r}: status probe")
        # aetcd drops its stream handler when the watch stream ends, but only tells the watches
        # when the stream ended with an error; a cleanly closed stream would leave us waiting.
        watcher = getattr(self.client, "_watcher", None)
        handler = getattr(watcher, "_request_handler", None)
        if watcher is not None and (handler is None or handler.done()):
            raise StoreUnavailableError(f"watch {prefix!r}: the watch stream is closed")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), 2.0)
