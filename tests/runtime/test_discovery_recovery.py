"""Recovery: an etcd restart (clean or SIGKILL) leaves registrations and watchers working, and
a watcher started while etcd is down catches up once it is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivetrain.runtime.discovery import DiscoveryStore, open_store
from drivetrain.runtime.discovery.etcd import EtcdLease, EtcdStore
from drivetrain.runtime.discovery.registration import Registration
from drivetrain.runtime.discovery.watcher import ModelWatcher
from drivetrain.runtime.records import InstanceRecord, ModelCard
from drivetrain.runtime.scope import NamespaceScope
from tests.runtime.conftest import EtcdServer
from tests.waiting import eventually_async

TTL = 2.0
WAIT = 20.0


def worker_records(instance_id: str, model: str = "tiny") -> list[InstanceRecord | ModelCard]:
    return [
        InstanceRecord(
            instance_id=instance_id,
            namespace="ns",
            component="backend",
            address="127.0.0.1:1",
            transport="tcp",
            model_names=[model],
        ),
        ModelCard(name=model, namespace="ns", model_types=["chat"], instance_id=instance_id),
    ]


def live(watcher: ModelWatcher, model: str = "tiny") -> set[str]:
    entry = watcher.models.get(model)
    return {i.instance_id for i in entry.instances} if entry else set()


@pytest.fixture
async def etcd_store(etcd_server: EtcdServer) -> AsyncIterator[DiscoveryStore]:
    store = await open_store(etcd_server.url)
    yield store
    await store.close()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["restart", "kill"])
async def test_registration_and_watcher_recover_after_etcd_restarts(
    etcd_server: EtcdServer, etcd_store: DiscoveryStore, how: str
) -> None:
    worker_store = await open_store(etcd_server.url)  # a worker's own connection
    registration = Registration(worker_store, TTL, worker_records("a"))
    await registration.start()
    watcher = ModelWatcher(etcd_store, NamespaceScope.from_args(namespace="ns"))
    await watcher.start()
    try:
        assert live(watcher) == {"a"}
        if how == "kill":
            etcd_server.kill()
        else:
            etcd_server.stop()
        await asyncio.sleep(TTL / 2)  # the keep-alive fails in the meantime, and retries
        await asyncio.to_thread(etcd_server.start)

        # The watch was broken: a new worker appearing after the restart is seen...
        newcomer = Registration(worker_store, TTL, worker_records("b"))
        await newcomer.start()
        await watcher.wait_for(lambda w: live(w) == {"a", "b"}, WAIT)
        assert watcher.resyncs >= 1
        # ...and the first worker's lease survived (etcd restores leases with a fresh TTL), so
        # it is still there after several TTLs of keep-alive on the reconnected channel.
        await asyncio.sleep(TTL * 2)
        assert live(watcher) == {"a", "b"}
        assert registration.refresh_failures >= 1
        # A worker leaving after the restart is seen leaving.
        await registration.stop()
        await watcher.wait_for(lambda w: live(w) == {"b"}, WAIT)
        await newcomer.stop()
        await watcher.wait_for(lambda w: "tiny" not in w.models, WAIT)
    finally:
        await watcher.stop()
        await registration.stop()
        await worker_store.close()


@pytest.mark.slow
async def test_a_lease_removed_by_another_etcd_client_is_replaced(
    etcd_server: EtcdServer, etcd_store: DiscoveryStore
) -> None:
    registration = Registration(etcd_store, TTL, worker_records("a"))
    await registration.start()
    try:
        lost = registration.lease
        assert lost is not None
        # What a lease expiring during a long outage looks like to the worker once etcd answers
        # again: the lease is gone (here revoked by another client) and its keys with it.
        other = await open_store(etcd_server.url)
        assert isinstance(other, EtcdStore)
        await EtcdLease(other, lost.id, lost.ttl).revoke()
        await other.close()
        watcher = ModelWatcher(etcd_store, NamespaceScope.from_args(namespace="ns"))
        async with watcher:
            await watcher.wait_for(lambda w: live(w) == {"a"}, WAIT)
        # The watcher can see the new records before the put's answer reaches the registration.
        await eventually_async(
            lambda: registration.registrations == 2, WAIT, what="a second registration"
        )
    finally:
        await registration.stop()


@pytest.mark.slow
async def test_a_watcher_started_while_etcd_is_down_catches_up_when_it_returns(
    etcd_server: EtcdServer,
) -> None:
    etcd_server.stop()
    store = await open_store(etcd_server.url)
    watcher = ModelWatcher(store, NamespaceScope.from_args())
    await watcher.start(wait_ready=False)
    try:
        await asyncio.sleep(0.5)
        assert not watcher.ready.is_set()
        await asyncio.to_thread(etcd_server.start)
        async with Registration(store, TTL, worker_records("a")):
            await watcher.wait_for(lambda w: live(w) == {"a"}, WAIT)
        assert watcher.ready.is_set()
    finally:
        await watcher.stop()
        await store.close()


class DelayProxy:
    """A TCP proxy that holds every chunk for ``delay`` seconds in each direction (a slow link)."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            loop = asyncio.get_running_loop()
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not chunk:
                    sink.close()
                    return
                sink.write(chunk)
                await sink.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                chunk = await source.read(65536)
                queue.put_nowait((asyncio.get_running_loop().time() + self.delay, chunk))
                if not chunk:
                    break
            await sender
        except (ConnectionError, asyncio.CancelledError):
            sender.cancel()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.mark.slow
async def test_keep_alive_survives_a_slow_network_to_etcd(
    etcd_server: EtcdServer, etcd_store: DiscoveryStore
) -> None:
    # Every byte to and from etcd waits 0.3 s each way: a 0.6 s round trip against a 2 s TTL.
    proxy = DelayProxy(etcd_server.client_port, delay=0.3)
    await proxy.start()
    slow_store = await open_store(f"etcd://127.0.0.1:{proxy.port}")
    registration = Registration(slow_store, TTL, worker_records("a"))
    try:
        await registration.start()
        _, revision = await etcd_store.get_prefix("drivetrain/")
        await asyncio.sleep(TTL * 3)
        _, now = await etcd_store.get_prefix("drivetrain/")
        deletes = []
        if now > revision:
            events = aiter(etcd_store.watch_prefix("drivetrain/", revision))
            async with asyncio.timeout(WAIT):
                while True:
                    event = await anext(events)
                    deletes += [event] if event.type == "delete" else []
                    if event.revision >= now:
                        break
            await events.aclose()  # type: ignore[attr-defined]
        assert deletes == []
        assert registration.registrations == 1
        assert len((await etcd_store.get_prefix("drivetrain/"))[0]) == 2
    finally:
        await registration.stop()
        await slow_store.close()
        await proxy.close()
