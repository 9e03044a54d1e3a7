"""A worker: an engine served on the request plane, registered in discovery under a lease.

Start order matters: the request-plane server listens *before* the records are written, so a
frontend never routes to an address that refuses connections; on shutdown the records are
revoked *before* the server stops, so frontends stop routing first.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import uuid
from dataclasses import dataclass

from drivetrain.runtime.discovery import DiscoveryStore, open_store
from drivetrain.runtime.discovery.registration import Registration
from drivetrain.runtime.engines.base import Engine
from drivetrain.runtime.records import InstanceRecord, ModelCard
from drivetrain.runtime.transport.server import RequestPlaneServer

log = logging.getLogger(__name__)


@dataclass
class WorkerConfig:
    model_name: str
    namespace: str = "global"
    component: str = "backend"
    discovery: str = "memory://"
    lease_ttl: float = 10.0
    host: str = "127.0.0.1"
    port: int = 0
    advertise_host: str | None = None
    drain_timeout: float = 5.0


def _advertised(host: str, advertise: str | None) -> str:
    if advertise:
        return advertise
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return host


class RunningWorker:
    def __init__(
        self, config: WorkerConfig, engine: Engine, store: DiscoveryStore | None = None
    ) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        self._own_store = store is None
        self.instance_id = uuid.uuid4().hex
        self.server = RequestPlaneServer(engine, config.host, config.port)
        self.registration: Registration | None = None

    @property
    def address(self) -> str:
        return f"{_advertised(self.config.host, self.config.advertise_host)}:{self.server.port}"

    def records(self) -> tuple[InstanceRecord, ModelCard]:
        info = self.engine.info()
        cfg = self.config
        instance = InstanceRecord(
            instance_id=self.instance_id,
            namespace=cfg.namespace,
            component=cfg.component,
            address=self.address,
            transport="tcp",
            model_names=[cfg.model_name],
        )
        card = ModelCard(
            name=cfg.model_name,
            namespace=cfg.namespace,
            component=cfg.component,
            model_types=list(info.model_types),
            instance_id=self.instance_id,
            tokenizer=info.tokenizer,
            context_length=info.context_length,
        )
        return instance, card

    async def start(self) -> None:
        await self.engine.start()
        await self.server.start()
        if self.store is None:
            self.store = await open_store(self.config.discovery)
        self.registration = Registration(self.store, self.config.lease_ttl, self.records())
        await self.registration.start()
        log.info(
            "worker %s serving %r at %s (namespace %r)",
            self.instance_id,
            self.config.model_name,
            self.address,
            self.config.namespace,
        )

    async def stop(self) -> None:
        if self.registration is not None:
            await self.registration.stop()
            self.registration = None
        # Frontends stop routing here once they see the revoke; requests already running finish.
        await self.server.stop(drain=self.config.drain_timeout)
        await self.engine.close()
        if self._own_store and self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.close()
