"""Discovery latencies per backend: registration -> visible in a watcher, SIGKILL -> removed.

.venv/bin/python benchmarks/bench_discovery.py [--runs 5] [--ttl 2]

A watcher (global scope) runs in this process; each run starts a worker process that registers an
instance and a model card through ``Registration`` and prints "registered", then SIGKILLs it (no
revoke) and times how long the watcher takes to drop it.  etcd is started from .venv/bin/etcd.
"""

from __future__ import annotations

import argparse
import asyncio
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
            assert process.stdout is not None
            await asyncio.to_thread(process.stdout.readline)
            began = time.monotonic()
            await watcher.wait_for(
                lambda w: "tiny" in w.models and bool(w.models["tiny"].instances), 30
            )
            visible.append(time.monotonic() - began)
            await asyncio.sleep(ttl / 2)
            began = time.monotonic()
            process.send_signal(signal.SIGKILL)
            process.wait()
            await watcher.wait_for(lambda w: "tiny" not in w.models, 30)
            removed.append(time.monotonic() - began)
    finally:
        await watcher.stop()
        await store.close()
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
    finally:
        if etcd is not None:
            etcd.kill()


if __name__ == "__main__":
    asyncio.run(main())
