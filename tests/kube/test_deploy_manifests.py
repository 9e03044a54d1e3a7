"""deploy/: the install manifests are valid Kubernetes 1.30 (strict) and grant what the
operator does, nothing more."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from drivetrain.kube.resources import CHILD_KINDS
from tests.paths import REPO

DEPLOY = REPO / "deploy"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects of a kustomization: resources (files and directories) and ``namespace``.

    Only the kustomize features deploy/ uses; kept in step with ``kubectl kustomize`` by
    ``test_the_builder_agrees_with_kubectl_kustomize`` where kubectl is installed.
    """
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += kustomize(path)
        else:
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    namespace = spec.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
            for subject in obj.get("subjects", []):
                if subject.get("kind") == "ServiceAccount":
                    subject["namespace"] = namespace
    return objects


VARIANTS = {"cluster-wide": DEPLOY, "namespaced": DEPLOY / "namespaced"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_is_valid_kubernetes_1_30_strict(variant: str) -> None:
    for obj in kustomize(VARIANTS[variant]):
        kubernetes_validate.validate(obj, "1.30", strict=True)


def test_the_cluster_wide_variant_installs_the_crd_and_binds_a_cluster_role() -> None:
    kinds = {o["kind"] for o in kustomize(DEPLOY)}
    assert {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "ServiceAccount",
        "Namespace",
    } <= kinds


def test_the_namespaced_variant_uses_a_role_and_watches_only_its_namespace() -> None:
    objects = kustomize(DEPLOY / "namespaced")
    kinds = {o["kind"] for o in objects}
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert {"Role", "RoleBinding"} <= kinds
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--namespace=$(POD_NAMESPACE)" in container["args"]


def rules(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    (role,) = [o for o in objects if o["kind"] == kind]
    return role["rules"]


def allowed(rule_list: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for rule in rule_list:
        if group in rule["apiGroups"] and resource in rule["resources"]:
            verbs |= set(rule["verbs"])
    return verbs


@pytest.mark.parametrize(
    ("variant", "role"), [("cluster-wide", "ClusterRole"), ("namespaced", "Role")]
)
def test_the_role_grants_what_reconcile_does_to_every_child_kind(variant: str, role: str) -> None:
    granted = rules(kustomize(VARIANTS[variant]), role)
    for kind in CHILD_KINDS.values():
        group = kind.resource._api_info.resource.group
        plural = kind.resource._api_info.plural
        needed = {"get", "list", "create", "patch"} | ({"delete"} if kind.prunable else set())
        assert needed <= allowed(granted, group, plural), kind.kind
        if not kind.prunable:
            assert "delete" not in allowed(granted, group, plural), kind.kind
    # Graphs: read and watched; written (created, deleted) only for the RLRuns that own them.
    assert allowed(granted, "drivetrain.dev", "graphdeployments") == {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    }
    assert "patch" in allowed(granted, "drivetrain.dev", "graphdeployments/status")


@pytest.mark.parametrize(
    ("variant", "role"), [("cluster-wide", "ClusterRole"), ("namespaced", "Role")]
)
def test_the_role_grants_what_an_rlrun_needs(variant: str, role: str) -> None:
    granted = rules(kustomize(VARIANTS[variant]), role)
    crud = {"get", "list", "watch", "create", "patch", "delete"}
    assert allowed(granted, "drivetrain.dev", "rlruns") == {"get", "list", "watch"}
    assert allowed(granted, "drivetrain.dev", "rlruns/status") == {"get", "patch", "update"}
    assert allowed(granted, "ray.io", "rayjobs") == crud
    assert allowed(granted, "ray.io", "rayclusters") == crud
    assert allowed(granted, "batch", "jobs") == crud
    assert allowed(granted, "", "pods") == {"get", "list", "watch"}
    assert allowed(granted, "", "services/proxy") == {"get"}


def test_nothing_grants_wildcards_or_secrets() -> None:
    for variant in VARIANTS.values():
        for obj in kustomize(variant):
            for rule in obj.get("rules", []):
                assert "*" not in rule["verbs"] and "*" not in rule["resources"]
                assert "secrets" not in rule["resources"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_builder_agrees_with_kubectl_kustomize(variant: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(VARIANTS[variant])],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    built = [d for d in yaml.safe_load_all(out) if d]
    key = lambda o: (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))  # noqa: E731
    assert sorted(map(key, built)) == sorted(map(key, kustomize(VARIANTS[variant])))
