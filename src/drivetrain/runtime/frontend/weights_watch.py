"""The committed weight version of every model in scope, followed in discovery (docs/rl.md).

Every frontend replica reads ``drivetrain/v1/weights/`` (``records.CommittedWeights``) and
routes by it (``registry.Target.serves``), so a commit made through one replica holds on all of
them, and a restarted frontend knows it before it routes.  Like the model watcher: a snapshot,
then a watch from its revision, re-read after any store failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from drivetrain.runtime.discovery import DiscoveryStore
from drivetrain.runtime.frontend.registry import ServingTable
from drivetrain.runtime.records import (
    WEIGHTS_PREFIX,
    CommittedWeights,
    RecordError,
    parse_weights_key,
)
from drivetrain.runtime.scope import NamespaceScope

log = logging.getLogger(__name__)

RETRY_S = 0.5


class WeightsWatcher:
    def __init__(self, store: DiscoveryStore, scope: NamespaceScope, table: ServingTable) -> None:
        self.store = store
        self.scope = scope
        self.table = table
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="weights-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _apply(self, key: str, value: bytes | None) -> None:
        where = parse_weights_key(key)
        if where is None or value is None or not self.scope.accepts(where[0]):
            return
        try:
            record = CommittedWeights.decode(value)
        except RecordError as exc:
            log.warning("ignoring invalid weights record at %s: %s", key, exc)
            return
        self.table.set_committed(record.model, record.version, record.sequence, record.source)

    async def _run(self) -> None:
        while True:
            try:
                items, revision = await self.store.get_prefix(WEIGHTS_PREFIX)
                for item in items:
                    self._apply(item.key, item.value)
                self.ready.set()
                async for event in self.store.watch_prefix(WEIGHTS_PREFIX, revision):
                    if event.type == "put":
                        self._apply(event.key, event.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watching committed weight versions failed (%s); re-reading", exc)
            await asyncio.sleep(RETRY_S)
