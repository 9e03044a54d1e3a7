"""RLRuns against the emulated cluster: the operator (the real one, graphs included), KubeRay
played by ``players.KubeRay``, the graphs' pods and a real frontend behind the service proxy.

What is proved: the RayJob exists, suspended, before anything else and is released only once
every graph passed all three gates; the ownerReference shape; a gate that times out leaves the
RayJob suspended with a status that says which gate and why; a RayJob that ends frees its
graphs (unless ``keepGraphs``); deleting the run removes everything; a restarted operator
writes nothing.
"""

from __future__ import annotations

import copy
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Event, Secret
from lightkube.types import PatchType

from drivetrain.kube.resources import (
    GraphDeploymentResource,
    RayClusterResource,
    RayJobResource,
    RLRunResource,
)
from tests.kube.conftest import NS, Cluster, OperatorThread, quiet, schemaless_crd
from tests.kube.players import FrontendThread, KubeRay, Pods
from tests.ports import free_port
from tests.waiting import eventually

RUN = """
apiVersion: drivetrain.dev/v1alpha1
kind: RLRun
metadata: {name: grpo}
spec:
  graphs:
    policy:
      readyTimeoutS: 600
      graph:
        apiVersion: drivetrain.dev/v1alpha1
        kind: GraphDeployment
        metadata: {name: policy}
        spec:
          services:
            Frontend:
              componentType: frontend
              extraPodSpec: {mainContainer: {image: example/drivetrain:1}}
            worker:
              componentType: worker
              extraPodSpec:
                mainContainer:
                  image: example/drivetrain:1
                  args: [worker, --engine, mocker, --model-name, m]
  ray:
    cluster:
      spec:
        headGroupSpec:
          rayStartParams: {}
          template:
            spec:
              containers: [{name: ray-head, image: rayproject/ray:2.52.0}]
    job:
      entrypoint: python3 train.py
"""


@pytest.fixture
def op() -> Iterator[OperatorThread]:
    operator = OperatorThread(run_poll_s=0.3)
    operator.start()
    yield operator
    operator.stop()


@pytest.fixture
def frontend() -> Iterator[FrontendThread]:
    """A frontend not started yet, on a port the pods name."""
    thread = FrontendThread(free_port())
    yield thread
    thread.stop()


def create_run(cluster: Cluster, text: str = RUN, **changes: Any) -> dict[str, Any]:
    obj = yaml.safe_load(textwrap.dedent(text))
    for path, value in changes.items():
        node = obj
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    obj["metadata"]["namespace"] = NS
    return cluster.client.create(RLRunResource(obj)).to_dict()


def run_status(cluster: Cluster, name: str = "grpo") -> dict[str, Any]:
    return cluster.client.get(RLRunResource, name).to_dict().get("status") or {}


def rayjob(cluster: Cluster, name: str = "grpo") -> dict[str, Any]:
    """The RayJob (an empty mapping while there is none)."""
    try:
        return cluster.client.get(RayJobResource, name).to_dict()
    except ApiError:
        return {}


def graph(cluster: Cluster, name: str = "policy") -> dict[str, Any] | None:
    try:
        return cluster.client.get(GraphDeploymentResource, name).to_dict()
    except ApiError:
        return None


def phase_is(cluster: Cluster, phase: str) -> bool:
    return run_status(cluster).get("phase") == phase


def bring_up(cluster: Cluster, frontend: FrontendThread, kuberay: KubeRay) -> None:
    """Everything up to the release: graph rolled out, pods Ready, frontend serving."""
    eventually(lambda: cluster.children("policy").get(("Deployment", "policy-frontend")))
    kuberay.step("grpo")
    Pods(cluster).start("policy", ready=True, frontend_port=frontend.port)
    frontend.start()
    eventually(lambda: rayjob(cluster).get("spec", {}).get("suspend") is False, timeout=30)


