"""What a new user hit first: a schema error hiding the others, regexes eaten by rich, no
stdin, silent graphs without a frontend, unchecked PodSpec types, ``globalDynamoNamespace``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drivetrain.api.loader import load_text
from drivetrain.render import render_graph
from tests.cli.helpers import run_cli

GRAPH = """\
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: demo}
spec:
  services:
    Frontend: {componentType: frontend}
    decode:
      componentType: worker
      extraPodSpec:
        mainContainer:
          args: [worker, --engine, echo, --model-name, m]
"""


def test_a_schema_error_does_not_hide_the_documents_other_errors() -> None:
    bad = GRAPH.replace(
        "Frontend: {componentType: frontend}", "Frontend: {componentType: frontend, replicas: x}"
    )
    bad += "    planner:\n      componentType: planner\n      sharedMemory: {disabled: true, size: 1Gi}\n"
    bad += "      extraPodSpec: {terminationGracePeriodSeconds: soon}\n"
    result = run_cli("validate", "-f", "-", stdin=bad)
    assert result.returncode == 1
    assert "spec.services.Frontend.replicas: must be a valid integer" in result.stderr
    # the rules and the PodSpec types of the other service are still checked
    assert "spec.services.planner.sharedMemory.size: must not be set when disabled" in result.stderr
    assert (
        "spec.services.planner.extraPodSpec.terminationGracePeriodSeconds: must be an integer (got 'soon')"
        in result.stderr
    )
    assert "3 errors" in result.stderr


def test_a_schema_error_and_an_engine_error_of_one_graph_come_together() -> None:
    bad = GRAPH.replace(
        "Frontend: {componentType: frontend}", "Frontend: {componentType: frontend, replicas: x}"
    )
    bad = bad.replace(
        "args: [worker, --engine, echo, --model-name, m]",
        "command: [sh, -c, 'vllm serve m; python3 -m sglang.launch_server']",
    )
    result = run_cli("validate", "-f", "-", stdin=bad)
    assert result.returncode == 1
    assert "spec.services.Frontend.replicas" in result.stderr
    assert "more than one engine" in result.stderr


def test_regexes_in_messages_survive_rich() -> None:
    bad = GRAPH.replace("name: demo", "name: Demo_X")
    result = run_cli("validate", "-f", "-", stdin=bad)
    assert result.returncode == 1
    assert "'^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'" in result.stderr


def test_dash_reads_stdin_and_messages_name_it() -> None:
    result = run_cli("render", "-f", "-", stdin=GRAPH)
    assert result.returncode == 0, result.stderr
    assert [d["kind"] for d in yaml.safe_load_all(result.stdout)] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
        "Deployment",
        "Service",
    ]
    bad = run_cli(
        "validate",
        "-f",
        "-",
        stdin=GRAPH.replace("replicas", "x").replace("componentType: worker", "componentType: 3"),
    )
    assert "<stdin> (document 1): spec.services.decode.componentType" in bad.stderr


NO_FRONTEND = GRAPH.replace("    Frontend: {componentType: frontend}\n", "")
MULTINODE_FRONTEND = GRAPH.replace(
    "Frontend: {componentType: frontend}",
    "Frontend: {componentType: frontend, multinode: {nodeCount: 2}}",
)


@pytest.mark.parametrize(
    ("graph", "path", "words"),
    [
        (NO_FRONTEND, "spec.services", "no frontend"),
        (MULTINODE_FRONTEND, "spec.services.Frontend.multinode", "a multinode frontend"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "render", "verify"])
def test_warnings_are_warnings_and_strict_makes_them_errors(
    graph: str, path: str, words: str, command: str
) -> None:
    loose = run_cli(command, "-f", "-", stdin=graph)
    assert loose.returncode == 0, loose.stderr
    assert f"warning: <stdin> (document 1): {path}: {words}" in loose.stderr
    strict = run_cli(command, "-f", "-", "--strict", stdin=graph)
    assert strict.returncode == 1
    assert f"error: <stdin> (document 1): {path}: {words}" in strict.stderr
    assert strict.stdout == ""


def test_a_graph_with_a_frontend_and_workers_has_no_warning() -> None:
    assert load_text(GRAPH).warnings == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "terminationGracePeriodSeconds",
            "soon",
            "terminationGracePeriodSeconds: must be an integer (got 'soon')",
        ),
        ("tolerations", "[{effect: 1}]", "tolerations[0].effect: must be a string (got 1)"),
        ("nodeSelector", "{gpu: true}", "nodeSelector.gpu: must be a string (got True)"),
        ("hostNetwork", "yes please", "hostNetwork: must be true or false (got 'yes please')"),
        ("volumes", "[{emptyDir: {}}]", "volumes[0].name: required field is missing"),
        (
            "tolerations",
            "[{efect: NoSchedule}]",
            "tolerations[0].efect: unknown field (not a Toleration field)",
        ),
    ],
)
def test_extra_pod_spec_types_are_checked_with_field_paths(
    field: str, value: str, message: str
) -> None:
    bad = GRAPH.replace("      extraPodSpec:\n", f"      extraPodSpec:\n        {field}: {value}\n")
    result = run_cli("validate", "-f", "-", stdin=bad)
    assert result.returncode == 1
    assert f"spec.services.decode.extraPodSpec.{message}" in result.stderr


def test_main_container_types_are_checked() -> None:
    bad = GRAPH.replace(
        "        mainContainer:\n",
        "        mainContainer:\n          ports: [{containerPort: http}]\n",
    )
    result = run_cli("validate", "-f", "-", stdin=bad)
    assert (
        "spec.services.decode.extraPodSpec.mainContainer.ports[0].containerPort: must be an integer"
        in result.stderr
    )


@pytest.mark.parametrize(("profile", "expected"), [("drivetrain", "global"), ("dynamo", "dynamo")])
def test_global_dynamo_namespace_follows_the_profile(profile: str, expected: str) -> None:
    text = (
        GRAPH.replace("spec:\n", f"spec:\n  profile: {profile}\n")
        .replace("    Frontend: {componentType: frontend}\n", "")
        .replace(
            "componentType: worker", "componentType: worker\n      globalDynamoNamespace: true"
        )
        .replace("mainContainer:\n", "mainContainer:\n          image: x:1\n")
    )
    graph = load_text(text).graphs[0]
    deployment = next(o for o in render_graph(graph) if o["metadata"]["name"] == "demo-decode")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][-1]["env"]
    }
    name = "DRIVETRAIN_NAMESPACE" if profile == "drivetrain" else "DYN_NAMESPACE"
    assert env[name] == expected


def test_warnings_reach_stderr_only(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(NO_FRONTEND)
    result = run_cli("render", "-f", str(path))
    assert result.returncode == 0
    assert "warning" not in result.stdout
    assert f"warning: {path} (document 1): spec.services: no frontend" in result.stderr
