"""Running the frontend: discovery watcher → routing table → aiohttp server.

With an admin token the RL API listens on a second port (``admin.py``; none without a token),
and the committed weight versions are followed in discovery (``weights_watch.py``) either way:
routing depends on them whoever committed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, replace

from aiohttp import web

from drivetrain.runtime.discovery import DiscoveryStore, open_store
from drivetrain.runtime.discovery.watcher import ModelWatcher
from drivetrain.runtime.frontend.admin import Admin
from drivetrain.runtime.frontend.admission import AdmissionConfig
from drivetrain.runtime.frontend.app import Frontend
from drivetrain.runtime.frontend.fleet import Fleet
from drivetrain.runtime.frontend.kv_router import KV_MODES, KvConfig, KvRouter
from drivetrain.runtime.frontend.registry import ServingTable
from drivetrain.runtime.frontend.router import make_router
from drivetrain.runtime.frontend.tokens import PromptTokens
from drivetrain.runtime.frontend.weights_watch import WeightsWatcher
from drivetrain.runtime.scope import NamespaceScope
from drivetrain.runtime.transport.client import RequestPlaneClient

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 5.0  # in-flight requests get this long after SIGTERM (Dynamo: 5 s too)
# After the drain every handler has answered; aiohttp's own shutdown then waits at most this.
HANDLERS_GRACE_S = 1.0
DEFAULT_ADMIN_PORT = 8002  # as Dynamo's
WEIGHTS_READY_S = 2.0


@dataclass
class FrontendConfig:
    host: str = "0.0.0.0"
    port: int = 8000
    discovery: str = "memory://"
    scope: NamespaceScope = field(default_factory=lambda: NamespaceScope("global"))
    router: str = "round-robin"
    request_timeout: float = 600.0
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    drain_timeout: float = DRAIN_TIMEOUT_S
    tokenizer_root: str | None = None
    #: the RL API's listener (docs/rl.md): opened only when ``admin_token`` is set
    admin_token: str | None = None
    admin_port: int = DEFAULT_ADMIN_PORT
    kv: KvConfig = field(default_factory=KvConfig)  # --router kv / kv-approx
    disagg_threshold: int = 0  # tokens; fewer uncached ones skip the prefill instance
    #: one SSE content event per token even when several leave in one write (default: one
    #: event per write, carrying every token ready then)
    event_per_token: bool = False


class RunningFrontend:
    """A started frontend (tests use it in-loop; the CLI runs one until a signal)."""

    def __init__(self, config: FrontendConfig, store: DiscoveryStore | None = None) -> None:
        self.config = config
        self._own_store = store is None
        self.store = store
        self.table = ServingTable(config.admission)
        self.kv: KvRouter | None = None
        if config.router in KV_MODES:
            self.kv = KvRouter(replace(config.kv, mode=config.router))
            self.table.on_new_client = self._attach
        self.frontend = Frontend(
            self.table,
            make_router(config.router),
            config.request_timeout,
            scope_description=config.scope.describe(),
            tokens=PromptTokens(config.tokenizer_root),
            kv=self.kv,
            disagg_threshold=config.disagg_threshold,
            event_per_token=config.event_per_token,
        )
        self.watcher: ModelWatcher | None = None
        self.weights: WeightsWatcher | None = None
        self.fleet = Fleet(self.table, lambda: self.store)
        self._admin_runner: web.AppRunner | None = None
        self.admin_port: int | None = None
        self._runner: web.AppRunner | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.port = config.port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def admin_url(self) -> str | None:
        """The RL API's base URL; None when no admin token was set (nothing listens)."""
        return f"http://{self._host}:{self.admin_port}" if self.admin_port is not None else None

    @property
    def _host(self) -> str:
        return "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host

    def _attach(self, client: RequestPlaneClient) -> None:
        """A new worker for the KV router: its events from now on, so connect at once."""
        assert self.kv is not None
        self.kv.attach(client)
        task = asyncio.get_running_loop().create_task(client.connect())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _sync(self, watcher: ModelWatcher) -> None:
        cards = [card for entry in watcher.models.values() for card in entry.cards.values()]
        stale = self.table.rebuild(cards, watcher.instances.values())
        for client in stale:
            if self.kv is not None:
                self.kv.forget(client.address)  # it left discovery: its index goes
            task = asyncio.get_running_loop().create_task(
                client.close_when_idle(self.config.request_timeout)
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def start(self) -> None:
        if self.store is None:
            self.store = await open_store(self.config.discovery)
        self.watcher = ModelWatcher(self.store, self.config.scope)
        self.watcher.add_listener(self._sync)
        await self.watcher.start(wait_ready=False)
        self.weights = WeightsWatcher(self.store, self.config.scope, self.table)
        self.weights.start()
        # Route by the committed versions from the first request on (a restarted frontend);
        # a store that does not answer delays the start by this much at most.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.weights.ready.wait(), WEIGHTS_READY_S)
        app = self.frontend.make_app()
        # A client that disconnects cancels its handler (aiohttp stopped doing that by default
        # in 3.9): the handler's cleanup then cancels the request on the worker, whether it was
        # streaming, waiting for a unary answer or queued.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=HANDLERS_GRACE_S,
            handler_cancellation=True,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, backlog=4096)
        await site.start()
        # The listening socket tells us the port when 0 was asked for.
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        if self.config.admin_token:
            await self._start_admin(self.config.admin_token)

    async def _start_admin(self, token: str) -> None:
        admin = Admin(self.fleet, token)
        self._admin_runner = web.AppRunner(
            admin.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._admin_runner.setup()
        site = web.TCPSite(self._admin_runner, self.config.host, self.config.admin_port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        self.admin_port = sockets[0].getsockname()[1] if sockets else self.config.admin_port

    async def stop(self) -> None:
        """Drain (``Frontend.drain``: stop admitting, up to ``drain_timeout`` for requests in
        flight, then a 503 for the rest), then close the listener and everything else.  The
        listener stays open while draining so that new requests get a 503, not a refusal."""
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        if self._runner is not None:
            ended = await self.frontend.drain(self.config.drain_timeout)
            if ended:
                log.warning(
                    "ended %d requests still running after the %gs drain",
                    ended,
                    self.config.drain_timeout,
                )
            await self._runner.cleanup()
            self._runner = None
        self.frontend.shutting_down = True
        if self.watcher is not None:
            await self.watcher.stop()
            self.watcher = None
        if self.weights is not None:
            await self.weights.stop()
            self.weights = None
        for task in list(self._closing):
            task.cancel()
        await self.table.close()
        if self._own_store and self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.close()
