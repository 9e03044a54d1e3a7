"""A local copy of one Kubernetes collection, kept current by list-then-watch.

``Reflector(api, path, selector, summarize, on_change)`` lists the collection (paginated), then
watches it from the list's ``resourceVersion``, as client-go's reflector does:

* a watch that the server ends (its ``timeoutSeconds``) is opened again from the last
  ``resourceVersion`` seen (bookmarks included), with no re-list; one that ends within a second
  with no event counts as a failure (below), so a misbehaving server is not asked in a loop;
* **410 Gone** (as an HTTP status or an ``ERROR`` event) means that version is no longer kept:
  the collection is listed again, and the copy replaced by what is there;
* any other failure (connection refused, reset, a 5xx, a timeout) is retried with jittered
  backoff from 50 ms doubling to 5 s, resuming the watch where it stopped.

Objects are kept as ``summarize(obj)`` (only what the reader needs: a Pod is kept as its uid
and readiness, not its whole spec); ``None`` drops an object.  ``on_change()`` runs after every
change of the copy, in the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from drivetrain.errors import DrivetrainError
from drivetrain.runtime.discovery.base import StoreUnavailableError
from drivetrain.runtime.discovery.kubeapi import KubeApi, KubeApiError

log = logging.getLogger(__name__)

T = TypeVar("T")

PAGE_SIZE = 500
WATCH_TIMEOUT_S = 300.0  # asked of the server, stretched by up to 2x at random (client-go's)
READ_SLACK_S = 30.0  # a watch silent for its timeout plus this is taken as a dead connection
INITIAL_BACKOFF_S = 0.05
MAX_BACKOFF_S = 5.0
SHORT_WATCH_S = 1.0  # a watch ended sooner than this with no event counts as a failure


class _Gone(DrivetrainError):
    """The resourceVersion to resume from has been compacted away (410)."""


class Reflector(Generic[T]):
    def __init__(
        self,
        api: KubeApi,
        path: str,
        selector: str | None,
        summarize: Callable[[dict[str, Any]], T | None],
        on_change: Callable[[], None],
        *,
        watch_timeout: float = WATCH_TIMEOUT_S,
    ) -> None:
        self.api = api
        self.path = path
        self.selector = selector
        self.summarize = summarize
        self.on_change = on_change
        self.watch_timeout = watch_timeout
        self.objects: dict[str, T] = {}
        self.synced = asyncio.Event()  # set once the first list is in
        self.resource_version: str | None = None
        self.lists = 0  # full lists taken (1 + re-lists after 410 Gone)
        self.last_error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._backoff = INITIAL_BACKOFF_S

    def describe(self) -> str:
        return self.path + (f"?labelSelector={self.selector}" if self.selector else "")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"reflector {self.describe()}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _params(self) -> dict[str, str]:
        return {"labelSelector": self.selector} if self.selector else {}

    async def _run(self) -> None:
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch()
            except _Gone:
                log.info(
                    "%s: resourceVersion %s is gone; listing again",
                    self.describe(),
                    self.resource_version,
                )
                self.resource_version = None
            except (StoreUnavailableError, KubeApiError) as exc:
                self.last_error = exc
                # One warning per outage; the retries after it are DEBUG.
                log.log(
                    logging.DEBUG if self._failing else logging.WARNING,
                    "%s: %s; retrying in %.2fs",
                    self.describe(),
                    exc,
                    self._backoff,
                )
                self._failing = True
                await asyncio.sleep(self._backoff * (0.5 + random.random()))
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)

    def _answered(self) -> None:
        """The server answered a list or sent an event: the outage, if any, is over."""
        if self._failing:
            log.info("%s: the API server answers again", self.describe())
        self._failing = False
        self._backoff = INITIAL_BACKOFF_S
        self.last_error = None

    async def _list(self) -> None:
        items: dict[str, T] = {}
        token: str | None = None
        while True:
            params = {**self._params(), "limit": str(PAGE_SIZE)}
            if token:
                params["continue"] = token
            try:
                body = await self.api.request("GET", self.path, params=params)
            except KubeApiError as exc:
                if exc.status == 410 and token:  # the continue token expired: start over
                    items, token = {}, None
                    continue
                raise
            for obj in body.get("items") or []:
                name = (obj.get("metadata") or {}).get("name")
                summary = self.summarize(obj)
                if name and summary is not None:
                    items[name] = summary
            meta = body.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                self.resource_version = str(meta.get("resourceVersion") or "") or None
                break
        self.objects = items
        self.lists += 1
        self.synced.set()
        self._answered()
        self.on_change()

    async def _watch(self) -> None:
        timeout = self.watch_timeout * (1 + random.random())
        params = {
            **self._params(),
            "resourceVersion": self.resource_version or "",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(int(timeout)),
        }
        began = time.monotonic()
        events = 0
        try:
            async for event in self.api.watch(self.path, params, timeout + READ_SLACK_S):
                events += 1
                self._apply(event)
        except KubeApiError as exc:
            if exc.status == 410:
                raise _Gone from None
            raise
        lasted = time.monotonic() - began
        if events == 0 and lasted < SHORT_WATCH_S:
            # A server (or proxy) that ends every watch at once would otherwise be asked again
            # in a tight loop: treat it as a failure, with backoff (client-go does the same).
            raise StoreUnavailableError(f"the watch ended after {lasted:.2f}s with no event")
        log.debug("%s: the server ended the watch at %s", self.describe(), self.resource_version)

    def _apply(self, event: dict[str, Any]) -> None:
        self._answered()
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise StoreUnavailableError(f"watch error: {obj.get('message') or obj}")
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        name = meta.get("name")
        changed = False
        if name and kind in ("ADDED", "MODIFIED"):
            summary = self.summarize(obj)
            if summary is None:
                changed = self.objects.pop(name, None) is not None
            elif self.objects.get(name) != summary:
                self.objects[name] = summary
                changed = True
        elif name and kind == "DELETED":
            changed = self.objects.pop(name, None) is not None
        if version:
            self.resource_version = version
        if changed:
            self.on_change()
