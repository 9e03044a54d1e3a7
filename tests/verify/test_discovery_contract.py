"""verify learns the cluster contract of discovery: per pod, its discovery mode and whether the
objects that mode needs are in the manifests; what is missing is a warning (--strict: an error).

The Dynamo cases start from ``dynamo_children`` (what Dynamo's operator creates, proven
sufficient with Dynamo's own runtime in tests/dynamo_runtime/) and take one piece away at a time,
the same pieces whose absence that proof shows to break discovery.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drivetrain.api import load_text
from drivetrain.render import render_graph
from drivetrain.verify import verify_manifests
from tests.cli.helpers import run_cli
from tests.dynamo_runtime.children import (
    DISCOVERY_BACKEND_LABEL,
    DISCOVERY_ENABLED_LABEL,
    OPERATOR_DISCOVERY_RULES,
    Component,
    dynamo_children,
)

NS = "ml"
COMPONENTS = (Component("Frontend", "frontend"), Component("decode", "worker"))


def children(**kwargs: Any) -> list[dict[str, Any]]:
    return dynamo_children("g", NS, COMPONENTS, **kwargs)


def edit(manifests: list[dict[str, Any]], kind: str, change: Any) -> list[dict[str, Any]]:
    for obj in manifests:
        if obj["kind"] == kind:
            change(obj)
    return manifests


def warnings(manifests: list[dict[str, Any]]) -> list[str]:
    return verify_manifests(manifests).contract_warnings


def test_dynamos_own_children_meet_the_contract_in_both_modes() -> None:
    for mode in ("pod", "container"):
        report = verify_manifests(children(mode=mode))
        assert {d.mode for d in report.discovery} == {
            f"Dynamo kubernetes, {mode} mode (frontend)",
            f"Dynamo kubernetes, {mode} mode (worker)",
        }
        assert report.contract_warnings == []


def test_a_pod_running_as_default_is_named() -> None:
    manifests = edit(
        children(), "Deployment", lambda d: d["spec"]["template"]["spec"].pop("serviceAccountName")
    )
    found = warnings(manifests)
    assert any("runs as the namespace's default ServiceAccount" in w for w in found)
    assert any("no RoleBinding in the manifests grants ServiceAccount default" in w for w in found)


def test_a_missing_rule_is_named_exactly() -> None:
    rules = [
        {**r, "verbs": [v for v in r["verbs"] if v != "patch"]}
        if "dynamoworkermetadatas" in r["resources"]
        else r
        for r in OPERATOR_DISCOVERY_RULES
    ]
    found = warnings(children(rules=rules))
    (lacking,) = [w for w in found if "no RoleBinding" in w]
    assert lacking.endswith("patch dynamoworkermetadatas.nvidia.com")
    assert "(Dynamo kubernetes, pod mode (worker))" in lacking  # the frontend does not patch


def test_a_worker_service_without_the_enabled_label_is_named() -> None:
    """The silent failure of docs/dynamo-on-kubernetes.md: no 403, the worker is never listed."""
    manifests = edit(
        children(), "Service", lambda s: s["metadata"]["labels"].pop(DISCOVERY_ENABLED_LABEL)
    )
    (found,) = warnings(manifests)
    assert "Deployment/g-decode" in found
    assert (
        f"no Service in the manifests selects the pod with label {DISCOVERY_ENABLED_LABEL}" in found
    )


def test_container_mode_needs_the_label_on_the_pod() -> None:
    manifests = edit(
        children(mode="container"),
        "Deployment",
        lambda d: d["spec"]["template"]["metadata"]["labels"].pop(DISCOVERY_ENABLED_LABEL),
    )
    found = warnings(manifests)
    assert len(found) == 2 and all("lacks the label" in w for w in found)


def test_no_account_no_downward_env_no_token() -> None:
    def strip(d: dict[str, Any]) -> None:
        spec = d["spec"]["template"]["spec"]
        spec["automountServiceAccountToken"] = False
        main = spec["containers"][0]
        main["env"] = [e for e in main["env"] if e["name"] != "POD_UID"]

    manifests = [o for o in edit(children(), "Deployment", strip) if o["kind"] != "ServiceAccount"]
    found = "\n".join(warnings(manifests))
    assert "ServiceAccount g-k8s-service-discovery is not in the manifests" in found
    assert "automountServiceAccountToken is false" in found
    assert "no downward-API POD_UID (metadata.uid)" in found


def test_pod_labels_are_not_needed_in_pod_mode() -> None:
    """As the proof found: in pod mode only the Service's label is read."""
    manifests = children()
    for label in (DISCOVERY_BACKEND_LABEL, DISCOVERY_ENABLED_LABEL):
        edit(
            manifests,
            "Deployment",
            lambda d, k=label: d["spec"]["template"]["metadata"]["labels"].pop(k),
        )
    assert warnings(manifests) == []


DRIVETRAIN = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: chat}
spec:
  services:
    Frontend: {componentType: frontend}
    decode:
      componentType: worker
      extraPodSpec:
        mainContainer: {command: [drivetrain, worker], args: [--engine, mocker, --model-name, q]}
"""


def render(text: str) -> list[dict[str, Any]]:
    (graph,) = load_text(text).graphs
    return render_graph(graph, namespace=NS)


def test_drivetrains_render_meets_the_contract_and_without_its_rbac_does_not() -> None:
    manifests = render(DRIVETRAIN)
    report = verify_manifests(manifests)
    assert [d.mode for d in report.discovery] == [
        "kubernetes:// (frontend)",
        "kubernetes:// (worker)",
    ]
    assert report.contract_warnings == []
    without = [o for o in manifests if o["kind"] not in ("Role", "RoleBinding")]
    found = warnings(without)
    assert any(w.endswith("get workerendpoints.drivetrain.dev, create workerendpoints.drivetrain.dev, "
                          "patch workerendpoints.drivetrain.dev, delete workerendpoints.drivetrain.dev")
               for w in found)  # fmt: skip


def test_an_explicit_store_has_no_contract() -> None:
    text = DRIVETRAIN.replace(
        "spec:\n  services:", "spec:\n  discovery: etcd://etcd:2379\n  services:"
    )
    assert verify_manifests(render(text)).discovery == []


def test_the_cli_warns_and_strict_makes_it_an_error(tmp_path: Path) -> None:
    manifests = [o for o in render(DRIVETRAIN) if o["kind"] != "RoleBinding"]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    plain = run_cli("verify", "-f", str(path))
    assert plain.returncode == 0, plain.stderr
    assert "warning: Deployment/chat-decode pod" in plain.stderr
    assert "discovery per pod" in plain.stdout
    strict = run_cli("verify", "-f", str(path), "--strict")
    assert strict.returncode == 1
    assert "--strict makes it an error" in strict.stderr


@pytest.mark.parametrize("form", ["argv", "env"])
def test_drivetrain_discovery_is_read_from_the_flag_or_the_env(form: str) -> None:
    manifests = render(DRIVETRAIN)
    for obj in manifests:
        if obj["kind"] == "Deployment":
            (main,) = obj["spec"]["template"]["spec"]["containers"]
            if form == "argv":
                main["args"] = [*main.get("args", []), "--discovery", "etcd://e:2379"]
            else:
                main["env"] = [e for e in main["env"] if e["name"] != "DRIVETRAIN_DISCOVERY"]
    report = verify_manifests(manifests)
    # An empty DRIVETRAIN_DISCOVERY is kubernetes:// in a pod; a flag naming etcd is not.
    assert len(report.discovery) == (0 if form == "argv" else 2)
