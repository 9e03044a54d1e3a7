"""Helpers of the serving tests: an in-loop frontend and workers on a private memory:// store.

Everything is real: an aiohttp server on a free loopback port, request-plane TCP servers, the
discovery watcher and registrations.  Only the process boundary is skipped (see test_e2e_* for
subprocesses).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import openai

from drivetrain.runtime.discovery import DiscoveryStore, open_store
from drivetrain.runtime.discovery.registration import Registration
from drivetrain.runtime.engines.base import Engine
from drivetrain.runtime.frontend.admission import AdmissionConfig
from drivetrain.runtime.frontend.kv_router import KvConfig
from drivetrain.runtime.frontend.server import FrontendConfig, RunningFrontend
from drivetrain.runtime.records import InstanceRecord, ModelCard
from drivetrain.runtime.scope import NamespaceScope
from drivetrain.runtime.worker import RunningWorker, WorkerConfig
from tests.paths import SHARED

TINY = SHARED / "models" / "tiny"


@dataclass
class Stack:
    store: DiscoveryStore
    frontend: RunningFrontend
    workers: list[RunningWorker] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.frontend.url

    def client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.url + "/v1", api_key="unused", max_retries=0, **kwargs
        )

    async def add_worker(
        self, engine: Engine, model: str = "tiny", namespace: str = "global", wait: bool = True
    ) -> RunningWorker:
        worker = RunningWorker(
            WorkerConfig(model_name=model, namespace=namespace, lease_ttl=5),
            engine,
            store=self.store,
        )
        await worker.start()
        self.workers.append(worker)
        if wait:
            await self.wait_routable(model, worker.instance_id)
        return worker

    async def add_records(
        self, model: str, address: str, model_types: list[str], namespace: str = "global"
    ) -> str:
        """Register an instance by hand at ``address`` (a dead port, a stalled server...)."""
        instance_id = uuid.uuid4().hex
        records = (
            InstanceRecord(
                instance_id=instance_id,
                namespace=namespace,
                component="backend",
                address=address,
                transport="tcp",
                model_names=[model],
            ),
            ModelCard(
                name=model,
                namespace=namespace,
                model_types=model_types,  # type: ignore[arg-type]
                instance_id=instance_id,
            ),
        )
        registration = Registration(self.store, 5, records)
        await registration.start()
        self.registrations.append(registration)
        await self.wait_routable(model, instance_id)
        return instance_id

    async def wait_routable(self, model: str, instance_id: str) -> None:
        await self.wait(
            lambda: any(
                t.instance_id == instance_id
                for t in getattr(self.frontend.table.models.get(model), "targets", [])
            )
        )

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)


# Tests wait for a live instance only briefly unless they test the window itself.
TEST_ADMISSION = AdmissionConfig(retry_window=0.3)


@contextlib.asynccontextmanager
async def serving_stack(
    scope: NamespaceScope | None = None,
    router: str = "round-robin",
    request_timeout: float = 30.0,
    retry_window: float | None = None,
    admission: AdmissionConfig = TEST_ADMISSION,
    drain_timeout: float = 1.0,
    tokenizer_root: str | None = None,
    admin_token: str | None = None,
    store_url: str | None = None,
    kv: KvConfig | None = None,
    disagg_threshold: int = 0,
    event_per_token: bool = False,
) -> AsyncIterator[Stack]:
    """A frontend on a private store.  The retry window is short by default (``TEST_ADMISSION``)
    so that tests of a 503 do not wait the production window; ``retry_window`` overrides it
    (test_failover.py covers the window itself)."""
    store = await open_store(store_url or f"memory://serving-{uuid.uuid4().hex}")
    config = FrontendConfig(
        host="127.0.0.1",
        port=0,
        scope=scope or NamespaceScope("global"),
        router=router,
        request_timeout=request_timeout,
        admission=admission
        if retry_window is None
        else replace(admission, retry_window=retry_window),
        drain_timeout=drain_timeout,
        tokenizer_root=tokenizer_root,
        admin_token=admin_token,
        admin_port=0,
        kv=kv or KvConfig(seed=0),
        disagg_threshold=disagg_threshold,
        event_per_token=event_per_token,
    )
    frontend = RunningFrontend(config, store=store)
    await frontend.start()
    stack = Stack(store, frontend)
    try:
        yield stack
    finally:
        for registration in stack.registrations:
            await registration.stop()
        for worker in stack.workers:
            await worker.stop()
        await frontend.stop()
        await store.close()


class StalledServer:
    """Accepts request-plane connections, reads everything, never answers."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.received = bytearray()

    async def start(self) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            while data := await reader.read(65536):
                self.received += data
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    @property
    def requests(self) -> int:
        """Request frames received (a KV-routing frontend also sends a ``K`` subscription
        first, which is not one)."""
        return self.received.count(b'["g",')

    async def stop(self) -> None:
        """Stop listening and hang up on every connection (its requests fail at once)."""
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()


def closed_port_address() -> str:
    """An address where nothing listens (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def chat_body(model: str = "tiny", text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def small_context_model(folder: Path, context: int) -> Path:
    """A copy of the tiny tokenizer folder whose config.json says ``context`` positions."""
    import json
    import shutil

    from tests.paths import shared

    source = shared("models", "tiny")
    target = folder / f"tiny-{context}"
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["max_position_embeddings"] = context
    (target / "config.json").write_text(json.dumps(config))
    return target