def test_the_rayjob_comes_first_suspended_and_owns_the_graph(ray_cluster: Cluster, op) -> None:
    run = create_run(ray_cluster)
    job = eventually(lambda: rayjob(ray_cluster))
    assert job["spec"]["suspend"] is True
    (ref,) = job["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
        "RLRun",
        run["metadata"]["uid"],
        True,
        True,
    )
    made = eventually(lambda: graph(ray_cluster))
    (gref,) = made["metadata"]["ownerReferences"]
    assert (gref["kind"], gref["uid"]) == ("RayJob", job["metadata"]["uid"])
    assert gref["controller"] is False and gref["blockOwnerDeletion"] is False
    created = [p for m, p in ray_cluster.emulator.writes if m in ("POST", "PATCH")]
    first_graph = next(i for i, p in enumerate(created) if "/graphdeployments/" in p)
    first_job = next(i for i, p in enumerate(created) if "/rayjobs/" in p)
    assert first_job < first_graph, "the RayJob exists before any graph"
    eventually(lambda: phase_is(ray_cluster, "WaitingForGraphs"))
    # The RL API's token: generated once, owned by the run, read by the frontend and Ray.
    secret = ray_cluster.client.get(Secret, "grpo-admin-token").to_dict()
    (sref,) = secret["metadata"]["ownerReferences"]
    assert (sref["kind"], sref["uid"]) == ("RLRun", run["metadata"]["uid"])
    token = secret.get("data", {}).get("token") or secret.get("stringData", {}).get("token")
    assert token and len(token) >= 32
    frontend_env = made["spec"]["services"]["Frontend"]["envs"]
    assert {
        "name": "DRIVETRAIN_ADMIN_TOKEN",
        "valueFrom": {
            "secretKeyRef": {"name": "grpo-admin-token", "key": "token", "optional": True}
        },
    } in frontend_env
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in head["env"]}
    assert {"DRIVETRAIN_ADMIN_URL", "DRIVETRAIN_ADMIN_TOKEN"} <= names


def test_no_release_before_all_three_gates(ray_cluster: Cluster, op, frontend) -> None:
    cluster = ray_cluster
    kuberay = KubeRay(cluster)
    create_run(cluster)
    eventually(lambda: cluster.children("policy").get(("Deployment", "policy-worker")))
    kuberay.step("grpo")
    assert kuberay.step("grpo") == "Suspended"

    def waiting_on(gate: str) -> bool:
        entry = run_status(cluster).get("graphs", {}).get("policy", {})
        return entry.get("gate") == gate

    eventually(lambda: waiting_on("status"))
    # Gate 2: the graph is successful (its workloads rolled out) but no pod is Ready.
    Pods(cluster).start("policy", ready=False, frontend_port=frontend.port)
    eventually(lambda: waiting_on("pods"))
    assert "0/2 pods ready" in run_status(cluster)["graphs"]["policy"]["message"]
    quiet(cluster)
    assert rayjob(cluster)["spec"]["suspend"] is True
    # Gate 3: every pod Ready, nothing listens on the frontend's port: the proxy says 503.
    Pods(cluster).set_ready("policy")
    eventually(lambda: waiting_on("frontend"))
    message = run_status(cluster)["graphs"]["policy"]["message"]
    assert message == "frontend: GET /v1/models through the service proxy answered 503"
    quiet(cluster, settle=1.0)
    assert rayjob(cluster)["spec"]["suspend"] is True
    # The frontend answers: released.
    frontend.start()
    eventually(lambda: rayjob(cluster).get("spec", {}).get("suspend") is False)
    status = eventually(lambda: phase_is(cluster, "Running") and run_status(cluster))
    assert status["graphs"]["policy"]["ready"] is True
    assert status["graphs"]["policy"]["frontendURL"] == (
        "http://policy-frontend.ml.svc.cluster.local:8000/v1"
    )
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"GraphsReady": "True", "Ready": "True"}
    eventually(
        lambda: (
            {"Created", "WaitingForGraphs", "Released", "Running"}
            <= {e.reason for e in cluster.client.list(Event) if e.involvedObject.kind == "RLRun"}
        )
    )


def test_the_cluster_name_published_before_the_cluster_is_no_error(
    ray_cluster: Cluster, op, frontend
) -> None:
    cluster, kuberay = ray_cluster, KubeRay(ray_cluster)
    create_run(cluster)
    bring_up(cluster, frontend, kuberay)
    assert kuberay.step("grpo") == "Initializing"  # the name, not the object
    name = rayjob(cluster)["status"]["rayClusterName"]
    status = eventually(
        lambda: (
            run_status(cluster).get("rayCluster", {}).get("name") == name and run_status(cluster)
        )
    )
    assert status["rayCluster"] == {"name": name, "state": "not created yet"}
    assert status["phase"] == "Running" and "error" not in status["message"].lower()
    kuberay.step("grpo")  # the object
    assert kuberay.step("grpo") == "Running"
    eventually(lambda: run_status(cluster)["rayCluster"] == {"name": name, "state": "ready"})
    assert run_status(cluster)["rayJob"]["jobDeploymentStatus"] == "Running"


