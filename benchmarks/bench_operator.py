"""Reconcile N graphs (default 200) with the real operator against the emulated API server.

    .venv/bin/python benchmarks/bench_operator.py [--graphs 200]

Phase 1 (cold): N graphs exist, the operator starts; time until every graph has a status for
its generation, and the API requests the operator made per graph.  Phase 2 (no-op resync):
the operator restarts and finds everything in place; requests per graph and writes (0 is the
contract).  The emulator (tests/kube/emulator.py) answers in-process over loopback HTTP, so the
figures measure the operator's own cost and request count, not a real API server's latency.
The bench's own requests go through plain httpx and are told apart by their User-Agent.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.kube.conftest import OperatorThread  # noqa: E402
from tests.kube.emulator import ExtendedEmulator, RunningCluster  # noqa: E402

NS = "bench"
GRAPHS_URL = f"/apis/drivetrain.dev/v1alpha1/namespaces/{NS}/graphdeployments"


def graph(i: int) -> dict:
    return {
        "apiVersion": "drivetrain.dev/v1alpha1",
        "kind": "GraphDeployment",
        "metadata": {"name": f"g{i:04d}", "namespace": NS},
        "spec": {
            "services": {
                "Frontend": {
                    "componentType": "frontend",
                    "extraPodSpec": {"mainContainer": {"image": "example/drivetrain:1"}},
                },
                "worker": {
                    "componentType": "worker",
                    "replicas": 2,
                    "extraPodSpec": {
                        "mainContainer": {
                            "image": "example/drivetrain:1",
                            "command": ["drivetrain", "worker"],
                            "args": ["--engine", "mocker", "--model-name", "qwen"],
                        }
                    },
                },
            }
        },
    }


def operator_requests(emulator: ExtendedEmulator, since: int) -> list[tuple[str, str, str]]:
    return [e for e in emulator.log[since:] if not e[2].startswith("python-httpx/")]


def wait_all_reconciled(http: httpx.Client, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = http.get(GRAPHS_URL).json()["items"]
        done = sum(
            1
            for g in items
            if (g.get("status") or {}).get("observedGeneration") == g["metadata"]["generation"]
        )
        if done == n:
            return
        time.sleep(0.1)
    raise SystemExit("timed out waiting for the operator")


def wait_quiet(emulator: ExtendedEmulator, settle: float = 1.0) -> None:
    count, since = len(emulator.log), time.monotonic()
    while time.monotonic() - since < settle:
        time.sleep(0.05)
        if len(emulator.log) != count:
            count, since = len(emulator.log), time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--graphs", type=int, default=200)
    opts = parser.parse_args()
    n = opts.graphs
    logging.disable(logging.INFO)  # per-request access logs would dominate the run

    running = RunningCluster(ExtendedEmulator(history_limit=2)).start()
    emulator = running.emulator
    kubeconfig = REPO / ".bench-kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(running.kubeconfig()))
    os.environ["KUBECONFIG"] = str(kubeconfig)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as http:
            for doc in yaml.safe_load_all((REPO / "deploy" / "crd.yaml").read_text()):
                if doc:
                    http.post(
                        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=doc
                    ).raise_for_status()
            for i in range(n):
                http.post(GRAPHS_URL, json=graph(i)).raise_for_status()

            op = OperatorThread()
            mark = len(emulator.log)
            start = time.perf_counter()
            op.start()
            wait_all_reconciled(http, n)
            cold_s = time.perf_counter() - start
            wait_quiet(emulator)
            op.stop()
            cold = operator_requests(emulator, mark)
            cold_writes = [e for e in cold if e[0] != "GET"]

            mark, writes_mark = len(emulator.log), len(emulator.writes)
            op.start()
            wait_quiet(emulator, settle=2.0)
            op.stop()
            resync = operator_requests(emulator, mark)
            resync_writes = len(emulator.writes) - writes_mark
    finally:
        running.stop()
        kubeconfig.unlink(missing_ok=True)

    print(
        f"graphs: {n} (6 children each: 2 Deployments, 1 Service, the pods' ServiceAccount, Role, RoleBinding)"
    )
    print(f"cold reconcile: {cold_s:.2f} s, {n / cold_s:.1f} graphs/s")
    print(
        f"cold API requests per graph: {len(cold) / n:.1f} "
        f"(writes {len(cold_writes) / n:.1f}, reads {(len(cold) - len(cold_writes)) / n:.1f}; "
        "incl. the operator's watch/list/discovery requests)"
    )
    print(
        f"no-op resync after restart: {len(resync) / n:.1f} requests per graph, "
        f"{resync_writes} writes"
    )


if __name__ == "__main__":
    main()
