"""A worker: an engine served on the request plane, registered in discovery under a lease.

Start order matters: the request-plane server listens *before* the records are written, so a
frontend never routes to an address that refuses connections; on shutdown the records are
revoked *before* the server stops, so frontends stop routing first.

A worker in front of a separate server (an ``UpstreamEngine``: the ``http`` engine as the
sidecar of vLLM, SGLang, ``transformers serve``...) registers only while that server answers:
it polls ``upstream_ready()`` every ``health_interval`` seconds (at once after a request failed
to reach it), revokes its records at the first poll that fails and writes them again (same
instance id) at the first that succeeds.  Without ``--model-name`` it registers under the name
the upstream lists first in ``/v1/models``.  ``registered`` is set while the records are written.

A worker given a failover lock (``--failover-lock PATH``, docs/gms-failover.md) starts its engine
and listens as always, then waits for the lock before registering: the holder is the active
engine, the other a warmed shadow (``standby`` is set while it waits).  When the holder dies the
kernel frees the lock, and the shadow takes it and registers at once.  The lock is given up only
once the engine is closed, so the two engines never serve (nor hold GPU memory) side by side.

The worker serves one weight version at a time (``weightcontrol.py``, docs/rl.md).  Before it
registers it reads its model's committed version from discovery and loads it when it differs
from its own; afterwards it reads that record again every ``WEIGHTS_POLL_S``, so a commit it
missed (it joined during an update, or was cut off) is caught up with while frontends route
around it.  A read every few seconds, not a watch: a file store's watch polls every 50 ms, a
cost every worker would pay all the time for an event that a coordinator also pushes (the
fleet transaction tells instances that lag to catch up at once, ``fleet.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass

from drivetrain.runtime.discovery import DiscoveryStore, open_store
from drivetrain.runtime.discovery.registration import Registration
from drivetrain.runtime.engines.base import Engine, UpstreamEngine
from drivetrain.runtime.failover import FailoverLock
from drivetrain.runtime.records import CommittedWeights, InstanceRecord, ModelCard, weights_key
from drivetrain.runtime.transport.server import RequestPlaneServer
from drivetrain.runtime.weightcontrol import DEFAULT_VERSION, WeightControl

log = logging.getLogger(__name__)

WEIGHTS_POLL_S = 2.0


@dataclass
class WorkerConfig:
    model_name: str | None  # None: an upstream engine's model name (its /v1/models)
    namespace: str = "global"
    component: str = "backend"
    discovery: str = "memory://"
    lease_ttl: float = 10.0
    host: str = "127.0.0.1"
    port: int = 0
    advertise_host: str | None = None
    drain_timeout: float = 5.0
    #: a lock file shared with this engine's shadow (or active twin); None: no failover
    failover_lock: str | None = None
    #: the weight version the engine starts with (``--weight-version``); a committed version
    #: in discovery replaces it before the worker registers
    weight_version: str = DEFAULT_VERSION


def _advertised(host: str, advertise: str | None) -> str:
    if advertise:
        return advertise
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return host


def _absolute(tokenizer: str | None) -> str | None:
    """A tokenizer folder as an absolute path: a frontend on this machine (or one that mounts
    the same path) reads it from there; a relative path would mean nothing to it."""
    if tokenizer and os.path.isdir(tokenizer):
        return os.path.abspath(tokenizer)
    return tokenizer


class RunningWorker:
    def __init__(
        self, config: WorkerConfig, engine: Engine, store: DiscoveryStore | None = None
    ) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        self._own_store = store is None
        self.instance_id = uuid.uuid4().hex
        self.weights = WeightControl(engine, config.weight_version)
        self.server = RequestPlaneServer(engine, config.host, config.port, control=self.weights)
        self._weights_follow: asyncio.Task[None] | None = None
        self.registration: Registration | None = None
        self.model_name = config.model_name
        self.registered = asyncio.Event()
        #: set while a failover shadow waits, warmed, for the lock
        self.standby = asyncio.Event()
        self.lock = FailoverLock(config.failover_lock) if config.failover_lock else None
        self._follow: asyncio.Task[None] | None = None
        self._takeover: asyncio.Task[None] | None = None
        #: set, with ``failure``, when a shadow that took over cannot serve (run_worker raises it)
        self.crashed = asyncio.Event()
        self.failure: BaseException | None = None

    @property
    def address(self) -> str:
        return f"{_advertised(self.config.host, self.config.advertise_host)}:{self.server.port}"

    def records(self) -> tuple[InstanceRecord, ModelCard]:
        if self.model_name is None:
            raise RuntimeError("the model name is not known yet (the upstream never answered)")
        info = self.engine.info()
        cfg = self.config
        instance = InstanceRecord(
            instance_id=self.instance_id,
            namespace=cfg.namespace,
            component=cfg.component,
            address=self.address,
            transport="tcp",
            model_names=[self.model_name],
            capacity=info.capacity,
            role=info.role,  # type: ignore[arg-type]  # the engine checked it
        )
        card = ModelCard(
            name=self.model_name,
            namespace=cfg.namespace,
            component=cfg.component,
            model_types=list(info.model_types),
            instance_id=self.instance_id,
            tokenizer=_absolute(info.tokenizer),
            context_length=info.context_length,
            kv_block_size=info.kv_block_size,
        )
        return instance, card

    async def start(self) -> None:
        await self.engine.start()
        await self.server.start()
        if self.store is None:
            self.store = await open_store(self.config.discovery)
        if self.lock is not None and not self.lock.try_acquire():
            log.info("worker %s is a shadow: waiting for %s", self.instance_id, self.lock.path)
            self.standby.set()
            self._takeover = asyncio.create_task(self._take_over(self.lock), name="failover")
            return
        await self._serve_now()

    async def _take_over(self, lock: FailoverLock) -> None:
        """The shadow's wait: once the lock is free, serve as the active engine did."""
        try:
            await lock.acquire()
            self.standby.clear()
            log.warning("worker %s took the failover lock %s: serving", self.instance_id, lock.path)
            await self._serve_now()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store never answered: this worker cannot serve
            log.error("worker %s could not take over: %s", self.instance_id, exc)
            self.failure = exc
            self.crashed.set()

    async def _serve_now(self) -> None:
        """Register now, or start following an upstream's health (it registers when ready)."""
        if self.lock is not None:
            self.lock.describe_holder(instance_id=self.instance_id, address=self.address)
        if isinstance(self.engine, UpstreamEngine):
            log.info(
                "worker %s waiting for upstream %s (checked every %ss)",
                self.instance_id,
                self.engine.upstream,
                self.engine.health_interval,
            )
            self._follow = asyncio.create_task(
                self._follow_upstream(self.engine), name="upstream-health"
            )
        else:
            await self._register()

    async def _read_committed(self) -> CommittedWeights | None:
        assert self.store is not None and self.model_name is not None
        key = weights_key(self.config.namespace, self.model_name)
        items, _ = await self.store.get_prefix(key)
        for item in items:
            if item.key == key:
                return CommittedWeights.decode(item.value)
        return None

    async def _catch_up_first(self) -> None:
        """Load the committed version before registering, then read it now and then."""
        self.weights.read_committed = self._read_committed
        try:
            committed = await self._read_committed()
        except Exception as exc:  # it registers on its own version; the follow retries
            log.warning("could not read the committed weight version: %s", exc)
            committed = None
        if committed is not None:
            await self.weights.sync(committed)  # before it is routable
        if self._weights_follow is None:
            self._weights_follow = asyncio.create_task(
                self._follow_weights(), name="weights-follow"
            )

    async def _follow_weights(self) -> None:
        """Read the model's committed version now and then; catch up with a commit missed."""
        while True:
            await asyncio.sleep(WEIGHTS_POLL_S)
            try:
                committed = await self._read_committed()
                if committed is not None:
                    await self.weights.sync(committed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading the committed weight version failed (%s); retrying", exc)

    async def _register(self) -> None:
        assert self.store is not None
        if self.store.workers_read:
            await self._catch_up_first()
        registration = Registration(self.store, self.config.lease_ttl, self.records())
        await registration.start()
        self.registration = registration
        self.registered.set()
        log.info(
            "worker %s serving %r at %s (namespace %r)",
            self.instance_id,
            self.model_name,
            self.address,
            self.config.namespace,
        )

    async def _deregister(self) -> None:
        registration, self.registration = self.registration, None
        self.registered.clear()
        if registration is not None:
            await registration.stop()

    async def _follow_upstream(self, engine: UpstreamEngine) -> None:
        """Register while the upstream answers, deregister at the first poll it does not."""
        while True:
            engine.trouble.clear()
            try:
                await self._check_upstream(engine)
            except Exception as exc:  # the store or the upstream failed mid-check: next poll
                log.warning("upstream check failed (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(engine.trouble.wait(), engine.health_interval)

    async def _check_upstream(self, engine: UpstreamEngine) -> None:
        ready = await engine.upstream_ready()
        if ready and self.registration is None:
            if self.model_name is None:
                self.model_name = await engine.resolve_model()
            try:
                await engine.describe()
            except Exception as exc:  # registered without what it would have said
                log.warning("upstream %s did not describe its model: %s", engine.upstream, exc)
            await self._register()
        elif not ready and self.registration is not None:
            await self._deregister()
            log.warning(
                "upstream %s stopped answering: deregistered %r (checking every %ss)",
                engine.upstream,
                self.model_name,
                engine.health_interval,
            )

    async def stop(self) -> None:
        if self._weights_follow is not None:
            self._weights_follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._weights_follow
            self._weights_follow = None
        if self._takeover is not None:
            self._takeover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._takeover
            self._takeover = None
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
            self._follow = None
        await self._deregister()
        # Frontends stop routing here once they see the revoke; requests already running finish.
        await self.server.stop(drain=self.config.drain_timeout)
        await self.engine.close()
        if self.lock is not None:
            # Only now: the shadow must not start serving beside an engine still running here.
            self.lock.release()
        if self._own_store and self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.close()
