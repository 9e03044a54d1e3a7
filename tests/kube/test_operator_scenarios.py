"""The operator against the emulated cluster: what a platform team sees happen."""

from __future__ import annotations

from tests.kube.conftest import Cluster, OperatorThread, quiet
from tests.waiting import eventually

AGG = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: chat}
spec:
  backendFramework: sglang
  services:
    Frontend:
      componentType: frontend
      extraPodSpec:
        mainContainer: {image: example/drivetrain:1}
    worker:
      componentType: worker
      replicas: 2
      extraPodSpec:
        mainContainer:
          image: example/drivetrain:1
          command: [drivetrain, worker]
          args: [--engine, mocker, --model-name, qwen]
"""


def state_of(cluster: Cluster, name: str) -> str | None:
    return (cluster.graph(name).get("status") or {}).get("state")


def test_a_new_graph_gets_its_children_and_is_pending(cluster: Cluster, operator) -> None:
    cluster.create_graph(AGG)
    children = eventually(lambda: len(cluster.children("chat")) >= 6 and cluster.children("chat"))
    assert set(children) == {
        ("ServiceAccount", "chat-discovery"),
        ("Role", "chat-discovery-role"),
        ("RoleBinding", "chat-discovery-binding"),
        ("Deployment", "chat-frontend"),
        ("Deployment", "chat-worker"),
        ("Service", "chat-frontend"),
    }
    status = eventually(lambda: cluster.graph("chat").get("status"))
    assert status["state"] == "pending"


def workloads_ready(cluster: Cluster, graph: str) -> None:
    for kind, name in cluster.children(graph):
        if kind in ("Deployment", "LeaderWorkerSet", "PodCliqueSet"):
            cluster.roll_out(kind, name)


def test_every_child_is_labelled_and_controlled_by_the_graph(cluster: Cluster, operator) -> None:
    graph = cluster.create_graph(AGG)
    children = eventually(lambda: len(cluster.children("chat")) >= 6 and cluster.children("chat"))
    for obj in children.values():
        assert obj["metadata"]["labels"]["drivetrain.dev/graph"] == "chat"
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref["uid"] == graph["metadata"]["uid"]
        assert ref["controller"] is True


def test_graph_is_successful_once_its_children_are_ready(cluster: Cluster, operator) -> None:
    cluster.create_graph(AGG)
    eventually(lambda: state_of(cluster, "chat") == "pending")
    workloads_ready(cluster, "chat")
    eventually(lambda: state_of(cluster, "chat") == "successful")
    status = cluster.graph("chat")["status"]
    (ready,) = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == (
        "Ready",
        "True",
        "AllResourcesReady",
    )
    assert status["observedGeneration"] == cluster.graph("chat")["metadata"]["generation"]
    assert status["services"]["worker"] == {
        "componentKind": "Deployment",
        "componentName": "chat-worker",
        "replicas": 2,
        "readyReplicas": 2,
        "updatedReplicas": 2,
    }


def test_pending_message_names_what_is_not_ready(cluster: Cluster, operator) -> None:
    cluster.create_graph(AGG)
    eventually(lambda: state_of(cluster, "chat") == "pending")
    cluster.roll_out("Deployment", "chat-frontend")
    eventually(
        lambda: "chat-frontend" not in cluster.graph("chat")["status"]["conditions"][0]["message"]
    )
    message = cluster.graph("chat")["status"]["conditions"][0]["message"]
    assert "Deployment chat-worker" in message
    assert state_of(cluster, "chat") == "pending"


def test_spec_change_patches_children_and_stays_pending_until_updated_replicas_are_ready(
    cluster: Cluster, operator
) -> None:
    cluster.create_graph(AGG)
    eventually(lambda: state_of(cluster, "chat") == "pending")
    workloads_ready(cluster, "chat")
    eventually(lambda: state_of(cluster, "chat") == "successful")

    cluster.patch_graph("chat", {"spec": {"services": {"worker": {"replicas": 3}}}})
    eventually(
        lambda: cluster.children("chat")["Deployment", "chat-worker"]["spec"]["replicas"] == 3
    )
    eventually(lambda: state_of(cluster, "chat") == "pending")
    # The controller has seen the change; old pods are still ready, only 1 of 3 is updated.
    worker = cluster.children("chat")["Deployment", "chat-worker"]
    cluster.set_child_status(
        "Deployment",
        "chat-worker",
        {
            "observedGeneration": worker["metadata"]["generation"],
            "replicas": 3,
            "updatedReplicas": 1,
            "readyReplicas": 3,
        },
    )
    eventually(
        lambda: (
            "1/3 replicas updated" in cluster.graph("chat")["status"]["conditions"][0]["message"]
        )
    )
    assert state_of(cluster, "chat") == "pending"
    cluster.roll_out("Deployment", "chat-worker")
    eventually(lambda: state_of(cluster, "chat") == "successful")


def test_a_removed_service_loses_its_child(cluster: Cluster, operator) -> None:
    cluster.create_graph(AGG)
    eventually(lambda: ("Deployment", "chat-worker") in cluster.children("chat"))
    cluster.patch_graph("chat", {"spec": {"services": {"worker": None}}})
    eventually(lambda: ("Deployment", "chat-worker") not in cluster.children("chat"))
    assert ("Deployment", "chat-frontend") in cluster.children("chat")
    eventually(lambda: "worker" not in cluster.graph("chat")["status"]["services"])


def test_going_multinode_replaces_the_deployment_with_a_leaderworkerset(
    with_lws: Cluster, operator
) -> None:
    cluster = with_lws
    cluster.create_graph(AGG)
    eventually(lambda: ("Deployment", "chat-worker") in cluster.children("chat"))
    cluster.patch_graph("chat", {"spec": {"services": {"worker": {"multinode": {"nodeCount": 2}}}}})
    eventually(lambda: ("LeaderWorkerSet", "chat-worker") in cluster.children("chat"))
    eventually(lambda: ("Deployment", "chat-worker") not in cluster.children("chat"))
    lws = cluster.children("chat")["LeaderWorkerSet", "chat-worker"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    eventually(
        lambda: (
            cluster.graph("chat")["status"]["services"]["worker"]["componentKind"]
            == "LeaderWorkerSet"
        )
    )


def test_multinode_without_lws_or_grove_fails_and_creates_nothing(
    cluster: Cluster, operator
) -> None:
    cluster.create_graph(AGG.replace("replicas: 2", "replicas: 2\n      multinode: {nodeCount: 2}"))
    eventually(lambda: state_of(cluster, "chat") == "failed")
    (ready,) = cluster.graph("chat")["status"]["conditions"]
    assert ready["reason"] == "MultinodeAPIUnavailable"
    assert "worker" in ready["message"] and "LeaderWorkerSet" in ready["message"]
    assert cluster.children("chat") == {}


def test_multinode_uses_grove_when_only_grove_is_installed(with_grove: Cluster, operator) -> None:
    cluster = with_grove
    cluster.create_graph(AGG.replace("replicas: 2", "replicas: 2\n      multinode: {nodeCount: 2}"))
    eventually(lambda: ("PodCliqueSet", "chat") in cluster.children("chat"))
    assert not [k for k in cluster.children("chat") if k[0] == "Deployment"]
    eventually(lambda: state_of(cluster, "chat") == "pending")
    cluster.roll_out("PodCliqueSet", "chat")
    eventually(lambda: state_of(cluster, "chat") == "successful")


def test_invalid_spec_fails_with_the_validation_message_and_no_children(
    cluster: Cluster, operator
) -> None:
    cluster.create_graph(AGG.replace("replicas: 2", "replicas: -1"))
    eventually(lambda: state_of(cluster, "chat") == "failed")
    (ready,) = cluster.graph("chat")["status"]["conditions"]
    assert ready["reason"] == "InvalidSpec"
    assert "spec.services.worker.replicas" in ready["message"]
    assert cluster.children("chat") == {}


def test_deleting_the_graph_takes_its_children(cluster: Cluster, operator) -> None:
    from drivetrain.kube.resources import GraphDeploymentResource

    cluster.create_graph(AGG)
    eventually(lambda: len(cluster.children("chat")) == 6)
    cluster.client.delete(GraphDeploymentResource, "chat")
    eventually(lambda: cluster.children("chat") == {})


def test_a_child_deleted_by_hand_comes_back(cluster: Cluster, operator) -> None:
    from lightkube.resources.apps_v1 import Deployment

    cluster.create_graph(AGG)
    eventually(lambda: ("Deployment", "chat-worker") in cluster.children("chat"))
    cluster.client.delete(Deployment, "chat-worker")
    eventually(lambda: ("Deployment", "chat-worker") in cluster.children("chat"))


def test_a_restarted_operator_writes_nothing(cluster: Cluster) -> None:
    op = OperatorThread()
    op.start()
    try:
        cluster.create_graph(AGG)
        eventually(lambda: state_of(cluster, "chat") == "pending")
        workloads_ready(cluster, "chat")
        eventually(lambda: state_of(cluster, "chat") == "successful")
        quiet(cluster)
    finally:
        op.stop()
    before = len(cluster.emulator.writes)
    seen = len(cluster.emulator.log)
    op.start()
    try:
        # The restarted operator has reconciled once it has listed the graph's children.
        eventually(
            lambda: any(
                "labelSelector=drivetrain.dev" in path and "deployments" in path
                for _, path, _ in cluster.emulator.log[seen:]
            )
        )
        quiet(cluster)
        assert cluster.emulator.writes[before:] == []
    finally:
        op.stop()


def test_children_are_server_side_applied_by_one_field_manager(cluster: Cluster, operator) -> None:
    cluster.create_graph(AGG)
    eventually(lambda: len(cluster.children("chat")) == 6)
    child_writes = [
        (method, path)
        for method, path, _ in cluster.emulator.log
        if method != "GET"
        and any(
            f"/{plural}/" in path
            for plural in ("deployments", "services", "serviceaccounts", "roles", "rolebindings")
        )
    ]
    assert len(child_writes) == 6  # serviceaccounts, roles, rolebindings, 2 deployments, 1 service
    for method, path in child_writes:
        assert method == "PATCH"
        assert "fieldManager=drivetrain" in path and "force=true" in path


def test_an_update_that_makes_the_spec_invalid_fails_but_leaves_the_running_children(
    cluster: Cluster, operator
) -> None:
    cluster.create_graph(AGG)
    eventually(lambda: state_of(cluster, "chat") == "pending")
    cluster.patch_graph("chat", {"spec": {"services": {"worker": {"replicas": -1}}}})
    eventually(lambda: state_of(cluster, "chat") == "failed")
    assert cluster.graph("chat")["status"]["conditions"][0]["reason"] == "InvalidSpec"
    assert ("Deployment", "chat-worker") in cluster.children("chat")


def test_a_workload_changed_by_hand_is_put_back(cluster: Cluster, operator) -> None:
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.types import PatchType

    cluster.create_graph(AGG)
    eventually(lambda: state_of(cluster, "chat") == "pending")
    cluster.client.patch(
        Deployment, "chat-worker", {"spec": {"replicas": 7}}, patch_type=PatchType.MERGE
    )
    eventually(
        lambda: cluster.children("chat")["Deployment", "chat-worker"]["spec"]["replicas"] == 2
    )


TRAINER = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: train}
spec:
  services:
    policy:
      componentType: trainer
      multinode: {nodeCount: 2}
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, command: [torchrun], args: [train.py]}
"""


