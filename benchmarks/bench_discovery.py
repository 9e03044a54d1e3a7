"""Discovery latencies per backend: registration -> visible in a watcher, SIGKILL -> removed.

.venv/bin/python benchmarks/bench_discovery.py [--runs 5] [--ttl 2]

A watcher (global scope) runs in this process; each run starts a worker process that registers an
instance and a model card through ``Registration`` and prints "registered", then SIGKILLs it (no
revoke) and times how long the watcher takes to drop it.  etcd is started from .venv/bin/etcd.

kubernetes:// runs against the test emulator (no real API server here), with the worker in a pod
the benchmark creates.  A SIGKILLed worker leaves when its pod stops being Ready, which is the
kubelet's doing, not discovery's, so the second column is measured from the readiness change
(the kubelet's status write) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.runtime.conftest import EtcdServer, etcd_binary  # noqa: E402
from tests.runtime.test_discovery_processes import WORKER  # noqa: E402

from drivetrain.runtime.discovery import open_store  # noqa: E402
from drivetrain.runtime.discovery.watcher import ModelWatcher  # noqa: E402
from drivetrain.runtime.scope import NamespaceScope  # noqa: E402


async def seconds_to_visible(watcher: ModelWatcher, worker: subprocess.Popen[str]) -> float:
    """From the worker's "registered" line to its instance in the watcher."""
    assert worker.stdout is not None
    await asyncio.to_thread(worker.stdout.readline)
    began = time.monotonic()
    await watcher.wait_for(lambda w: "tiny" in w.models and bool(w.models["tiny"].instances), 30)
    return time.monotonic() - began


async def seconds_to_gone(watcher: ModelWatcher, began: float) -> float:
    """From ``began`` to the model gone from the watcher."""
    await watcher.wait_for(lambda w: "tiny" not in w.models, 30)
    return time.monotonic() - began


async def measure(url: str, runs: int, ttl: float) -> tuple[list[float], list[float]]:
    store = await open_store(url)
    watcher = ModelWatcher(store, NamespaceScope.from_args())
    await watcher.start()
    visible, removed = [], []
    try:
        for n in range(runs):
            instance_id = f"bench-{n}"
            args = [sys.executable, "-c", WORKER, url, "ns", "tiny", instance_id, str(ttl)]
            process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
            visible.append(await seconds_to_visible(watcher, process))
            await asyncio.sleep(ttl / 2)
            began = time.monotonic()
            process.send_signal(signal.SIGKILL)
            process.wait()
            removed.append(await seconds_to_gone(watcher, began))
    finally:
        await watcher.stop()
        await store.close()
    return visible, removed


async def measure_kubernetes(tmp: Path, runs: int, ttl: float) -> tuple[list[float], list[float]]:
    from tests.runtime.kube_support import FRONTEND_ROLE, WORKER_ROLE, KubeDiscovery

    from drivetrain.runtime.discovery.kubernetes import KubernetesStore

    tmp.mkdir(parents=True, exist_ok=True)
    kube = KubeDiscovery(tmp)
    frontend = kube.restricted("frontend", FRONTEND_ROLE)
    worker = kube.restricted("worker", WORKER_ROLE)
    store = await KubernetesStore.connect(kube.namespace, environ={"KUBECONFIG": str(frontend)})
    watcher = ModelWatcher(store, NamespaceScope.from_args())
    await watcher.start()
    visible, removed = [], []
    try:
        for n in range(runs):
            pod = f"bench-{n}"
            uid = await asyncio.to_thread(kube.pod, pod)
            env = {**os.environ, "KUBECONFIG": str(worker), **kube.pod_env(pod, uid)}
            args = [sys.executable, "-c", WORKER, kube.url, "ns", "tiny", pod, str(ttl)]
            process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
            try:
                visible.append(await seconds_to_visible(watcher, process))
                await asyncio.sleep(ttl / 2)
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
            began = time.monotonic()
            await asyncio.to_thread(kube.set_ready, pod, False)
            removed.append(await seconds_to_gone(watcher, began))
    finally:
        await watcher.stop()
        await store.close()
        kube.stop()
    return visible, removed


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"median {statistics.median(ms):.0f} ms ({min(ms):.0f}–{max(ms):.0f})"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ttl", type=float, default=2.0)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-discovery-"))
    backends = [("file", f"file://{tmp / 'disc'}")]
    binary = etcd_binary()
    etcd = EtcdServer(binary, tmp / "etcd") if binary else None
    if etcd is not None:
        etcd.start()
        backends.append(("etcd", etcd.url))
    try:
        print(f"| backend | registered -> visible | SIGKILL -> removed (TTL {opts.ttl:g} s) |")
        print("|---|---|---|")
        for name, url in backends:
            visible, removed = await measure(url, opts.runs, opts.ttl)
            print(f"| {name} | {summary(visible)} | {summary(removed)} |")
        visible, removed = await measure_kubernetes(tmp / "kube", opts.runs, opts.ttl)
        print(
            f"| kubernetes (emulator) | {summary(visible)} | {summary(removed)} (from NotReady) |"
        )
    finally:
        if etcd is not None:
            etcd.kill()


if __name__ == "__main__":
    asyncio.run(main())
