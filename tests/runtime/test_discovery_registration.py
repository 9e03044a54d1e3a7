"""A worker's registration: records under a lease, kept alive through a slow or failing store,
written again when the lease is lost, gone at once on stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivetrain.runtime.discovery import (
    DiscoveryStore,
    KeyValue,
    Lease,
    StoreUnavailableError,
    WatchEvent,
    open_store,
)
from drivetrain.runtime.discovery.registration import Registration
from drivetrain.runtime.records import InstanceRecord, ModelCard
from tests.waiting import eventually_async

TTL = 1.0


def records(namespace: str = "ns", instance_id: str = "w1") -> list[InstanceRecord | ModelCard]:
    return [
        InstanceRecord(
            instance_id=instance_id,
            namespace=namespace,
            component="backend",
            address="127.0.0.1:1",
            transport="tcp",
            model_names=["tiny"],
        ),
        ModelCard(name="tiny", namespace=namespace, model_types=["chat"], instance_id=instance_id),
    ]


class FaultyLease(Lease):
    """A lease whose refreshes can be slowed down or made to fail (a bad network)."""

    def __init__(self, inner: Lease, store: FaultyStore) -> None:
        self.inner = inner
        self.store = store
        self.id = inner.id
        self.ttl = inner.ttl

    async def refresh(self) -> bool:
        self.store.refresh_calls += 1
        if self.store.failing:
            raise StoreUnavailableError("injected failure")
        await asyncio.sleep(self.store.refresh_delay)
        return await self.inner.refresh()

    async def revoke(self) -> None:
        await self.inner.revoke()


class FaultyStore(DiscoveryStore):
    """Delegates to a real store, with injectable refresh delay and failures."""

    def __init__(self, inner: DiscoveryStore) -> None:
        self.inner = inner
        self.refresh_delay = 0.0
        self.failing = False
        self.refresh_calls = 0

    async def grant_lease(self, ttl: float) -> Lease:
        return FaultyLease(await self.inner.grant_lease(ttl), self)

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        inner = lease.inner if isinstance(lease, FaultyLease) else lease
        return await self.inner.put(key, value, inner)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        return await self.inner.get_prefix(prefix)

    def watch_prefix(
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncIterator[WatchEvent]:
        return self.inner.watch_prefix(prefix, start_revision)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[FaultyStore]:
    store = FaultyStore(await open_store(store_url))
    yield store
    await store.close()


async def keys(store: DiscoveryStore) -> list[str]:
    return [kv.key for kv in (await store.get_prefix("drivetrain/"))[0]]


async def deletes_during(store: DiscoveryStore, seconds: float) -> list[WatchEvent]:
    """Delete events under drivetrain/ while ``seconds`` pass."""
    _, revision = await store.get_prefix("drivetrain/")
    await asyncio.sleep(seconds)
    seen: list[WatchEvent] = []
    events = aiter(store.watch_prefix("drivetrain/", revision))
    try:
        # Read what happened in the window: everything after the snapshot, up to now.
        _, now = await store.get_prefix("drivetrain/")
        while now > revision:
            async with asyncio.timeout(5):
                event = await anext(events)
            if event.type == "delete":
                seen.append(event)
            if event.revision >= now:
                break
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return seen


async def test_start_writes_every_record_and_stop_removes_them_at_once(store: FaultyStore) -> None:
    registration = Registration(store, TTL * 30, records())
    await registration.start()
    assert sorted(await keys(store)) == sorted(registration.keys)
    await registration.stop()
    assert await keys(store) == []


async def test_keep_alive_holds_the_records_past_several_ttls(store: FaultyStore) -> None:
    async with Registration(store, TTL, records()) as registration:
        assert await deletes_during(store, TTL * 3) == []
        assert registration.registrations == 1
        assert sorted(await keys(store)) == sorted(registration.keys)


@pytest.mark.slow
async def test_keep_alive_survives_a_store_that_answers_slowly(store: FaultyStore) -> None:
    # Every refresh takes half the TTL: refreshes are scheduled from when the last good one was
    # sent, so the lease never lapses and the records never blink.
    store.refresh_delay = TTL / 2
    async with Registration(store, TTL, records()) as registration:
        assert await deletes_during(store, TTL * 4) == []
        assert registration.registrations == 1
        assert store.refresh_calls >= 3


async def test_keep_alive_retries_failed_refreshes_within_the_ttl(store: FaultyStore) -> None:
    async with Registration(store, TTL * 3, records()) as registration:
        store.failing = True
        await asyncio.sleep(TTL * 2)  # well inside the 3-TTL lease: retries, no re-registration
        store.failing = False
        assert await deletes_during(store, TTL) == []
        assert registration.refresh_failures >= 2
        assert registration.registrations == 1


async def test_lost_lease_is_replaced_and_the_same_records_come_back(store: FaultyStore) -> None:
    async with Registration(store, TTL, records(), refresh_every=TTL / 5) as registration:
        lost = registration.lease
        assert lost is not None
        await lost.revoke()  # behind the registration's back
        assert await keys(store) == []
        async with asyncio.timeout(10):
            while sorted(await keys(store)) != sorted(registration.keys):
                await asyncio.sleep(0.05)
        # The keys can be stored before the last put's answer reaches the registration.
        await eventually_async(lambda: registration.registrations == 2, 10, what="re-registration")
        assert registration.lease is not None and registration.lease.id != lost.id
        stored = {kv.key: kv.value for kv in (await store.get_prefix("drivetrain/"))[0]}
        assert stored == {r.key: r.encode() for r in registration.records}


def test_a_ttl_below_one_second_is_refused() -> None:
    with pytest.raises(ValueError, match=r"at least 1\.0 s"):
        Registration(None, 0.5, records())  # type: ignore[arg-type]
