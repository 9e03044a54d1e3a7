"""Every discovery backend keeps the same contract (runtime/discovery/base.py).

Each test runs against memory://, file://, a real etcd and kubernetes:// on the emulator (the
``store_url`` fixture).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivetrain.runtime.discovery import (
    DiscoveryStore,
    DiscoveryURLError,
    LeaseNotFoundError,
    StoreUnavailableError,
    WatchEvent,
    open_store,
    validate_url,
)
from tests.runtime.conftest import free_port

TTL = 1.0  # the shortest lease etcd grants


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[DiscoveryStore]:
    store = await open_store(store_url)
    yield store
    await store.close()


async def next_events(
    events: AsyncIterator[WatchEvent], count: int, timeout: float = 10
) -> list[WatchEvent]:
    async with asyncio.timeout(timeout):
        return [await anext(events) for _ in range(count)]


async def test_put_then_get_prefix_returns_the_keys_under_the_prefix(store: DiscoveryStore) -> None:
    await store.put("a/1", b"one")
    await store.put("a/2", b"two")
    await store.put("b/1", b"other")
    items, _ = await store.get_prefix("a/")
    assert [(kv.key, kv.value) for kv in items] == [("a/1", b"one"), ("a/2", b"two")]


async def test_every_write_moves_the_revision_forward(store: DiscoveryStore) -> None:
    first = await store.put("k", b"1")
    second = await store.put("k", b"2")
    _, snapshot = await store.get_prefix("k")
    assert first < second <= snapshot


async def test_delete_removes_the_key_and_a_missing_key_is_no_error(store: DiscoveryStore) -> None:
    await store.put("k", b"1")
    await store.delete("k")
    await store.delete("never-there")
    assert (await store.get_prefix("k"))[0] == []


async def test_watch_from_a_snapshot_revision_sees_every_later_change(
    store: DiscoveryStore,
) -> None:
    await store.put("w/before", b"0")
    _, revision = await store.get_prefix("w/")
    # Changes made before the watch is iterated must still arrive: they are after the snapshot.
    await store.put("w/a", b"1")
    await store.put("elsewhere", b"x")
    await store.delete("w/before")
    events = aiter(store.watch_prefix("w/", revision))
    got = await next_events(events, 2)
    assert [(e.type, e.key, e.value) for e in got] == [
        ("put", "w/a", b"1"),
        ("delete", "w/before", None),
    ]
    assert got[0].revision < got[1].revision
    await events.aclose()  # type: ignore[attr-defined]


async def test_revoking_a_lease_deletes_its_keys_at_once(store: DiscoveryStore) -> None:
    lease = await store.grant_lease(5)
    await store.put("r/1", b"x", lease)
    await store.put("r/2", b"y", lease)
    _, revision = await store.get_prefix("r/")
    await lease.revoke()
    assert (await store.get_prefix("r/"))[0] == []
    events = aiter(store.watch_prefix("r/", revision))
    got = await next_events(events, 2)
    assert sorted((e.type, e.key) for e in got) == [("delete", "r/1"), ("delete", "r/2")]
    await events.aclose()  # type: ignore[attr-defined]


async def test_a_lease_not_kept_alive_expires_and_its_keys_are_deleted(
    store_url: str, store: DiscoveryStore
) -> None:
    if store_url.startswith("kubernetes:"):
        pytest.skip(
            "kubernetes:// has no TTL: records leave when their pod is not Ready "
            "(test_discovery_kubernetes.py)"
        )
    lease = await store.grant_lease(TTL)
    _, revision = await store.get_prefix("e/")
    await store.put("e/1", b"x", lease)
    events = aiter(store.watch_prefix("e/", revision))
    put, delete = await next_events(events, 2, timeout=TTL * 10)
    assert (put.type, delete.type, delete.key) == ("put", "delete", "e/1")
    assert await lease.refresh() is False
    await events.aclose()  # type: ignore[attr-defined]


async def test_a_refreshed_lease_outlives_its_ttl(store: DiscoveryStore) -> None:
    lease = await store.grant_lease(TTL)
    await store.put("alive", b"x", lease)
    for _ in range(6):
        await asyncio.sleep(TTL / 3)
        assert await lease.refresh() is True
    assert [kv.key for kv in (await store.get_prefix("alive"))[0]] == ["alive"]
    await lease.revoke()


async def test_put_under_a_revoked_lease_is_refused(store: DiscoveryStore) -> None:
    lease = await store.grant_lease(5)
    await lease.revoke()
    assert await lease.refresh() is False
    with pytest.raises(LeaseNotFoundError):
        await store.put("k", b"x", lease)


async def test_two_handles_on_one_url_share_the_store(
    store_url: str, store: DiscoveryStore
) -> None:
    other = await open_store(store_url)
    try:
        await other.put("shared/k", b"v")
        assert [kv.value for kv in (await store.get_prefix("shared/"))[0]] == [b"v"]
    finally:
        await other.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("etcd://10.0.0.1:2380", ("etcd", "10.0.0.1:2380")),
        ("etcd://etcd", ("etcd", "etcd:2379")),
        ("file:///tmp/disc", ("file", "/tmp/disc")),
        ("memory://", ("memory", "")),
        ("memory://shared", ("memory", "shared")),
        ("kubernetes://", ("kubernetes", "")),
        ("kubernetes://team-a", ("kubernetes", "team-a")),
        ("kubernetes://team-a/", ("kubernetes", "team-a")),
    ],
)
def test_discovery_urls_name_a_backend_and_a_location(url: str, expected: tuple[str, str]) -> None:
    assert validate_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://x", "expected etcd://host:port"),
        ("etcd://:2379", "needs a host"),
        ("etcd://host:port", "port is not a number"),
        ("file://", "needs a directory"),
        ("kubernetes://Team_A", "not a Kubernetes namespace"),
        ("kubernetes://ns/sub", "expected kubernetes:// or kubernetes://NAMESPACE"),
        ("kubernetes://ns?x=1", "expected kubernetes:// or kubernetes://NAMESPACE"),
    ],
)
def test_bad_discovery_urls_say_what_was_expected(url: str, message: str) -> None:
    with pytest.raises(DiscoveryURLError, match=message):
        validate_url(url)


async def test_an_unreachable_etcd_is_reported_as_unavailable_not_hung() -> None:
    store = await open_store(f"etcd://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        with pytest.raises(StoreUnavailableError, match="get prefix"):
            await store.get_prefix("drivetrain/")
    finally:
        await store.close()
