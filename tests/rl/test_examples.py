"""Every RLRun in examples/rl: ``drivetrain render`` of it is valid (the Ray objects against
KubeRay's upstream CRDs, the graphs against drivetrain's generated CRD, their children against
Kubernetes 1.30) and ``drivetrain verify`` passes on the graphs' rendered children."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from drivetrain.api.crd import graph_crd
from tests.cli.helpers import run_cli
from tests.paths import REPO
from tests.schemas import schema_errors

RUNS = sorted(
    p for p in (REPO / "examples" / "rl").glob("*.yaml") if "kind: RLRun" in p.read_text()
)


def test_there_is_an_example_run() -> None:
    assert RUNS, "examples/rl holds at least one RLRun"


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.name)
def test_the_rendered_example_is_valid_against_the_upstream_crds(path: Path) -> None:
    result = run_cli("render", "-f", str(path), "-n", "ml", "--render-children")
    assert result.returncode == 0, result.stderr
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    kinds = {o["kind"] for o in objects}
    assert {"GraphDeployment", "RayJob"} <= kinds or {"GraphDeployment", "RayCluster"} <= kinds
    graph_schema = graph_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for obj in objects:
        if obj["kind"] == "GraphDeployment":
            jsonschema.Draft7Validator(graph_schema).validate(obj)
        else:
            assert schema_errors(obj) == [], (obj["kind"], obj["metadata"]["name"])


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.name)
def test_verify_passes_on_the_graphs_children(path: Path) -> None:
    result = run_cli("verify", "-f", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify: " in result.stdout and ", ok" in result.stdout
