"""A worker's registration: its records written under one lease, kept alive, restored when lost.

Lifecycle::

    registration = Registration(store, ttl=10, records=[instance_record, model_card])
    await registration.start()   # lease + records, then a keep-alive task
    ...
    await registration.stop()    # revoke: the records vanish at once

Keep-alive policy (why): Dynamo's fixed 10 s lease expired during DNS storms and a lost lease
shut the worker down.  Here a refresh is due every ``ttl/3`` counted from the last refresh that
succeeded, not from when the previous call returned, so a slow store does not push refreshes
past the TTL.  A failed or timed-out refresh is retried every ``retry_every`` (a fraction of the
TTL), so several attempts fit inside one TTL.  Only the store itself decides that the lease is
gone (a refresh answers False, or a put says the lease is unknown); then the same records (same
instance id) are written again under a new lease, retrying with backoff until the store answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable

from drivetrain.runtime.discovery.base import DiscoveryStore, Lease, LeaseNotFoundError
from drivetrain.runtime.records import Record

log = logging.getLogger(__name__)

DEFAULT_TTL = 10.0
MIN_TTL = 1.0  # etcd grants whole seconds and treats TTLs below its minimum as that minimum


class Registration:
    def __init__(
        self,
        store: DiscoveryStore,
        ttl: float,
        records: Iterable[Record],
        *,
        refresh_every: float | None = None,
        retry_every: float | None = None,
        call_timeout: float | None = None,
    ) -> None:
        if ttl < MIN_TTL:
            raise ValueError(f"lease TTL must be at least {MIN_TTL} s, got {ttl}")
        self.store = store
        self.ttl = ttl
        self.records: list[Record] = list(records)
        self.refresh_every = refresh_every if refresh_every is not None else ttl / 3
        self.retry_every = retry_every if retry_every is not None else min(1.0, ttl / 10)
        # One call may take this long before it is abandoned and retried; a store slower than
        # this on every call cannot keep the lease, whatever the client does.
        self.call_timeout = call_timeout if call_timeout is not None else ttl * 2 / 3
        self.lease: Lease | None = None
        self.registrations = 0  # successful (re-)registrations: 1 after start, +1 per loss
        self.refresh_failures = 0  # refresh attempts that raised or timed out
        self._last_refresh = 0.0  # monotonic time the last successful refresh was sent
        self._task: asyncio.Task[None] | None = None

    @property
    def keys(self) -> list[str]:
        return [record.key for record in self.records]

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self, timeout: float = 10.0) -> None:
        """Register (retrying for up to ``timeout`` s while the store is unreachable), then keep
        alive.  The last store error propagates when the store never answered in time."""
        if self._task is not None:
            raise RuntimeError("registration already started")
        try:
            async with asyncio.timeout(timeout):
                await self._register_until_done(quiet=True)
        except TimeoutError:
            await self._register()  # one last try, so the caller sees the store's own error
        self._task = asyncio.create_task(self._keep_alive(), name="discovery-keep-alive")

    async def stop(self) -> None:
        """Stop refreshing and revoke the lease, so the records disappear now, not at the TTL."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        lease, self.lease = self.lease, None
        if lease is None:
            return
        try:
            async with asyncio.timeout(self.call_timeout):
                await lease.revoke()
        except Exception as exc:  # the lease will expire on its own
            log.warning(
                "could not revoke lease %x (%s); records expire within %ss",
                lease.id,
                _describe(exc),
                self.ttl,
            )

    async def __aenter__(self) -> Registration:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _register(self) -> None:
        sent = time.monotonic()
        async with asyncio.timeout(self.call_timeout):
            lease = await self.store.grant_lease(self.ttl)
        try:
            for record in self.records:
                async with asyncio.timeout(self.call_timeout):
                    await self.store.put(record.key, record.encode(), lease)
        except BaseException:
            with contextlib.suppress(Exception):
                await lease.revoke()
            raise
        self.lease = lease
        self._last_refresh = sent
        self.registrations += 1
        log.info(
            "registered %d record(s) under lease %x (ttl %ss)",
            len(self.records),
            lease.id,
            self.ttl,
        )

    async def _keep_alive(self) -> None:
        while True:
            due = self._last_refresh + self.refresh_every
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not await self._refresh():
                log.warning("lease lost; registering %d record(s) again", len(self.records))
                await self._register_until_done()

    async def _refresh(self) -> bool:
        """Refresh, retrying errors; False only when the store says the lease is gone."""
        assert self.lease is not None
        while True:
            sent = time.monotonic()
            try:
                async with asyncio.timeout(self.call_timeout):
                    alive = await self.lease.refresh()
            except LeaseNotFoundError:
                return False
            except Exception as exc:
                self.refresh_failures += 1
                left = self._last_refresh + self.ttl - time.monotonic()
                log.warning(
                    "lease %x refresh failed (%s); retrying, about %.1fs of TTL left",
                    self.lease.id,
                    _describe(exc),
                    left,
                )
                await asyncio.sleep(self.retry_every)
                continue
            if alive:
                self._last_refresh = sent
            return alive

    async def _register_until_done(self, quiet: bool = False) -> None:
        delay = self.retry_every
        while True:
            try:
                await self._register()
                return
            except Exception as exc:
                log.log(
                    logging.INFO if quiet else logging.WARNING,
                    "registration failed (%s); retrying in %.1fs",
                    _describe(exc),
                    delay,
                )
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, max(self.ttl, 5.0))


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
