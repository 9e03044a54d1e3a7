"""The frontend's model watcher: scoping by namespace, model entries, unknown deletes, recovery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from drivetrain.runtime.discovery import DiscoveryStore, open_store
from drivetrain.runtime.discovery.memory import MemoryStore
from drivetrain.runtime.discovery.registration import Registration
from drivetrain.runtime.discovery.watcher import ModelWatcher
from drivetrain.runtime.records import InstanceRecord, ModelCard, ModelType
from drivetrain.runtime.scope import NamespaceScope

TTL = 30.0  # these tests stop their registrations explicitly
WAIT = 10.0


def worker_records(
    namespace: str, model: str, instance_id: str, types: list[ModelType] | None = None
) -> list[InstanceRecord | ModelCard]:
    return [
        InstanceRecord(
            instance_id=instance_id,
            namespace=namespace,
            component="backend",
            address=f"127.0.0.1:{1000 + len(instance_id)}",
            transport="tcp",
            model_names=[model],
        ),
        ModelCard(
            name=model,
            namespace=namespace,
            model_types=types or ["chat", "completions"],
            instance_id=instance_id,
        ),
    ]


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[DiscoveryStore]:
    store = await open_store(store_url)
    yield store
    await store.close()


async def register(
    store: DiscoveryStore, namespace: str, model: str, instance_id: str
) -> Registration:
    registration = Registration(store, TTL, worker_records(namespace, model, instance_id))
    await registration.start()
    return registration


NAMESPACES = ["team", "team-1a2b3c4d", "team-bar", "teamx", "other", "global"]


@pytest.mark.parametrize(
    ("scope", "visible"),
    [
        (NamespaceScope.from_args(namespace="team"), ["team"]),
        (
            NamespaceScope.from_args(namespace_prefix="team"),
            ["team", "team-1a2b3c4d", "team-bar", "teamx"],
        ),
        (NamespaceScope.from_args(namespace_prefix="team", strict=True), ["team", "team-1a2b3c4d"]),
        (NamespaceScope.from_args(), NAMESPACES),
        (NamespaceScope.from_args(namespace="global"), NAMESPACES),
    ],
    ids=["exact", "prefix", "strict-prefix", "none", "global"],
)
async def test_a_scoped_watcher_sees_exactly_the_workers_of_its_namespaces(
    store: DiscoveryStore, scope: NamespaceScope, visible: list[str]
) -> None:
    registrations = [
        await register(store, ns, f"model-{ns}", f"id-{i}") for i, ns in enumerate(NAMESPACES)
    ]
    expected = {f"model-{ns}" for ns in visible}
    async with ModelWatcher(store, scope) as watcher:
        # Registered before the watcher started: the snapshot has them.
        assert set(watcher.models) == expected
        assert {i.namespace for i in watcher.instances.values()} == set(visible)
        # Workers leaving: every model in scope goes, and nothing else ever appeared.
        for registration in registrations:
            await registration.stop()
        await watcher.wait_for(lambda w: not w.models and not w.instances, WAIT)


async def test_workers_arriving_after_the_snapshot_are_watched_in(store: DiscoveryStore) -> None:
    scope = NamespaceScope.from_args(namespace="team")
    async with ModelWatcher(store, scope) as watcher:
        assert watcher.models == {}
        first = await register(store, "team", "tiny", "a")
        await register(store, "elsewhere", "tiny", "z")
        second = await register(store, "team", "tiny", "b")
        await watcher.wait_for(lambda w: len(w.models.get("tiny", _empty).instances) == 2, WAIT)
        entry = watcher.models["tiny"]
        assert [i.instance_id for i in entry.instances] == ["a", "b"]
        assert entry.namespaces == {"team"}
        assert watcher.model_types() == {"chat", "completions"}
        await first.stop()
        await watcher.wait_for(lambda w: len(w.models["tiny"].instances) == 1, WAIT)
        await second.stop()
        await watcher.wait_for(lambda w: "tiny" not in w.models, WAIT)
        assert watcher.model_types() == set()


class _Empty:
    instances: list[InstanceRecord] = []


_empty = _Empty()


async def test_a_model_with_a_card_but_no_instance_record_has_no_live_instance(
    store: DiscoveryStore,
) -> None:
    card = worker_records("ns", "tiny", "a")[1]
    await store.put(card.key, card.encode())
    async with ModelWatcher(store, NamespaceScope.from_args()) as watcher:
        assert watcher.models["tiny"].instances == []
        assert watcher.models["tiny"].model_types == {"chat", "completions"}


async def test_delete_of_a_key_never_accepted_is_logged_at_debug_and_changes_nothing(
    store: DiscoveryStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="drivetrain.runtime.discovery.watcher")

    def logged(text: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if text in r.getMessage()]

    scope = NamespaceScope.from_args(namespace_prefix="team", strict=True)
    async with ModelWatcher(store, scope) as watcher:
        await register(store, "team", "tiny", "a")
        await watcher.wait_for(lambda w: len(w.instances) == 1 and "tiny" in w.models, WAIT)
        version = watcher.version
        # "team-bar" passes the store prefix "team-" but not the strict rule: its puts are
        # skipped, and its deletes are for keys the watcher never accepted.
        stray = await register(store, "team-bar", "tiny", "b")
        await stray.stop()
        async with asyncio.timeout(WAIT):
            while len(logged("never accepted")) < 2:  # its instance record and its card
                await asyncio.sleep(0.02)
        assert watcher.version == version
        assert [i.instance_id for i in watcher.models["tiny"].instances] == ["a"]
    assert logged("outside") and all(r.levelno == logging.DEBUG for r in logged("outside"))
    assert all(r.levelno == logging.DEBUG for r in logged("never accepted"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_invalid_record_is_ignored_with_a_warning(
    store: DiscoveryStore, caplog: pytest.LogCaptureFixture
) -> None:
    card = worker_records("ns", "tiny", "a")[1]
    await store.put(card.key, b'{"name": "tiny"}')
    async with ModelWatcher(store, NamespaceScope.from_args()) as watcher:
        assert watcher.models == {}
    assert any("invalid record" in r.getMessage() for r in caplog.records)


async def test_listeners_hear_of_every_change(store: DiscoveryStore) -> None:
    heard: list[set[str]] = []
    watcher = ModelWatcher(store, NamespaceScope.from_args())
    watcher.add_listener(lambda w: heard.append(set(w.models)))
    async with watcher:
        registration = await register(store, "ns", "tiny", "a")
        await watcher.wait_for(lambda w: "tiny" in w.models, WAIT)
        await registration.stop()
        await watcher.wait_for(lambda w: not w.models, WAIT)
    assert heard[-1] == set() and {"tiny"} in heard


async def test_a_broken_watch_is_recovered_by_a_new_snapshot() -> None:
    store = MemoryStore()
    async with ModelWatcher(store, NamespaceScope.from_args(namespace="ns")) as watcher:
        store.break_watches()
        await register(store, "ns", "tiny", "a")
        await watcher.wait_for(lambda w: "tiny" in w.models, WAIT)
        assert watcher.resyncs >= 1
