"""The three readiness gates of a graph, read from the graph, its pods and the probe's answer."""

from __future__ import annotations

from typing import Any

import pytest

from drivetrain.kube.gates import frontend_service, pod_selector, pods_gate, probe_gate, status_gate


def graph(
    state: str = "successful",
    generation: int = 2,
    observed: int = 2,
    ready: str = "True",
    kind: str = "GraphDeployment",
) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": "chat", "namespace": "ml", "generation": generation},
        "spec": {
            "services": {
                "Frontend": {"componentType": "frontend"},
                "w": {"componentType": "worker"},
            }
        },
        "status": {
            "state": state,
            "observedGeneration": observed,
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "message": "not ready: Deployment chat-w: 0/1 replicas ready",
                }
            ],
        },
    }


def test_the_status_gate_needs_successful_current_generation_and_ready() -> None:
    assert status_gate(graph()).ready
    assert status_gate(graph(observed=1)).reason == "generation 2 not observed yet (observed 1)"
    assert status_gate(graph(state="pending")).reason == "state is pending"
    assert status_gate(graph(ready="False")).reason.startswith("Ready is not True: not ready:")
    failed = status_gate(graph(state="failed"))
    assert failed.failed and not failed.ready and failed.gate == "status"


def test_an_operator_that_publishes_no_observed_generation_never_passes() -> None:
    g = graph()
    del g["status"]["observedGeneration"]
    assert not status_gate(g).ready


def pod(
    name: str, ready: bool = True, phase: str = "Running", terminating: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


def test_the_pods_gate_waits_for_every_running_pod() -> None:
    assert pods_gate([]).reason == "no pods yet"
    assert pods_gate([pod("a"), pod("b")]).ready
    closed = pods_gate([pod("a"), pod("b", ready=False)])
    assert closed.reason == "1/2 pods ready (b not)"
    done = [
        pod("a"),
        pod("trainer-0", ready=False, phase="Succeeded"),
        pod("old", ready=False, terminating=True),
    ]
    assert pods_gate(done).ready, "a finished or departing pod is not waited for"


@pytest.mark.parametrize(
    ("code", "up"),
    [(200, True), (404, True), (502, False), (503, False), (403, False), (None, False)],
)
def test_the_frontend_gate_reads_the_probe(code: int | None, up: bool) -> None:
    gate = probe_gate(code, "connection refused")
    assert gate.ready is up
    if code is None:
        assert gate.reason == "GET /v1/models did not get through: connection refused"


def test_pods_and_the_frontend_are_found_as_each_operator_names_them() -> None:
    assert pod_selector(graph()) == {"drivetrain.dev/graph": "chat"}
    assert pod_selector(graph(kind="DynamoGraphDeployment")) == {
        "nvidia.com/dynamo-graph-deployment-name": "chat"
    }
    assert frontend_service(graph()) == "chat-frontend"
