"""The children a graph's pods need besides workloads, through the operator: the pods' RBAC is
applied, owned and pruned like any child; the MPI SSH Secret is made once per namespace and
never rewritten."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from lightkube.resources.core_v1 import Secret

from drivetrain.kube.mpi_secret import generate_key_pair
from drivetrain.kube.resources import GraphDeploymentResource
from tests.kube.conftest import Cluster, quiet
from tests.kube.test_operator_scenarios import AGG
from tests.waiting import eventually

TRTLLM = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: big}
spec:
  services:
    Frontend: {componentType: frontend}
    decode:
      componentType: worker
      multinode: {nodeCount: 2}
      resources: {limits: {gpu: "8"}}
      extraPodSpec:
        mainContainer: {image: example/trtllm:1, command: [trtllm-serve, example/model]}
"""
SECRET = "mpi-run-ssh-secret"


def secret(cluster: Cluster) -> dict | None:
    try:
        return cluster.client.get(Secret, SECRET).to_dict()
    except Exception:
        return None


def secret_writes(cluster: Cluster) -> list[tuple[str, str]]:
    return [w for w in cluster.emulator.writes if "/secrets" in w[1]]


def test_the_pods_rbac_is_pruned_when_discovery_no_longer_needs_it(
    cluster: Cluster, operator
) -> None:
    cluster.create_graph(AGG)
    eventually(lambda: ("Role", "chat-discovery-role") in cluster.children("chat"))
    cluster.patch_graph("chat", {"spec": {"discovery": "etcd://etcd.infra:2379"}})
    eventually(
        lambda: (
            not {k for k, _ in cluster.children("chat")} & {"ServiceAccount", "Role", "RoleBinding"}
        )
    )
    assert ("Deployment", "chat-worker") in cluster.children("chat")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_a_generated_key_pair_is_one_openssh_reads(tmp_path: Path) -> None:
    private, public = generate_key_pair("mpi@ml")
    key = tmp_path / "id"
    key.write_bytes(private)
    key.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True
    ).stdout
    assert derived.split()[:2] == public.decode().split()[:2]
    assert public.decode().startswith("ssh-ed25519 ") and public.endswith(b" mpi@ml\n")


def test_the_operator_makes_the_mpi_secret_once_per_namespace(with_lws: Cluster, operator) -> None:
    cluster = with_lws
    cluster.create_graph(TRTLLM)
    made = eventually(lambda: secret(cluster))
    private = base64.b64decode(made["data"]["private.key"])
    public = base64.b64decode(made["data"]["private.key.pub"])
    assert private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert public.startswith(b"ssh-ed25519 ")
    # The namespace's, not the graph's: no owner, so deleting the graph keeps it.
    assert not made["metadata"].get("ownerReferences")
    assert ("Secret", SECRET) not in cluster.children("big")
    version = made["metadata"]["resourceVersion"]
    # A second graph, and the first one reconciled again: the Secret is never rewritten.
    cluster.create_graph(TRTLLM.replace("name: big", "name: bigger"))
    eventually(lambda: ("LeaderWorkerSet", "bigger-decode") in cluster.children("bigger"))
    cluster.patch_graph("big", {"spec": {"labels": {"team": "a"}}})
    eventually(lambda: cluster.children("big")["LeaderWorkerSet", "big-decode"]["metadata"]
               ["labels"].get("team") == "a")  # fmt: skip
    quiet(cluster)
    assert secret(cluster)["metadata"]["resourceVersion"] == version
    assert [m for m, _ in secret_writes(cluster)] == ["POST"]  # one create, ever
    cluster.client.delete(GraphDeploymentResource, "big")
    eventually(lambda: cluster.children("big") == {})
    assert secret(cluster)["data"] == made["data"]


def test_an_existing_mpi_secret_is_left_as_it_is(with_lws: Cluster, operator) -> None:
    cluster = with_lws
    own = {"private.key": base64.b64encode(b"mine").decode()}
    cluster.client.create(Secret.from_dict({"metadata": {"name": SECRET}, "data": own}))
    cluster.create_graph(TRTLLM)
    eventually(lambda: ("LeaderWorkerSet", "big-decode") in cluster.children("big"))
    quiet(cluster)
    assert secret(cluster)["data"] == own
    assert [m for m, _ in secret_writes(cluster)] == ["POST"]  # the test's own create only
