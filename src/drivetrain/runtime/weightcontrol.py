"""A worker's side of the RL API: its weight version, pause and resume, and its part in a fleet
update (docs/rl.md, "The fleet transaction").

The request-plane server asks ``admit`` before every request reaches the engine: while the worker
is paused the request waits here (only requests a frontend routed just before it paused: every
frontend holds new ones in its own admission queue), and a request that names the version it
expects (``v`` in its payload: the model's committed version) is refused with the retryable
``weight_version_mismatch`` when this worker serves another.  The version a request started on
is the version it finishes on: weights change only while no request runs here.

A fleet update reaches the worker as control requests (op ``rl`` on the request plane):
``prepare`` (hold new requests, let running ones finish or end them, load the new version and
keep the previous weights), then ``commit`` (serve it) or ``abort`` (go back; where the engine
cannot, the worker reports the version it holds and frontends route around it).  A prepared
worker whose coordinator vanished resolves itself after its ``hold_s`` from the committed record
in discovery (``sync``), which is also how a worker that starts, or missed a commit, catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from drivetrain.runtime.engines.base import Engine, EngineError, UpdatesWeights, WeightSource
from drivetrain.runtime.records import CommittedWeights

log = logging.getLogger(__name__)

MISMATCH = "weight_version_mismatch"
DEFAULT_VERSION = "0"
PauseMode = Literal["keep", "wait", "abort"]
PAUSE_MODES: tuple[PauseMode, ...] = ("keep", "wait", "abort")
#: A prepared worker waits this much longer than its transaction's timeout for the commit or
#: abort before it resolves itself from discovery.
HOLD_GRACE_S = 15.0


class ServerHooks(Protocol):
    """What the control needs of the request-plane server it sits in."""

    @property
    def in_flight(self) -> int: ...

    def abort_running(self) -> int: ...

    def request_ended(self) -> None: ...


class WeightControl:
    def __init__(self, engine: Engine, version: str = DEFAULT_VERSION) -> None:
        self.engine = engine
        self.version = version
        self.sequence = 0  # the commit (CommittedWeights.sequence) this version came from
        self.state: Literal["serving", "paused", "updating", "loaded", "failed"] = "serving"
        self.pending: str | None = None
        self.txn: str | None = None
        self.error: str | None = None
        self._open = asyncio.Event()
        self._open.set()
        self.paused = False
        self.waiting = 0  # requests held in ``admit``
        self._lock = asyncio.Lock()
        self._hooks: ServerHooks | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        #: reads the committed record (the worker sets it once it knows its store and model)
        self.read_committed: Callable[[], Awaitable[CommittedWeights | None]] | None = None

    def attach(self, hooks: ServerHooks) -> None:
        self._hooks = hooks

    def _hold(self) -> None:
        self.paused = True  # a plain attribute: the request plane reads it for every request
        self._open.clear()

    def _go(self) -> None:
        self.paused = False
        self._open.set()

    # ---- the hot path ---------------------------------------------------------------------

    async def admit(self, expected: str | None) -> None:
        """Wait while paused; refuse a request that expects another version (retryable)."""
        if not self._open.is_set():
            # Held here, not running: an update waiting for running requests must not wait
            # for this one.
            self.waiting += 1
            try:
                await self._open.wait()
            finally:
                self.waiting -= 1
        if expected is not None and expected != self.version:
            raise EngineError(
                409,
                f"this worker serves weight version {self.version!r}, not {expected!r}",
                MISMATCH,
            )

    # ---- control requests ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "weight_version": self.version,
            "sequence": self.sequence,
            "state": self.state,
            "pending_version": self.pending,
            "in_flight": self._hooks.in_flight if self._hooks is not None else 0,
            "error": self.error,
        }

    async def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        """One control request (op ``rl``): ``{action, ...}`` → its answer."""
        action = body.get("action")
        if action == "status":
            return self.status()
        if action == "pause":
            await self.pause(body.get("mode", "keep"), float(body.get("timeout", 30.0)))
            return self.status()
        if action == "resume":
            self.resume()
            return self.status()
        if action == "prepare":
            return await self.prepare(
                str(body["txn"]),
                str(body["version"]),
                WeightSource.parse(body.get("source")),
                body.get("mode", "keep"),
                float(body.get("timeout", 30.0)),
            )
        if action == "commit":
            return self.commit(str(body["txn"]), str(body["version"]), int(body["sequence"]))
        if action == "abort":
            return await self.abort(str(body["txn"]))
        if action == "sync":
            # A coordinator saw this worker lag behind the commit: catch up now, in the
            # background (a load takes its time; the answer does not wait for it).
            committed = CommittedWeights.model_validate(body["committed"])
            task = asyncio.get_running_loop().create_task(self.sync(committed))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return self.status()
        raise EngineError(400, f"unknown control action {action!r}", "bad_action")

    def _changed(self) -> None:
        """Frontends learn the version with the next load report (docs/rl.md)."""
        if self._hooks is not None:
            self._hooks.request_ended()

    async def _quiesce(self, mode: str, timeout: float) -> bool:
        """Hold new requests; end running ones (abort) or wait for them; True once none runs."""
        if mode not in PAUSE_MODES:
            raise EngineError(400, f"mode: expected keep, wait or abort, got {mode!r}", "bad_mode")
        self._hold()
        hooks = self._hooks
        if hooks is None:
            return True
        if mode == "abort":
            hooks.abort_running()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while hooks.in_flight > self.waiting and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return hooks.in_flight <= self.waiting

    async def pause(self, mode: str, timeout: float) -> None:
        if self.state == "serving":
            self.state = "paused"
        if mode == "keep":
            await self._quiesce("keep", 0.0)  # hold only: running requests go on
        else:
            await self._quiesce(mode, timeout)

    def resume(self) -> None:
        if self.pending is not None:
            return  # mid-update: the commit or abort resumes
        if self.state == "paused":
            self.state = "serving"
        self._go()

    async def prepare(
        self, txn: str, version: str, source: WeightSource, mode: str, timeout: float
    ) -> dict[str, Any]:
        if not isinstance(self.engine, UpdatesWeights):
            raise EngineError(501, "this engine cannot load new weights", "not_implemented")
        if self._lock.locked() or self.pending is not None:
            raise EngineError(409, f"another update ({self.txn}) is in progress here", "busy")
        async with self._lock:
            self.txn = txn
            self.error = None
            if not await self._quiesce(mode, timeout):
                self._reopen()
                raise EngineError(
                    504, "requests still running when the update's timeout ran out", "timeout"
                )
            self.state = "updating"
            self._changed()
            try:
                async with asyncio.timeout(timeout):
                    await self.engine.load_weights(version, source)
            except Exception as exc:  # a failed load is an answer, never a crash
                message = (
                    exc.message
                    if isinstance(exc, EngineError)
                    else "the load timed out"
                    if isinstance(exc, TimeoutError)
                    else f"{type(exc).__name__}: {exc}"
                )
                restored = await self._restore()
                self.error = message
                log.warning("loading weight version %r failed: %s", version, message)
                return {**self.status(), "ok": False, "error": message, "restored": restored}
            self.pending = version
            self.state = "loaded"
            self._arm_expiry(timeout + HOLD_GRACE_S)
            return {**self.status(), "ok": True}

    def commit(self, txn: str, version: str, sequence: int) -> dict[str, Any]:
        if self.pending == version:
            self._keep(version, sequence)
        elif self.version == version:
            self.sequence = max(self.sequence, sequence)
        else:
            raise EngineError(
                409, f"version {version!r} was not loaded here (serving {self.version!r})", "stale"
            )
        return {**self.status(), "ok": True}

    async def abort(self, txn: str) -> dict[str, Any]:
        restored = True
        if self.pending is not None:
            restored = await self._restore()
        else:
            self._reopen()
        return {**self.status(), "ok": True, "restored": restored}

    # ---- catching up with discovery ---------------------------------------------------------

    async def sync(self, committed: CommittedWeights) -> None:
        """Bring this worker to the committed version (it started, or missed a commit)."""
        if committed.version == self.version:
            self.sequence = max(self.sequence, committed.sequence)
            return
        if self.pending == committed.version:
            self._keep(committed.version, committed.sequence)
            return
        if self.pending is not None or self._lock.locked() or committed.sequence < self.sequence:
            return  # a transaction is deciding (its commit or abort comes)
        if not isinstance(self.engine, UpdatesWeights):
            return
        async with self._lock:
            log.info("catching up with committed weight version %r", committed.version)
            self.state = "updating"
            self._changed()
            # No frontend routes here (our version is not the committed one): running requests
            # finish on the old weights first.
            await self._quiesce("wait", 60.0)
            try:
                await self.engine.load_weights(
                    committed.version, WeightSource.parse(committed.source)
                )
            except Exception as exc:
                self.error = str(exc)
                self.state = "failed"
                log.error("could not load committed version %r: %s", committed.version, exc)
                self._go()
                self._changed()
                return
            self.pending = committed.version
            self._keep(committed.version, committed.sequence)

    # ---- internals -------------------------------------------------------------------------

    def _keep(self, version: str, sequence: int) -> None:
        assert isinstance(self.engine, UpdatesWeights)
        self.engine.keep_weights()
        self.version = version
        self.sequence = sequence
        self.pending = None
        self.txn = None
        self.error = None
        self.state = "serving"
        self._disarm_expiry()
        self._go()
        self._changed()

    async def _restore(self) -> bool:
        """Back to the previous weights; where impossible, say which version we hold."""
        assert isinstance(self.engine, UpdatesWeights)
        pending = self.pending
        try:
            restored = await self.engine.restore_weights()
        except Exception as exc:
            log.error("restoring the previous weights failed: %s", exc)
            restored = False
        self._disarm_expiry()
        self.pending = None
        self.txn = None
        if restored:
            self.state = "serving"
        else:
            # It holds weights nobody committed: it reports them, so no frontend routes here
            # until the next update (or a catch-up) replaces them.
            self.state = "failed"
            self.version = pending or f"{self.version}+unknown"
        self._go()
        self._changed()
        return restored

    def _reopen(self) -> None:
        if self.state in ("paused", "updating", "loaded"):
            self.state = "serving"
        self.txn = None
        self._go()
        self._changed()

    def _arm_expiry(self, after: float) -> None:
        self._disarm_expiry()
        self._expiry = asyncio.get_running_loop().create_task(self._expire(after))

    def _disarm_expiry(self) -> None:
        task, self._expiry = self._expiry, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _expire(self, after: float) -> None:
        """The coordinator never came back: commit if discovery says it committed, else go back."""
        await asyncio.sleep(after)
        committed: CommittedWeights | None = None
        if self.read_committed is not None:
            with contextlib.suppress(Exception):
                committed = await self.read_committed()
        if committed is not None and committed.version == self.pending:
            self._keep(committed.version, committed.sequence)
        elif self.pending is not None:
            log.warning("update %s was never committed nor aborted: rolling back", self.txn)
            await self._restore()
