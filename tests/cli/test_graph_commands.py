"""``drivetrain render`` / ``validate`` / ``crd`` as a user runs them: real processes, exit codes,
nothing on stdout when the input is bad, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.helpers import run_cli
from tests.paths import REPO

GRAPH = """\
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: demo}
spec:
  services:
    Frontend: {componentType: frontend}
    decode:
      componentType: worker
      multinode: {nodeCount: 2}
      extraPodSpec:
        mainContainer:
          image: lmsysorg/sglang:v0.5
          command: [python3, -m, sglang.launch_server]
          args: [--model-path, Qwen/Qwen3-0.6B, --tp, "16"]
"""


@pytest.fixture
def graph_file(tmp_path: Path) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(GRAPH)
    return path


def test_render_writes_a_yaml_stream(graph_file: Path) -> None:
    result = run_cli("render", "-f", str(graph_file), "-n", "ml")
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ServiceAccount", "demo-discovery"),
        ("Role", "demo-discovery-role"),
        ("RoleBinding", "demo-discovery-binding"),
        ("Deployment", "demo-frontend"),
        ("LeaderWorkerSet", "demo-decode"),
        ("Service", "demo-frontend"),
    ]


def test_render_json_is_one_array_and_grove_is_one_pod_clique_set(graph_file: Path) -> None:
    result = run_cli("render", "-f", str(graph_file), "--multinode", "grove", "-o", "json")
    assert result.returncode == 0, result.stderr
    kinds = [o["kind"] for o in json.loads(result.stdout)]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "PodCliqueSet", "Service"]


def test_validate_reports_ok(graph_file: Path) -> None:
    result = run_cli("validate", "-f", str(graph_file))
    assert result.returncode == 0
    assert "1 graph(s) valid" in result.stderr


def test_bad_input_exits_1_with_every_error_and_no_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        GRAPH.replace("nodeCount: 2", "nodeCount: 1").replace(
            "Frontend: {", "Frontend: {replicas: x, "
        )
    )
    for command in ("render", "validate"):
        result = run_cli(command, "-f", str(bad))
        assert result.returncode == 1
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        assert f"{bad} (document 1): spec.services.decode.multinode.nodeCount" in result.stderr
        assert "spec.services.Frontend.replicas: must be a valid integer" in result.stderr


def test_yaml_errors_name_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: GraphDeployment\nspec: [\n")
    result = run_cli("validate", "-f", str(bad))
    assert result.returncode == 1
    assert f"{bad}:3:1: YAML does not parse" in result.stderr


def test_a_missing_file_is_a_clear_error() -> None:
    result = run_cli("render", "-f", "/nonexistent/graph.yaml")
    assert result.returncode == 1
    assert "/nonexistent/graph.yaml: file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(graph_file: Path) -> None:
    assert run_cli("render").returncode == 2
    assert run_cli("render", "-f", str(graph_file), "--multinode", "slurm").returncode == 2


def test_crd_prints_the_committed_crd() -> None:
    result = run_cli("crd")
    assert result.returncode == 0
    assert result.stdout == (REPO / "deploy" / "crd.yaml").read_text()


BUG = """\
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: bug}
spec:
  services:
    decode:
      componentType: worker
      multinode: {nodeCount: 2}
      extraPodSpec:
        mainContainer:
          image: example/sglang:1
          command: [python3, -m, dynamo.sglang]
          args: [--model-path, Qwen/Qwen3-0.6B, --dist-init-addr, "$LWS_LEADER_ADDRESS:29500"]
"""


@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_verify_catches_a_bare_lws_variable_in_exec_form_args(
    tmp_path: Path, multinode: str
) -> None:
    bad = tmp_path / "bug.yaml"
    bad.write_text(BUG)
    result = run_cli("verify", "-f", str(bad), "--multinode", multinode)
    assert result.returncode == 1
    assert "$LWS_LEADER_ADDRESS:29500" in result.stderr
    assert "container main" in result.stderr


@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_verify_passes_once_the_renderer_injects_the_address(
    tmp_path: Path, multinode: str
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BUG.replace(', --dist-init-addr, "$LWS_LEADER_ADDRESS:29500"', ""))
    result = run_cli("verify", "-f", str(good), "--multinode", multinode)
    assert result.returncode == 0, result.stderr
    assert "--node-rank" in result.stdout
