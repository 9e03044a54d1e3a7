"""``drivetrain apply / status / delete`` as a person runs them, against the emulated cluster."""

from __future__ import annotations

import socket
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from lightkube.types import PatchType

from drivetrain.kube.resources import GraphDeploymentResource
from tests.cli.helpers import run_cli
from tests.kube.conftest import NS, Cluster
from tests.kube.emulator import ADMIN_TOKEN, ExtendedEmulator, RunningCluster, token_kubeconfig

GRAPH = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: chat}
spec:
  services:
    Frontend:
      componentType: frontend
      extraPodSpec:
        mainContainer: {image: example/drivetrain:1}
"""


def kube_env(kubeconfig: Path) -> dict[str, str | None]:
    """The CLI's environment: the kubeconfig names the cluster (not in a pod, whatever runs
    the tests), and lines wide enough for the status tables."""
    return {"KUBECONFIG": str(kubeconfig), "COLUMNS": "200", "KUBERNETES_SERVICE_HOST": None}


def drivetrain(
    *args: str, kubeconfig: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, stdin=stdin, env=kube_env(kubeconfig))


@pytest.fixture
def graph_file(tmp_path: Path) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(textwrap.dedent(GRAPH))
    return path


def test_apply_creates_the_graph_in_the_given_namespace(cluster: Cluster, graph_file: Path) -> None:
    result = drivetrain("apply", "-f", str(graph_file), "-n", NS, kubeconfig=cluster.kubeconfig)
    assert result.returncode == 0, result.stderr
    assert "GraphDeployment ml/chat applied" in result.stderr
    assert cluster.graph("chat")["spec"]["services"]["Frontend"]["componentType"] == "frontend"


def test_apply_reads_the_graph_from_stdin(cluster: Cluster) -> None:
    text = textwrap.dedent(GRAPH).replace("name: chat", "name: piped")
    result = drivetrain("apply", "-f", "-", "-n", NS, kubeconfig=cluster.kubeconfig, stdin=text)
    assert result.returncode == 0, result.stderr
    assert "GraphDeployment ml/piped applied" in result.stderr
    assert cluster.graph("piped")["metadata"]["name"] == "piped"


def test_apply_twice_is_an_update_not_a_conflict(cluster: Cluster, graph_file: Path) -> None:
    for _ in range(2):
        result = drivetrain("apply", "-f", str(graph_file), "-n", NS, kubeconfig=cluster.kubeconfig)
        assert result.returncode == 0, result.stderr


def test_apply_of_an_invalid_file_names_the_field_and_touches_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(GRAPH).replace("componentType: frontend", "componentType: x"))
    writes = len(cluster.emulator.writes)
    result = drivetrain("apply", "-f", str(bad), "-n", NS, kubeconfig=cluster.kubeconfig)
    assert result.returncode == 1
    assert "spec.services.Frontend.componentType" in result.stderr
    assert "Traceback" not in result.stderr
    assert cluster.emulator.writes[writes:] == []


def test_apply_leaves_the_documents_beside_the_graph_to_the_user_and_says_so(
    cluster: Cluster, tmp_path: Path
) -> None:
    config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: engine-config}\n"
    path = tmp_path / "both.yaml"
    path.write_text(f"{config_map}---\n{textwrap.dedent(GRAPH)}")
    writes = len(cluster.emulator.writes)
    result = drivetrain("apply", "-f", str(path), "-n", NS, kubeconfig=cluster.kubeconfig)
    assert result.returncode == 0, result.stderr
    assert f"{path}: document 1: ConfigMap engine-config is not a graph; not applied" in (
        result.stderr
    )
    assert "GraphDeployment ml/chat applied" in result.stderr
    written = {p for _, p in cluster.emulator.writes[writes:]}
    assert written == {f"/apis/drivetrain.dev/v1alpha1/namespaces/{NS}/graphdeployments/chat"}


def test_status_shows_a_row_per_service_with_counts_and_what_is_missing(
    cluster: Cluster, graph_file: Path
) -> None:
    cluster.client.create(
        GraphDeploymentResource(
            {**yaml.safe_load(GRAPH), "metadata": {"name": "chat", "namespace": NS}}
        )
    )
    status = {
        "observedGeneration": 1,
        "state": "pending",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "ResourcesNotReady",
                "message": "not ready: Deployment chat-frontend: 1/2 replicas ready",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "services": {
            "Frontend": {
                "componentKind": "Deployment",
                "componentName": "chat-frontend",
                "replicas": 2,
                "readyReplicas": 1,
                "updatedReplicas": 2,
            }
        },
    }
    cluster.client.patch(
        GraphDeploymentResource.Status, "chat", {"status": status}, patch_type=PatchType.MERGE
    )
    result = drivetrain("status", "chat", "-n", NS, kubeconfig=cluster.kubeconfig)
    assert result.returncode == 0, result.stderr
    assert "GraphDeployment ml/chat: pending" in result.stdout
    (row,) = [line for line in result.stdout.splitlines() if "Frontend" in line]
    for cell in ("Deployment", "chat-frontend", "1/2/2", "1/2 replicas ready"):
        assert cell in row


def test_status_of_a_missing_graph_says_so(cluster: Cluster) -> None:
    result = drivetrain("status", "nope", "-n", NS, kubeconfig=cluster.kubeconfig)
    assert result.returncode == 1
    assert "GraphDeployment 'nope' not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_delete_removes_the_graph(cluster: Cluster, graph_file: Path) -> None:
    drivetrain("apply", "-f", str(graph_file), "-n", NS, kubeconfig=cluster.kubeconfig)
    result = drivetrain("delete", "chat", "-n", NS, kubeconfig=cluster.kubeconfig)
    assert result.returncode == 0, result.stderr
    assert not list(cluster.client.list(GraphDeploymentResource))


def test_a_cluster_without_the_crd_is_named_as_such(tmp_path: Path, graph_file: Path) -> None:
    with RunningCluster(ExtendedEmulator()) as running:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(running.kubeconfig()))
        result = drivetrain("apply", "-f", str(graph_file), kubeconfig=kubeconfig)
    assert result.returncode == 1
    assert "CRD graphdeployments.drivetrain.dev is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_cluster_is_one_clear_line(tmp_path: Path, graph_file: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    config = token_kubeconfig(f"http://127.0.0.1:{port}", ADMIN_TOKEN, "default")
    kubeconfig.write_text(yaml.safe_dump(config))
    for args in (["apply", "-f", str(graph_file)], ["status", "chat"], ["delete", "chat"]):
        result = drivetrain(*args, kubeconfig=kubeconfig)
        assert result.returncode == 1, args
        assert "cannot reach the Kubernetes API server" in result.stderr
        assert "Traceback" not in result.stderr


def test_no_kubeconfig_at_all_is_one_clear_line(tmp_path: Path) -> None:
    result = drivetrain("status", "chat", kubeconfig=tmp_path / "missing")
    assert result.returncode == 1
    assert "no cluster configuration" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_operator_refuses_to_start_without_the_crd(tmp_path: Path) -> None:
    with RunningCluster(ExtendedEmulator()) as running:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(running.kubeconfig()))
        result = drivetrain("operator", kubeconfig=kubeconfig)
    assert result.returncode == 1
    assert "CRD graphdeployments.drivetrain.dev is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_operator_refuses_to_start_without_a_cluster(tmp_path: Path) -> None:
    result = drivetrain("operator", kubeconfig=tmp_path / "missing")
    assert result.returncode == 1
    assert "no cluster configuration" in result.stderr
    assert "Traceback" not in result.stderr
