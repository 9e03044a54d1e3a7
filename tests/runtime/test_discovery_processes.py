"""Discovery across OS processes (file:// and a real etcd): scoping, SIGKILLed workers, and many
writers at once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from drivetrain.runtime.discovery import DiscoveryStore, open_store
from drivetrain.runtime.discovery.watcher import ModelWatcher
from drivetrain.runtime.scope import NamespaceScope

TTL = 1.0
WAIT = 15.0

# A worker as far as discovery goes: register an instance and a model card, then wait forever.
WORKER = """
import asyncio, sys
from drivetrain.runtime.discovery import open_store
from drivetrain.runtime.discovery.registration import Registration
from drivetrain.runtime.records import InstanceRecord, ModelCard

async def main(url, namespace, model, instance_id, ttl):
    store = await open_store(url)
    records = [
        InstanceRecord(instance_id=instance_id, namespace=namespace, component="backend",
                       address="127.0.0.1:1", transport="tcp", model_names=[model]),
        ModelCard(name=model, namespace=namespace, model_types=["chat"], instance_id=instance_id),
    ]
    registration = Registration(store, float(ttl), records)
    await registration.start()
    print("registered", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""

# Many writers at once: each process puts COUNT keys of its own.
WRITER = """
import asyncio, sys
from drivetrain.runtime.discovery import open_store

async def main(url, name, count):
    store = await open_store(url)
    for i in range(int(count)):
        await store.put(f"load/{name}/{i:04d}", f"{name}-{i}".encode())
    await store.close()

asyncio.run(main(*sys.argv[1:]))
"""


class Workers:
    """Worker processes started for one test, all killed at its end."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url = url
        self.env = env
        self.processes: dict[str, subprocess.Popen[str]] = {}

    def start(self, namespace: str, model: str, instance_id: str) -> subprocess.Popen[str]:
        args = [sys.executable, "-c", WORKER, self.url, namespace, model, instance_id, str(TTL)]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=self.env)
        self.processes[instance_id] = process
        return process

    def wait_registered(self) -> None:
        for instance_id, process in self.processes.items():
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.strip() == "registered", f"worker {instance_id} exited: {process.poll()}"

    def kill(self, instance_id: str) -> None:
        process = self.processes[instance_id]
        process.send_signal(signal.SIGKILL)  # no revoke: only the lease TTL can remove it
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def workers(multiprocess_store_url: str, subprocess_env: dict[str, str]) -> Iterator[Workers]:
    started = Workers(multiprocess_store_url, subprocess_env)
    yield started
    started.stop_all()


@pytest.fixture
async def store(multiprocess_store_url: str) -> AsyncIterator[DiscoveryStore]:
    store = await open_store(multiprocess_store_url)
    yield store
    await store.close()


PLACEMENT = {  # instance id -> namespace
    "w-team": "team",
    "w-gen": "team-0badcafe",
    "w-bar": "team-bar",
    "w-other": "other",
    "w-global": "global",
}


@pytest.mark.slow
async def test_scopes_see_the_right_worker_processes_and_a_killed_one_leaves_within_its_ttl(
    workers: Workers, store: DiscoveryStore
) -> None:
    for instance_id, namespace in PLACEMENT.items():
        workers.start(namespace, "tiny", instance_id)
    await asyncio.to_thread(workers.wait_registered)

    scopes = {
        "exact": NamespaceScope.from_args(namespace="team"),
        "prefix": NamespaceScope.from_args(namespace_prefix="team"),
        "strict": NamespaceScope.from_args(namespace_prefix="team", strict=True),
        "global": NamespaceScope.from_args(),
    }
    expected = {
        "exact": {"w-team"},
        "prefix": {"w-team", "w-gen", "w-bar"},
        "strict": {"w-team", "w-gen"},
        "global": set(PLACEMENT),
    }
    watchers = {name: ModelWatcher(store, scope) for name, scope in scopes.items()}
    for watcher in watchers.values():
        await watcher.start()
    try:
        for name, watcher in watchers.items():
            assert {i.instance_id for i in watcher.models["tiny"].instances} == expected[name]

        workers.kill("w-gen")
        for name, watcher in watchers.items():
            left = expected[name] - {"w-gen"}
            await watcher.wait_for(
                lambda w, left=left: {i.instance_id for i in w.models["tiny"].instances} == left,
                timeout=TTL + WAIT,
            )
        # The other workers keep their leases alive: still there after several TTLs.
        await asyncio.sleep(TTL * 3)
        for name, watcher in watchers.items():
            assert {i.instance_id for i in watcher.models["tiny"].instances} == expected[name] - {
                "w-gen"
            }
    finally:
        for watcher in watchers.values():
            await watcher.stop()


async def test_concurrent_writers_in_several_processes_lose_nothing_and_share_one_revision_order(
    multiprocess_store_url: str, subprocess_env: dict[str, str], store: DiscoveryStore
) -> None:
    _, start = await store.get_prefix("load/")
    writers, count = 4, 25
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            multiprocess_store_url,
            f"p{n}",
            str(count),
            env=subprocess_env,
        )
        for n in range(writers)
    ]
    assert [await p.wait() for p in processes] == [0] * writers

    items, _ = await store.get_prefix("load/")
    expected = {
        f"load/p{n}/{i:04d}": f"p{n}-{i}".encode() for n in range(writers) for i in range(count)
    }
    assert {kv.key: kv.value for kv in items} == expected

    events = aiter(store.watch_prefix("load/", start))
    async with asyncio.timeout(WAIT):
        seen = [await anext(events) for _ in range(writers * count)]
    await events.aclose()  # type: ignore[attr-defined]
    revisions = [e.revision for e in seen]
    assert revisions == sorted(set(revisions))  # strictly increasing: no revision handed out twice
    assert {e.key for e in seen} == {kv.key for kv in items}