def test_a_trainer_is_a_job_and_a_changed_one_is_created_again(cluster: Cluster, operator) -> None:
    """A Job's pod template cannot be changed in place (the API server refuses): the operator
    deletes the old Job and creates the new one; a Job that completed makes the graph
    successful, with no LeaderWorkerSet needed."""
    cluster.create_graph(TRAINER)
    job = eventually(lambda: cluster.children("train").get(("Job", "train-policy")))
    assert ("Service", "train-policy") in cluster.children("train"), "the headless Service"
    assert job["spec"]["completionMode"] == "Indexed"
    cluster.patch_graph(
        "train",
        {
            "spec": {
                "services": {"policy": {"extraPodSpec": {"mainContainer": {"args": ["v2.py"]}}}}
            }
        },
    )

    def recreated() -> dict | None:
        new = cluster.children("train").get(("Job", "train-policy"))
        return new if new and new["metadata"]["uid"] != job["metadata"]["uid"] else None

    new = eventually(recreated)
    assert new["spec"]["template"]["spec"]["containers"][-1]["args"] == ["v2.py"]
    cluster.set_child_status(
        "Job",
        "train-policy",
        {"succeeded": 2, "conditions": [{"type": "Complete", "status": "True"}]},
    )
    eventually(lambda: state_of(cluster, "train") == "successful")
    assert cluster.graph("train")["status"]["services"]["policy"]["succeeded"] is True
