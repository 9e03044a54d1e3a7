"""The in-process event log (``memory.StoreState``) that memory:// and the kubernetes:// mirror
share: a watch is refused only when an event it needs has been dropped from the history."""

from __future__ import annotations

import asyncio

import pytest

from drivetrain.runtime.discovery import RevisionCompactedError, memory
from drivetrain.runtime.discovery.memory import MemoryStore, StoreState


async def first_event(state: StoreState, start: int) -> int:
    async with asyncio.timeout(5):
        async for event in state.watch("k", start, set()):
            return event.revision
    raise AssertionError("no event")


async def test_revisions_moved_on_without_events_are_no_compaction() -> None:
    state = StoreState()
    state.advance()
    state.advance()  # two writes nobody here saw (revisions 1, 2)
    state.put("k", b"v", None)  # revision 3
    assert await first_event(state, 0) == 3


async def test_a_watch_that_needs_a_dropped_event_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "HISTORY", 3)
    store = MemoryStore()
    for i in range(5):
        await store.put("k", str(i).encode())  # revisions 1..5; 1 and 2 are dropped
    _, now = await store.get_prefix("k")
    assert now == 5
    assert await first_event(store._state, 2) == 3  # needs 3, 4, 5: all kept
    with pytest.raises(RevisionCompactedError, match="history kept"):
        await first_event(store._state, 1)  # needs revision 2, which is gone