@pytest.mark.parametrize(
    ("keep", "outcome"), [(False, "SUCCEEDED"), (True, "SUCCEEDED"), (False, "FAILED")]
)
def test_a_finished_rayjob_frees_its_graphs_unless_kept(
    ray_cluster: Cluster, op, frontend, keep: bool, outcome: str
) -> None:
    cluster, kuberay = ray_cluster, KubeRay(ray_cluster)
    create_run(cluster, **{"spec.keepGraphs": keep})
    bring_up(cluster, frontend, kuberay)
    for _ in range(3):
        kuberay.step("grpo")
    kuberay.finish("grpo", outcome)
    phase = "Succeeded" if outcome == "SUCCEEDED" else "Failed"
    status = eventually(lambda: phase_is(cluster, phase) and run_status(cluster))
    if keep:
        quiet(cluster)
        assert graph(cluster) is not None
    else:
        eventually(lambda: graph(cluster) is None)
        eventually(lambda: cluster.children("policy") == {})
        status = eventually(
            lambda: (
                run_status(cluster)["graphs"]["policy"]["state"] == "deleted"
                and run_status(cluster)
            )
        )
    if outcome == "FAILED":
        assert "job FAILED" in status["message"]
    quiet(cluster)
    assert phase_is(cluster, phase), "an ended run stays ended"


def test_a_gate_that_times_out_fails_the_run_and_leaves_the_rayjob_suspended(
    ray_cluster: Cluster, op
) -> None:
    cluster = ray_cluster
    create_run(cluster)
    eventually(lambda: cluster.children("policy").get(("Deployment", "policy-frontend")))
    Pods(cluster).start("policy", ready=False)
    eventually(
        lambda: run_status(cluster).get("graphs", {}).get("policy", {}).get("gate") == "pods"
    )
    time.sleep(1.1)  # the graph is now older than the timeout below
    cluster.client.patch(
        RLRunResource,
        "grpo",
        {"spec": {"graphs": {"policy": {"readyTimeoutS": 1}}}},
        patch_type=PatchType.MERGE,
    )
    status = eventually(lambda: phase_is(cluster, "Failed") and run_status(cluster), timeout=30)
    assert status["reason"] == "GateTimedOut"
    assert status["message"] == (
        "graph policy (policy) did not pass its pods gate within readyTimeoutS=1: "
        "0/2 pods ready (policy-frontend-0, policy-worker-0 not)"
    )
    quiet(cluster)
    assert rayjob(cluster)["spec"]["suspend"] is True
    assert graph(cluster) is not None, "nothing is deleted silently"
    reasons = {
        e.reason: e.type for e in cluster.client.list(Event) if e.involvedObject.kind == "RLRun"
    }
    assert reasons["Failed"] == "Warning"


def test_deleting_the_run_removes_everything(ray_cluster: Cluster, op, frontend) -> None:
    cluster, kuberay = ray_cluster, KubeRay(ray_cluster)
    create_run(cluster)
    bring_up(cluster, frontend, kuberay)
    for _ in range(3):
        kuberay.step("grpo")
    name = rayjob(cluster)["status"]["rayClusterName"]
    assert cluster.client.get(RayClusterResource, name)
    cluster.client.delete(RLRunResource, "grpo")
    eventually(lambda: graph(cluster) is None)
    assert not list(cluster.client.list(RayJobResource))
    assert not list(cluster.client.list(RayClusterResource))
    eventually(lambda: cluster.children("policy") == {})


def test_a_restarted_operator_writes_nothing(ray_cluster: Cluster, frontend) -> None:
    cluster, kuberay = ray_cluster, KubeRay(ray_cluster)
    op = OperatorThread(run_poll_s=0.3)
    op.start()
    try:
        create_run(cluster)
        bring_up(cluster, frontend, kuberay)
        for _ in range(3):
            kuberay.step("grpo")
        eventually(lambda: run_status(cluster).get("rayCluster", {}).get("state") == "ready")
        quiet(cluster)
    finally:
        op.stop()
    before, seen = len(cluster.emulator.writes), len(cluster.emulator.log)
    op.start()
    try:
        eventually(lambda: any("/rlruns" in p for _, p, _ in cluster.emulator.log[seen:]))
        eventually(lambda: any("/rayclusters/" in p for _, p, _ in cluster.emulator.log[seen:]))
        quiet(cluster, settle=1.0)
        assert cluster.emulator.writes[before:] == []
    finally:
        op.stop()


def test_raycluster_mode_creates_the_cluster_and_is_ready_after_the_gates(
    ray_cluster: Cluster, op, frontend
) -> None:
    cluster = ray_cluster
    run = yaml.safe_load(textwrap.dedent(RUN))
    run["spec"]["ray"]["mode"] = "raycluster"
    del run["spec"]["ray"]["job"]
    create_run(cluster, yaml.safe_dump(run))
    made = eventually(lambda: list(cluster.client.list(RayClusterResource)))
    (ray,) = [r.to_dict() for r in made]
    assert ray["metadata"]["name"] == "grpo" and "suspend" not in ray["spec"]
    (gref,) = eventually(lambda: graph(cluster))["metadata"]["ownerReferences"]
    assert (gref["kind"], gref["uid"]) == ("RayCluster", ray["metadata"]["uid"])
    eventually(lambda: phase_is(cluster, "WaitingForGraphs"))
    eventually(lambda: cluster.children("policy").get(("Deployment", "policy-frontend")))
    Pods(cluster).start("policy", ready=True, frontend_port=frontend.port)
    frontend.start()
    status = eventually(lambda: phase_is(cluster, "Running") and run_status(cluster))
    assert status["rayCluster"]["name"] == "grpo"
    assert "rayJob" not in status


