"""The file store's own mechanics: log rotation, compaction, lease sweeping, damaged lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivetrain.runtime.discovery import RevisionCompactedError, WatchEvent
from drivetrain.runtime.discovery import filestore as filestore_module
from drivetrain.runtime.discovery.filestore import FileStore
from drivetrain.runtime.discovery.watcher import ModelWatcher
from drivetrain.runtime.records import ModelCard
from drivetrain.runtime.scope import NamespaceScope

WAIT = 10.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FileStore]:
    store = await FileStore.open(tmp_path / "disc")
    yield store
    await store.close()


async def take(events: AsyncIterator[WatchEvent], count: int) -> list[WatchEvent]:
    async with asyncio.timeout(WAIT):
        return [await anext(events) for _ in range(count)]


async def test_a_watch_follows_the_change_log_across_rotations(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filestore_module, "LOG_MAX_BYTES", 300)  # a rotation every few puts
    events = aiter(store.watch_prefix("k/"))
    first = asyncio.ensure_future(anext(events))  # the watch is open before the writes
    await asyncio.sleep(0.1)
    await store.put("k/00", b"x" * 20)
    got = [await first]
    for i in range(1, 20):
        await store.put(f"k/{i:02d}", b"x" * 20)
        got += await take(events, 1)
    assert [e.key for e in got] == [f"k/{i:02d}" for i in range(20)]
    await events.aclose()  # type: ignore[attr-defined]


def test_a_reader_that_slept_through_several_rotations_reports_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filestore_module, "LOG_MAX_BYTES", 300)
    files = filestore_module._Files(tmp_path)
    files.init()
    reader = filestore_module._LogReader(files.log_path, None)
    assert reader.read() == []
    for i in range(40):  # several rotations before the reader looks again
        files.put(f"k/{i:02d}", b"x" * 20, None)
    with pytest.raises(RevisionCompactedError, match="rotated past"):
        for _ in range(100):  # the old log drains first, then the gap shows
            reader.read()
    reader.close()


async def test_watching_from_a_revision_the_rotated_log_no_longer_holds_is_refused(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filestore_module, "LOG_MAX_BYTES", 300)
    for i in range(40):
        await store.put(f"k/{i:02d}", b"x" * 20)
    with pytest.raises(RevisionCompactedError):
        await anext(aiter(store.watch_prefix("k/", 1)))


async def test_the_model_watcher_recovers_from_a_compacted_log(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filestore_module, "LOG_MAX_BYTES", 300)
    card = ModelCard(name="tiny", namespace="ns", model_types=["chat"], instance_id="a")
    await store.put(card.key, card.encode())
    async with ModelWatcher(store, NamespaceScope.from_args()) as watcher:
        for i in range(40):  # rotate the log several times while the watcher follows it
            await store.put(f"noise/{i}", b"x" * 20)
        other = card.model_copy(update={"instance_id": "b"})
        await store.put(other.key, other.encode())
        await watcher.wait_for(lambda w: len(w.models["tiny"].cards) == 2, WAIT)


async def test_an_expired_lease_is_swept_by_another_process_that_looks(tmp_path: Path) -> None:
    owner = await FileStore.open(tmp_path / "disc")
    reader = await FileStore.open(tmp_path / "disc", sweep_interval=0.0)
    lease = await owner.grant_lease(1.0)
    await owner.put("leased/k", b"v", lease)
    await owner.close()  # the owner goes away without revoking
    async with asyncio.timeout(WAIT):
        while (await reader.get_prefix("leased/"))[0]:
            await asyncio.sleep(0.1)
    assert not any((tmp_path / "disc" / "leases").iterdir())
    await reader.close()


async def test_a_damaged_log_line_is_skipped_and_later_changes_still_arrive(
    store: FileStore, tmp_path: Path
) -> None:
    _, revision = await store.get_prefix("k/")
    with (tmp_path / "disc" / "events.log").open("ab") as log:
        log.write(b'{"r": 99, "t": "pu')  # a writer killed in the middle of a line
    await store.put("k/after", b"v")
    events = aiter(store.watch_prefix("k/", revision))
    (event,) = await take(events, 1)
    assert (event.key, event.value) == ("k/after", b"v")
    await events.aclose()  # type: ignore[attr-defined]


async def test_keys_too_long_for_a_file_name_are_stored_under_a_hash(store: FileStore) -> None:
    key = "long/" + "x" * 400
    await store.put(key, b"v")
    items, _ = await store.get_prefix("long/")
    assert [(kv.key, kv.value) for kv in items] == [(key, b"v")]
    await store.delete(key)
    assert (await store.get_prefix("long/"))[0] == []
