"""Two engines in one pod (failover): each appears with its own argv, and verify refuses a pod
whose containers use one port (they share the pod's network)."""

from __future__ import annotations

import copy
from typing import Any

from drivetrain.verify import verify_manifests
from tests.verify.manifests import container, lws, pod_template

VLLM = ["python3", "-m", "dynamo.vllm", "--model", "Qwen/Qwen3-0.6B"]


def deployment(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w", "namespace": "ml"},
        "spec": {"replicas": 1, "template": pod_template(*containers, **spec)},
    }


def engine(index: int, port: str, **extra: Any) -> dict[str, Any]:
    c = container(VLLM, [], env=[{"name": "DYN_SYSTEM_PORT", "value": port}], **extra)
    c["name"] = f"engine-{index}"
    return c


def test_two_engines_with_their_own_ports_verify_and_both_show() -> None:
    report = verify_manifests([deployment(engine(0, "9090"), engine(1, "9091"))])
    assert report.ok, report.problems
    assert [p.container for p in report.processes] == ["engine-0", "engine-1"]


def test_two_engines_on_one_system_port_are_a_problem() -> None:
    report = verify_manifests([deployment(engine(0, "9090"), engine(1, "9090"))])
    (problem,) = report.problems
    assert problem.container == "engine-1"
    assert problem.token == "env DYN_SYSTEM_PORT=9090"
    assert "port 9090 is also used by container engine-0 (env DYN_SYSTEM_PORT)" in problem.message


def test_a_declared_container_port_counts_and_a_native_sidecar_shares_the_network() -> None:
    sidecar = {
        "name": "gms-server",
        "image": "x:1",
        "command": ["server"],
        "restartPolicy": "Always",
        "ports": [{"name": "metrics", "containerPort": 9091}],
    }
    plain_init = {"name": "setup", "image": "x:1", "command": ["setup", "--master-port", "9090"]}
    report = verify_manifests(
        [deployment(engine(0, "9090"), engine(1, "9091"), initContainers=[plain_init, sidecar])]
    )
    # The plain init container ran and exited before the engines start: no conflict with it.
    (problem,) = report.problems
    assert (problem.container, problem.token) == ("engine-1", "env DYN_SYSTEM_PORT=9091")
    assert "also used by container gms-server (containerPort metrics)" in problem.message


def test_the_same_rendezvous_port_in_both_engines_of_every_group_pod_is_a_problem() -> None:
    args = ["--master-addr", "$(LWS_LEADER_ADDRESS)", "--master-port", "29500", "--nnodes", "2"]
    leader = [engine(i, str(9090 + i)) for i in (0, 1)]
    for e in leader:
        e["args"] = [*args, "--node-rank", "0"]
    worker = copy.deepcopy(leader)
    for e in worker:
        e["args"] = [*args, "--node-rank", "$(LWS_WORKER_INDEX)"]
    obj = lws(leader[0], worker[0], size=2, replicas=1)
    tmpl = obj["spec"]["leaderWorkerTemplate"]
    tmpl["leaderTemplate"]["spec"]["containers"] = leader
    tmpl["workerTemplate"]["spec"]["containers"] = worker
    report = verify_manifests([obj])
    assert {(p.pod, p.token) for p in report.problems} == {
        ("g-worker-0", "--master-port=29500"),
        ("g-worker-0-1", "--master-port=29500"),
    }
    # Two engines of one pod claim the same rank: that is no rank problem.
    assert all("rank" not in p.message for p in report.problems)
