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
from tests.paths import REPO, shared

DEPLOY = REPO / "deploy"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def _json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    """The RFC 6902 ``add`` ops deploy/'s patches use (``-`` appends to a list)."""
    for op in ops:
        assert op["op"] == "add", op
        *parents, last = op["path"].lstrip("/").split("/")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), op["value"])
        else:
            node[last] = op["value"]


def kustomize(directory: Path, components: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The objects of a kustomization: resources (files and directories), components (their
    resources and patches), JSON patches by target kind and name, and ``namespace``.

    ``components`` are added as ``kustomize edit add component`` would. Only the kustomize
    features deploy/ uses; kept in step with ``kubectl kustomize`` by
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
    patches = [(directory, p) for p in spec.get("patches", [])]
    for name in [*spec.get("components", []), *components]:
        component = (directory / name).resolve()
        inner = yaml.safe_load((component / "kustomization.yaml").read_text())
        assert inner["kind"] == "Component"
        for entry in inner.get("resources", []):
            objects += [d for d in yaml.safe_load_all((component / entry).read_text()) if d]
        patches += [(component, p) for p in inner.get("patches", [])]
    for base, patch in patches:
        target = patch["target"]
        ops = yaml.safe_load((base / patch["path"]).read_text())
        for obj in objects:
            if (obj["kind"], obj["metadata"]["name"]) == (target["kind"], target["name"]):
                _json_patch(obj, ops)
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
#: Each variant with the claim-dynamo component enabled (deploy/claim-dynamo/).
CLAIM_DYNAMO = {"cluster-wide": DEPLOY, "namespaced": DEPLOY / "namespaced"}
WITH_COMPONENT = {
    **{name: (path, ()) for name, path in VARIANTS.items()},
    **{f"{name}+claim-dynamo": (path, ("claim-dynamo",)) for name, path in CLAIM_DYNAMO.items()},
}


def build(variant: str) -> list[dict[str, Any]]:
    path, components = WITH_COMPONENT[variant]
    return kustomize(path, components)


@pytest.mark.parametrize("variant", WITH_COMPONENT)
def test_every_object_is_valid_kubernetes_1_30_strict(variant: str) -> None:
    for obj in build(variant):
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


@pytest.mark.parametrize("variant", WITH_COMPONENT)
def test_no_wildcards_and_secrets_only_the_mpi_key_by_name_or_a_create(variant: str) -> None:
    for obj in build(variant):
        for rule in obj.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            if "secrets" in rule["resources"]:
                # Reading one Secret by name and creating it: never listing, changing or
                # deleting anyone's Secrets (kube/mpi_secret.py).
                assert rule["resources"] == ["secrets"]
                named = rule.get("resourceNames") == ["mpi-run-ssh-secret"]
                assert rule["verbs"] == (["get"] if named else ["create"]), rule


@pytest.mark.parametrize("variant", ["cluster-wide+claim-dynamo", "namespaced+claim-dynamo"])
def test_the_claim_dynamo_component_starts_the_operator_claiming_dgds(variant: str) -> None:
    objects = build(variant)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][-1] == "--claim-dynamo"
    role = "ClusterRole" if variant.startswith("cluster") else "Role"
    granted = [r for o in objects if o["kind"] == role for r in o["rules"]]
    assert {"get", "list", "watch"} <= allowed(granted, "nvidia.com", "dynamographdeployments")
    assert "patch" in allowed(granted, "nvidia.com", "dynamographdeployments/status")


def test_the_claim_dynamo_crds_are_dynamos_byte_for_byte() -> None:
    """The overlay installs Dynamo's own CRD files unchanged (at least the one the runtime in
    the pods writes: DynamoWorkerMetadata)."""
    copies = sorted((DEPLOY / "claim-dynamo" / "crds").glob("*.yaml"))
    assert "nvidia.com_dynamoworkermetadatas.yaml" in [c.name for c in copies]
    for copy in copies:
        assert copy.read_bytes() == shared("crds", "dynamo", copy.name).read_bytes(), copy.name
    names = {
        o["metadata"]["name"]
        for o in build("cluster-wide+claim-dynamo")
        if o["kind"] == "CustomResourceDefinition"
    }
    assert "dynamoworkermetadatas.nvidia.com" in names


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


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("variant", WITH_COMPONENT)
def test_the_builder_agrees_with_kubectl_kustomize(variant: str, tmp_path: Path) -> None:
    path, components = WITH_COMPONENT[variant]
    if components:
        # As a user enables it: `kustomize edit add component` in a copy of deploy/.
        shutil.copytree(DEPLOY, tmp_path / "deploy")
        path = tmp_path / "deploy" / path.relative_to(DEPLOY)
        spec = yaml.safe_load((path / "kustomization.yaml").read_text())
        spec["components"] = list(components)
        (path / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    built = [d for d in yaml.safe_load_all(out) if d]
    mine = build(variant)
    key = lambda o: (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))  # noqa: E731
    assert sorted(map(key, built)) == sorted(map(key, mine))
    by_key = {key(o): o for o in built}
    for obj in mine:  # contents too: patches, namespaces of subjects
        assert by_key[key(obj)] == obj, key(obj)
