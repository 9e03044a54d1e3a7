"""`drivetrain up` refuses bad input with exit 1 and a one-line error before starting anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli.helpers import run_cli


def up(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("up", *args)


def test_missing_graph_file_exits_1_naming_the_file(tmp_path: Path) -> None:
    result = up("-f", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert f"{tmp_path / 'nope.yaml'}: file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_graph_exits_1_with_the_field_path(tmp_path: Path) -> None:
    graph = tmp_path / "bad.yaml"
    graph.write_text(
        "apiVersion: drivetrain.dev/v1alpha1\nkind: GraphDeployment\nmetadata: {name: bad}\n"
        "spec:\n  services:\n    Frontend: {componentType: frontend, replicas: -1}\n"
    )
    result = up("-f", str(graph))
    assert result.returncode == 1
    assert "spec.services.Frontend.replicas" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_graph_needing_another_image_exits_1_before_starting(tmp_path: Path) -> None:
    graph = tmp_path / "vllm.yaml"
    graph.write_text(
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: v}\n"
        "spec:\n  services:\n    Frontend: {componentType: frontend}\n"
    )
    result = up("-f", str(graph), "--port", "1")
    assert result.returncode == 1
    assert "service Frontend: command `python3 -m dynamo.frontend` is not a drivetrain command" in (
        result.stderr
    )
    assert "up: discovery" not in result.stdout  # nothing was started
    assert "Traceback" not in result.stderr


def test_no_graph_file_is_a_usage_error() -> None:
    result = up()
    assert result.returncode == 2
    assert "give one graph file" in result.stderr


SECRET_GRAPH = """\
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: sec}
spec:
  services:
    Frontend: {componentType: frontend}
    Worker:
      componentType: worker
      envFromSecret: hf-token
      envs: [{name: hf_token, valueFrom: {secretKeyRef: {name: hf, key: token}}}]
      extraPodSpec:
        mainContainer:
          args: [worker, --engine, mocker, --model-name, tiny, --model-path, models/tiny]
"""


def test_env_from_a_secret_exits_1_naming_the_field_before_starting(tmp_path: Path) -> None:
    graph = tmp_path / "sec.yaml"
    graph.write_text(SECRET_GRAPH)
    result = up("-f", str(graph), "--port", "1")
    assert result.returncode == 1
    assert (
        f"{graph}: service Worker: spec.services.Worker.envFromSecret (Secret hf-token) is read "
        "from the cluster; `drivetrain up` cannot read it: give its variables with --env-file FILE"
    ) in " ".join(result.stderr.split())
    # Printed as written: a lowercase name in brackets is not taken for rich markup.
    assert "spec.services.Worker.envs[hf_token].valueFrom.secretKeyRef" in result.stderr
    assert "up: discovery" not in result.stdout
    assert "Traceback" not in result.stderr


def test_a_bad_env_file_exits_1_naming_its_line(tmp_path: Path) -> None:
    graph = tmp_path / "sec.yaml"
    graph.write_text(SECRET_GRAPH)
    env_file = tmp_path / "secrets.env"
    env_file.write_text("# tokens\nHF_TOKEN=hf_x\nnot a pair\n")
    result = up("-f", str(graph), "--env-file", str(env_file), "--port", "1")
    assert result.returncode == 1
    assert f"{env_file}:3: expected NAME=VALUE" in result.stderr
    assert "Traceback" not in result.stderr
    missing = up("-f", str(graph), "--env-file", str(tmp_path / "nope.env"))
    assert missing.returncode == 1
    assert f"{tmp_path / 'nope.env'}: env file not found" in missing.stderr