def test_a_manifest_path_in_the_cluster_fails_the_run_and_creates_nothing(
    ray_cluster: Cluster, op
) -> None:
    run = yaml.safe_load(textwrap.dedent(RUN))
    run["spec"]["graphs"]["policy"] = {"manifest": "graph.yaml"}
    create_run(ray_cluster, yaml.safe_dump(run))
    status = eventually(lambda: phase_is(ray_cluster, "Failed") and run_status(ray_cluster))
    assert status["reason"] == "InvalidSpec"
    assert "spec.graphs.policy.manifest: is a path on the client's machine" in status["message"]
    assert not list(ray_cluster.client.list(RayJobResource))
    assert graph(ray_cluster) is None


def test_an_existing_graph_of_the_same_name_is_never_adopted(ray_cluster: Cluster, op) -> None:
    cluster = ray_cluster
    run = yaml.safe_load(textwrap.dedent(RUN))
    cluster.create_graph(yaml.safe_dump(run["spec"]["graphs"]["policy"]["graph"]))
    create_run(cluster)
    status = eventually(lambda: phase_is(cluster, "Failed") and run_status(cluster))
    assert status["reason"] == "GraphConflict"
    assert (
        "GraphDeployment policy (graph policy) exists and is not this run's RayJob's"
        in status["message"]
    )
    assert "ownerReferences" not in graph(cluster)["metadata"], "left as it was"


DGD_RUN = RUN.replace(
    "apiVersion: drivetrain.dev/v1alpha1\n        kind: GraphDeployment",
    "apiVersion: nvidia.com/v1alpha1\n        kind: DynamoGraphDeployment",
)


def play_dynamo(cluster: Cluster, name: str, port: int) -> None:
    """Dynamo's operator for one DGD: its frontend Service (``<dgd>-frontend``, port 8000),
    pods labelled as Dynamo labels them, and a successful status for the current generation."""
    from drivetrain.kube.resources import DynamoGraphDeploymentResource

    dgd = cluster.client.get(DynamoGraphDeploymentResource, name).to_dict()
    labels = {
        "nvidia.com/dynamo-graph-deployment-name": name,
        "nvidia.com/dynamo-component": "Frontend",
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{name}-frontend", "namespace": NS},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": 8000, "targetPort": "http"}],
        },
    }
    cluster.client.create(codecs.from_dict(service))
    cluster.client.create(
        codecs.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{name}-frontend-0", "namespace": NS, "labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "x",
                            "ports": [{"name": "http", "containerPort": port}],
                        }
                    ]
                },
                "status": {
                    "phase": "Running",
                    "podIP": "127.0.0.1",
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    )
    cluster.client.patch(
        DynamoGraphDeploymentResource.Status,
        name,
        {
            "status": {
                "state": "successful",
                "observedGeneration": dgd["metadata"]["generation"],
                "conditions": [{"type": "Ready", "status": "True", "reason": "AllResourcesReady"}],
            }
        },
        patch_type=PatchType.MERGE,
    )


def test_a_dgd_graph_is_gated_on_dynamos_status_labels_and_frontend(
    ray_cluster: Cluster, op, frontend
) -> None:
    """The run creates a DGD that Dynamo's operator (played here) serves; drivetrain's
    operator, not claiming DGDs, leaves the DGD itself alone."""
    cluster = ray_cluster
    cluster.client.create(
        codecs.from_dict(
            copy.deepcopy(
                schemaless_crd("crds", "dynamo", "nvidia.com_dynamographdeployments.yaml")
            )
        )
    )
    create_run(cluster, DGD_RUN)
    from drivetrain.kube.resources import DynamoGraphDeploymentResource

    made = eventually(lambda: list(cluster.client.list(DynamoGraphDeploymentResource)))
    (dgd,) = [d.to_dict() for d in made]
    assert dgd["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
    eventually(
        lambda: run_status(cluster).get("graphs", {}).get("policy", {}).get("gate") == "status"
    )
    assert cluster.children("policy") == {}, "no children from drivetrain: Dynamo's to make"
    play_dynamo(cluster, "policy", frontend.port)
    eventually(
        lambda: run_status(cluster).get("graphs", {}).get("policy", {}).get("gate") == "frontend"
    )
    frontend.start()
    eventually(lambda: rayjob(cluster).get("spec", {}).get("suspend") is False)
    assert run_status(cluster)["graphs"]["policy"]["kind"] == "DynamoGraphDeployment"
