"""``drivetrain apply --wait``: until the graphs pass their gates, or the run is done.

A plain graph is waited for through the same three gates an RLRun's graphs pass
(``kube.gates``), checked from the client; an RLRun through its status, which the operator
writes.  Each change of what is awaited is reported through ``report`` (one line), so a person
sees progress, and the last closed gate is the answer when the time runs out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient, Client

from drivetrain.kube.errors import cluster_errors
from drivetrain.kube.gates import Gate, check_graph
from drivetrain.kube.resources import PRIMARY, RLRunResource

Report = Callable[[str], None]
#: How long ``--wait`` waits for plain graphs when no ``--timeout`` is given (an RLRun's own
#: ``readyTimeoutS`` default).
DEFAULT_GRAPH_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Waited:
    ok: bool
    #: why not (the closed gate, the run's failure, or the time that ran out)
    message: str = ""
    status: dict[str, Any] | None = None


async def _graph_gate(client: AsyncClient, kind: str, name: str, namespace: str) -> Gate:
    obj = await client.get(PRIMARY[kind], name, namespace=namespace)
    return await check_graph(client, {**obj.to_dict(), "kind": kind})


async def wait_for_graphs(
    client: AsyncClient,
    graphs: list[tuple[str, str, str]],
    timeout: float,
    report: Report,
    poll_s: float = 1.0,
) -> Waited:
    """Until every ``(kind, name, namespace)`` passes its gates; a failed graph ends it."""
    deadline = time.monotonic() + timeout
    shown: dict[tuple[str, str, str], str] = {}
    while True:
        closed: dict[tuple[str, str, str], Gate] = {}
        for graph in graphs:
            with cluster_errors(graph[0], graph[1]):
                gate = await _graph_gate(client, *graph)
            if gate.ready:
                if shown.get(graph) != "ready":
                    report(f"{graph[0]} {graph[2]}/{graph[1]}: all gates passed")
                    shown[graph] = "ready"
                continue
            closed[graph] = gate
            if gate.failed:
                return Waited(False, f"{graph[0]} {graph[2]}/{graph[1]}: {gate.message}")
            if shown.get(graph) != gate.message:
                report(f"{graph[0]} {graph[2]}/{graph[1]}: waiting: {gate.message}")
                shown[graph] = gate.message
        if not closed:
            return Waited(True)
        if time.monotonic() >= deadline:
            (kind, name, ns), gate = next(iter(closed.items()))
            return Waited(
                False, f"timed out after {timeout:g}s: {kind} {ns}/{name}: {gate.message}"
            )
        await asyncio.sleep(poll_s)


def wait_for_run(
    client: Client,
    name: str,
    namespace: str | None,
    timeout: float | None,
    report: Report,
    poll_s: float = 1.0,
) -> Waited:
    """Until the RLRun is Succeeded (raycluster mode: Running) or Failed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = ""
    status: dict[str, Any] = {}
    while True:
        with cluster_errors("RLRun", name):
            obj = client.get(RLRunResource, name, namespace=namespace).to_dict()
        status = obj.get("status") or {}
        phase = status.get("phase") or "Pending"
        current = obj["metadata"].get("generation") == status.get("observedGeneration")
        line = f"RLRun {name}: {phase}" + (
            f": {status['message']}" if status.get("message") else ""
        )
        if current and line != shown:
            report(line)
            shown = line
        mode = ((obj.get("spec") or {}).get("ray") or {}).get("mode", "rayjob")
        if current and phase == "Failed":
            return Waited(
                False, f"{status.get('reason', 'Failed')}: {status.get('message', '')}", status
            )
        if current and (phase == "Succeeded" or (phase == "Running" and mode == "raycluster")):
            return Waited(True, status=status)
        if deadline is not None and time.monotonic() >= deadline:
            return Waited(False, f"timed out after {timeout:g}s: {line}", status)
        time.sleep(poll_s)
