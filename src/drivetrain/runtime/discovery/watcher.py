"""The frontend's view of the workers and models in its namespace scope.

``ModelWatcher(store, scope)`` reads a snapshot of every store prefix the scope needs (model cards
and instance records), then watches each prefix from the snapshot's revision, so no change falls
between the two.  It keeps:

* ``instances``: every live instance record in scope (for ``/health``),
* ``models``: served name -> ``ModelEntry`` (its cards and the instances that serve it).

A model is listed while at least one card for it exists; an instance serves it once both its card
and its instance record are present (``ModelEntry.instances`` may be empty for a moment: the
frontend answers 503 then).  Listeners and ``wait_for`` learn about every change.

Deliberate differences from Dynamo's watcher (see docs/discovery.md): the namespace scope is a
prefix watch, so the store sends few or no out-of-scope keys; a put outside the scope (possible
with a literal or generation prefix) is skipped at DEBUG; a delete for a key never accepted is
logged at DEBUG and changes nothing (Dynamo logged an error, later a warning, for every worker
leaving another namespace).  When the store fails (a broken watch, a compacted revision, a
restart) the watcher re-reads the snapshot, reconciles, and watches again, with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drivetrain.runtime.discovery.base import DiscoveryStore, StoreUnavailableError, WatchEvent
from drivetrain.runtime.records import (
    InstanceRecord,
    ModelCard,
    ModelType,
    RecordError,
    RecordKind,
    decode_record,
    parse_key,
)
from drivetrain.runtime.scope import NamespaceScope

log = logging.getLogger(__name__)

InstanceRef = tuple[str, str]  # (namespace, instance_id): how a card names its instance
Listener = Callable[["ModelWatcher"], None]


@dataclass
class ModelEntry:
    """One served model name: its cards (one per instance) and the live instances serving it."""

    name: str
    cards: dict[InstanceRef, ModelCard] = field(default_factory=dict)
    instances: list[InstanceRecord] = field(default_factory=list)

    @property
    def model_types(self) -> set[ModelType]:
        return {t for card in self.cards.values() for t in card.model_types}

    @property
    def namespaces(self) -> set[str]:
        return {namespace for namespace, _ in self.cards}

    def card_for(self, instance: InstanceRecord) -> ModelCard | None:
        return self.cards.get((instance.namespace, instance.instance_id))


class ModelWatcher:
    def __init__(
        self,
        store: DiscoveryStore,
        scope: NamespaceScope,
        *,
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        self.store = store
        self.scope = scope
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.models: dict[str, ModelEntry] = {}
        self.instances: dict[str, InstanceRecord] = {}  # by key
        self.ready = asyncio.Event()  # set once the first snapshot is in
        self.version = 0  # bumped on every change
        self.resyncs = 0  # snapshots re-read after a store failure
        self._cards: dict[str, ModelCard] = {}  # by key
        self._instance_by_ref: dict[InstanceRef, InstanceRecord] = {}
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self, wait_ready: bool = True) -> None:
        """Start watching; by default wait for the first snapshot (it retries while the store is down)."""
        if self._task is not None:
            raise RuntimeError("watcher already started")
        self._task = asyncio.create_task(self._run(), name="model-watcher")
        if wait_ready:
            ready = asyncio.create_task(self.ready.wait())
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if self._task.done():
                self._task.result()  # raises what stopped it

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> ModelWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---- what the frontend reads --------------------------------------------------------

    def model_types(self) -> set[ModelType]:
        """Every model type served by some model in scope (which routes are enabled)."""
        return {t for entry in self.models.values() for t in entry.model_types}

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(watcher)`` after every change (in the event loop; keep it quick)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    async def wait_for(
        self, predicate: Callable[[ModelWatcher], bool], timeout: float | None = None
    ) -> None:
        """Wait until ``predicate(watcher)`` holds (``TimeoutError`` after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                await self._changed.wait()

    # ---- the watch loop -----------------------------------------------------------------

    def _prefixes(self) -> list[tuple[RecordKind, str]]:
        kinds: tuple[RecordKind, ...] = ("instances", "models")
        return [(kind, prefix) for kind in kinds for prefix in self.scope.watch_prefixes(kind)]

    async def _run(self) -> None:
        backoff = self.initial_backoff
        while True:
            began = time.monotonic()
            try:
                revisions = await self._resync()
                self.ready.set()
                async with asyncio.TaskGroup() as group:
                    for prefix, revision in revisions:
                        group.create_task(self._follow(prefix, revision))
            except Exception as exc:
                reason = _first_cause(exc)
                if time.monotonic() - began > self.max_backoff:
                    backoff = self.initial_backoff  # it had been working: start over quickly
                log.warning("discovery watch failed (%s); re-reading in %.2fs", reason, backoff)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff)
                self.resyncs += 1

    async def _resync(self) -> list[tuple[str, int]]:
        """Read every prefix, replace the state by what is there, return where to watch from."""
        cards: dict[str, ModelCard] = {}
        instances: dict[str, InstanceRecord] = {}
        revisions: list[tuple[str, int]] = []
        for _kind, prefix in self._prefixes():
            items, revision = await self.store.get_prefix(prefix)
            revisions.append((prefix, revision))
            for item in items:
                record = self._accept(item.key, item.value)
                if isinstance(record, ModelCard):
                    cards[item.key] = record
                elif isinstance(record, InstanceRecord):
                    instances[item.key] = record
        if cards != self._cards or instances != self.instances:
            self._cards = cards
            self.instances = instances
            self._rebuild()
        return revisions

    async def _follow(self, prefix: str, revision: int) -> None:
        async for event in self.store.watch_prefix(prefix, revision):
            self._apply(event)
        raise StoreUnavailableError(f"watch on {prefix!r} ended")

    # ---- applying events ----------------------------------------------------------------

    def _accept(self, key: str, value: bytes) -> InstanceRecord | ModelCard | None:
        """The record at ``key`` if it is in scope and valid; None (and a log line) otherwise."""
        try:
            parsed = parse_key(key)
        except RecordError as exc:
            log.warning("ignoring %s", exc)
            return None
        if not self.scope.accepts(parsed.namespace):
            log.debug(
                "skipping %s: namespace %r is outside %s",
                key,
                parsed.namespace,
                self.scope.describe(),
            )
            return None
        try:
            return decode_record(key, value)[1]
        except RecordError as exc:
            log.warning("ignoring invalid record at %s: %s", key, exc)
            return None

    def _apply(self, event: WatchEvent) -> None:
        if event.type == "delete":
            if event.key in self._cards:
                del self._cards[event.key]
            elif event.key in self.instances:
                del self.instances[event.key]
            else:
                log.debug(
                    "delete for %s, a key this frontend never accepted: nothing to do", event.key
                )
                return
        else:
            record = self._accept(event.key, event.value or b"")
            if record is None:
                return
            table: dict[str, ModelCard] | dict[str, InstanceRecord]
            table = self._cards if isinstance(record, ModelCard) else self.instances
            if table.get(event.key) == record:
                return  # a re-registration under a new lease: same content, nothing changed
            table[event.key] = record  # type: ignore[assignment]
        self._rebuild()

    def _rebuild(self) -> None:
        # Full rebuild: O(records) per change, microseconds for the hundreds of instances one
        # frontend sees, and it cannot drift from the raw tables the way incremental updates can.
        self._instance_by_ref = {(r.namespace, r.instance_id): r for r in self.instances.values()}
        models: dict[str, ModelEntry] = {}
        for key in sorted(self._cards):
            card = self._cards[key]
            entry = models.setdefault(card.name, ModelEntry(card.name))
            ref = (card.namespace, card.instance_id)
            entry.cards[ref] = card
            instance = self._instance_by_ref.get(ref)
            if instance is not None:
                entry.instances.append(instance)
        self.models = models
        self._notify()

    def _notify(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception:
                log.exception("discovery listener failed")


def _first_cause(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
