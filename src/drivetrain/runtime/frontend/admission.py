"""Admission: the one place per model where a request waits before it is routed.

A request goes straight on while some live instance of its model has room (``Target.has_room``:
the worker's reported load against its capacity) and nobody is waiting before it.  Otherwise it
waits in the model's queue, in arrival order, bounded in length (``max_queue``) and in time:

* while some instance is live, up to ``queue_timeout``; a full queue or the timeout is an
  overload answer (``overload_status``, 429 by default, with ``Retry-After``): the model is
  saturated;
* while no instance is live (none registered, every one quarantined after a failure), up to
  ``retry_window``, so that a failover or a restart in progress is waited for; after it, 503.

The same queue holds requests while the model is held (``hold()``/``release()``: the RL API's
pause with ``keep``), so a pause is bounded exactly as overload is.  ``close()`` (the frontend
is draining) refuses every waiting and every new request with 503.

Waking is cheap and exact: when room may have opened (a request ended, a worker reported its
load, discovery changed) ``pump()`` wakes the request at the head.  That request looks for room
itself and, if it goes, registers its stream on the chosen worker in the same event-loop step,
so the next request it wakes sees the slot taken.  A waiting queue is also looked at every
``POLL_S`` (a quarantine ending is no event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from drivetrain.errors import DrivetrainError

POLL_S = 0.1
#: How long a request waits for a live instance before its 503 (``--retry-window``).  Long enough
#: for a failover shadow to take over and be seen (lock, registration, one discovery poll: well
#: under a second here, docs/gms-failover.md) with room for a loaded machine; short enough that a
#: model that is really down answers 503 within a few seconds rather than holding clients.
DEFAULT_RETRY_WINDOW_S = 5.0


@dataclass(frozen=True)
class AdmissionConfig:
    """The limits (docs/runtime.md, "Abuse and overload": each flag and its default)."""

    enabled: bool = True
    max_queue: int = 1024
    queue_timeout: float = 30.0
    retry_window: float = DEFAULT_RETRY_WINDOW_S
    overload_status: int = 429
    retry_after: int = 1  # seconds, the overload answer's Retry-After


class Rejected(DrivetrainError):
    """Not admitted: ``reason`` is the metrics label (``queue_full``, ``queue_timeout``,
    ``no_instance``, ``shutting_down``); ``overloaded`` when the model is saturated."""

    def __init__(self, reason: str, message: str, overloaded: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.overloaded = overloaded


class ModelGate:
    """The admission queue of one model (it lives on the frontend's ``ModelState``, so it
    survives routing-table rebuilds).

    ``live()`` says whether some instance is routable, ``room()`` whether one of them has room;
    both read the current routing table.
    """

    def __init__(
        self, name: str, config: AdmissionConfig, live: Callable[[], bool], room: Callable[[], bool]
    ) -> None:
        self.name = name
        self.config = config
        self._live = live
        self._room = room
        self._queue: deque[asyncio.Future[None]] = deque()
        self._held = False
        self._closed: str | None = None
        self._poller: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def held(self) -> bool:
        return self._held

    def _can_go(self) -> bool:
        if not self.config.enabled:
            return self._live()
        return self._room()

    async def admit(self, deadline: float) -> None:
        """Return when the request may be routed; raise ``Rejected`` when it may not.

        ``deadline`` (loop time) is the request's own: waiting never outlasts it."""
        if self._closed is not None:
            raise Rejected("shutting_down", self._closed, False)
        if not self._queue and not self._held and self._can_go():
            return
        if len(self._queue) >= self.config.max_queue:
            if self._live() or self._held:
                raise Rejected(
                    "queue_full",
                    f"Model `{self.name}` is at capacity and {len(self._queue)} requests already "
                    f"wait (--max-queue {self.config.max_queue}); retry later",
                    True,
                )
            raise self._unavailable()
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = True
        while True:
            future = loop.create_future()
            if first:
                self._queue.append(future)
            else:
                self._queue.appendleft(future)  # woken, found no room: keep its place
            first = False
            self._arm_poller()
            live = self._live() or self._held
            limit = self.config.queue_timeout if live else self.config.retry_window
            try:
                async with asyncio.timeout_at(min(deadline, started + limit)):
                    await future
            except TimeoutError:
                self._forget(future)
                if loop.time() >= deadline:
                    raise
                if self._live() or self._held:
                    raise Rejected(
                        "queue_timeout",
                        f"Model `{self.name}` stayed at capacity for the {limit:g} s a request "
                        "may wait (--queue-timeout); retry later",
                        True,
                    ) from None
                raise self._unavailable() from None
            except BaseException:
                self._forget(future)
                raise
            if self._closed is not None:
                raise Rejected("shutting_down", self._closed, False)
            if self._can_go():
                self.pump()  # more room? the next one looks after this step registered ours
                return

    def _unavailable(self) -> Rejected:
        return Rejected(
            "no_instance",
            f"Model `{self.name}` has no live instance (waited {self.config.retry_window:g} s, "
            "--retry-window)",
            False,
        )

    def _forget(self, future: asyncio.Future[None]) -> None:
        """A waiter leaves (timeout, client gone); a wake-up it received passes on."""
        if future.done() and not future.cancelled():
            self.pump()
            return
        future.cancel()
        with contextlib.suppress(ValueError):  # already taken off by a wake-up or close()
            self._queue.remove(future)

    def pump(self) -> None:
        """Room may have opened: wake the request at the head of the queue."""
        if self._held or not self._queue or self._closed is not None:
            return
        if self._can_go():
            future = self._queue.popleft()
            if not future.done():
                future.set_result(None)

    def _arm_poller(self) -> None:
        if self._poller is None:
            self._poller = asyncio.get_running_loop().call_later(POLL_S, self._poll)

    def _poll(self) -> None:
        self._poller = None
        self.pump()
        if self._queue:
            self._arm_poller()

    # ---- the RL API's pause (keep) and the drain -------------------------------------------

    def hold(self) -> None:
        """New requests wait in this queue (bounded as overload is) until ``release()``."""
        self._held = True

    def release(self) -> None:
        """Waiting requests go on, in arrival order, as room allows."""
        self._held = False
        self.pump()

    def close(self, message: str) -> None:
        """Refuse every waiting and every new request (the frontend is shutting down)."""
        self._closed = message
        queue, self._queue = self._queue, deque()
        for future in queue:
            if not future.done():
                future.set_result(None)  # each sees _closed and raises
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
