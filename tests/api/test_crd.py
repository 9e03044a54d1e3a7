"""The CRD is generated from the models, committed under deploy/, and accepts real graphs."""

from __future__ import annotations

import glob
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from drivetrain.api import load_text
from drivetrain.api.crd import crds_yaml, graph_crd, rlrun_crd
from drivetrain.api.validate import prune_nulls
from tests.paths import REPO, shared


def test_the_committed_crd_equals_the_generated_one() -> None:
    committed = (REPO / "deploy" / "crd.yaml").read_text()
    assert committed == crds_yaml(), "run `drivetrain crd > deploy/crd.yaml`"


def test_the_crd_is_a_valid_custom_resource_definition() -> None:
    kubernetes_validate.validate(graph_crd(), "1.30", strict=True)


def test_the_crd_names_the_kind_short_name_and_status_subresource() -> None:
    spec = graph_crd()["spec"]
    assert spec["group"] == "drivetrain.dev"
    assert spec["names"]["kind"] == "GraphDeployment"
    assert spec["names"]["shortNames"] == ["gd"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}


def _no_refs(node: object) -> bool:
    if isinstance(node, dict):
        own = "$ref" not in node and "anyOf" not in node
        return own and all(_no_refs(v) for v in node.values())
    if isinstance(node, list):
        return all(_no_refs(v) for v in node)
    return True


def test_the_schema_is_structural() -> None:
    schema = graph_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _no_refs(schema)


def test_the_crd_schema_accepts_every_example_graph_spec_that_loads() -> None:
    schema = graph_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    validator = jsonschema.Draft7Validator(schema)
    checked = 0
    for path in sorted(glob.glob(str(shared("dgd-examples") / "*.yaml"))):
        try:
            docs = list(yaml.safe_load_all(Path(path).read_text()))
        except yaml.YAMLError:
            continue
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "DynamoGraphDeployment":
                continue
            try:
                load_text(yaml.safe_dump(doc))
            except Exception:
                continue
            spec = yaml.safe_load(yaml.safe_dump(doc.get("spec") or {}))
            errors = [e.message for e in validator.iter_errors(prune_nulls(spec))]
            assert not errors, f"{path}: {errors[:3]}"
            checked += 1
    assert checked > 80


def test_the_rlrun_crd_is_valid_and_accepts_the_example_run() -> None:
    crd = rlrun_crd()
    kubernetes_validate.validate(crd, "1.30", strict=True)
    spec = crd["spec"]
    assert (spec["names"]["kind"], spec["names"]["shortNames"]) == ("RLRun", ["rlrun"])
    schema = spec["versions"][0]["schema"]["openAPIV3Schema"]
    assert _no_refs(schema)
    from drivetrain.api.rlrun_loader import load_runs

    (run,) = load_runs(REPO / "examples" / "rl" / "run.yaml").runs
    jsonschema.Draft7Validator(schema["properties"]["spec"]).validate(run.applied["spec"])
