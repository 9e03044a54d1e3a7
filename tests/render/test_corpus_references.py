"""The walk over Dynamo's corpus: for every DGD in ../shared/dgd-examples that renders, with the
documents written beside it and with both multinode deployers,

* every Secret, ConfigMap and PersistentVolumeClaim its pods reference is rendered or declared
  external on the pod template (``drivetrain.dev/external-refs``);
* every rendered object, those documents included, validates against its schema
  (``tests/schemas.py``: kubernetes-validate for built-in kinds, the upstream CRDs for custom
  ones).

References are found here by a walk of their own (any ``secretKeyRef``, ``secretRef``,
``configMap``, ``persistentVolumeClaim``... at any depth of any pod spec, itself found as any
mapping with ``containers``), not by ``drivetrain.podrefs``, so a field the renderer forgets to
read fails this test.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivetrain.api import InvalidGraph, load_file
from drivetrain.podrefs import EXTERNAL_REFS_ANNOTATION
from drivetrain.render.siblings import render_documents
from tests.paths import SHARED
from tests.schemas import schema_errors

EXAMPLES = sorted(glob.glob(str(SHARED / "dgd-examples" / "*.yaml")))
NAMESPACE = "dynamo"

#: The kinds whose references must be rendered or declared. ``referenced`` also finds
#: ``serviceAccountName``: adding "ServiceAccount" here checks ServiceAccounts the same way.
CHECKED_KINDS = ("Secret", "ConfigMap", "PersistentVolumeClaim")

#: Why a file may not render, each named in its error (docs/rendering.md, "Dynamo's own graphs").
EXPECTED_FAILURES = {
    "YAML does not parse",  # benchmark templates with ${VAR} placeholders
    "GPU memory service (gpuMemoryService) is not supported",
    "engine failover (failover) is not supported",
}
#: A placeholder namespace (``<your-namespace>``) on the documents beside the graph: refused as
#: ``kubectl apply -n`` refuses it; such a file is walked again with ``--graphs-only``.
NAMESPACE_ERROR = "is not the namespace the graph renders into"
GLM5 = "recipes__glm-5-nvfp4__sglang__disagg__deploy.yaml"
#: Kinds with no schema here: NVIDIA's DRA driver CRD (ComputeDomain) is not in ../shared/crds.
NO_SCHEMA_HERE = {("resource.nvidia.com/v1beta1", "ComputeDomain")}

#: Where a pod spec names an object: the key of the mapping that holds its name.
_KIND_BY_KEY = {
    "secretKeyRef": "Secret",
    "secretRef": "Secret",
    "nodePublishSecretRef": "Secret",
    "secret": "Secret",
    "configMapKeyRef": "ConfigMap",
    "configMapRef": "ConfigMap",
    "configMap": "ConfigMap",
    "persistentVolumeClaim": "PersistentVolumeClaim",
}


def referenced(node: Any, found: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """``(kind, name)`` of everything ``node`` (a pod spec) names, at any depth; optional
    references are left out (the pod starts without them)."""
    if isinstance(node, list):
        for item in node:
            referenced(item, found)
    if not isinstance(node, dict):
        return found
    for key, value in node.items():
        if isinstance(value, dict) and key in _KIND_BY_KEY and value.get("optional") is not True:
            name = value.get("secretName") or value.get("claimName") or value.get("name")
            if name:
                found.add((_KIND_BY_KEY[key], name))
        elif key == "imagePullSecrets" and isinstance(value, list):
            found |= {("Secret", item["name"]) for item in value if item.get("name")}
        elif key == "serviceAccountName" and value and value != "default":
            found.add(("ServiceAccount", value))
        referenced(value, found)
    return found


def pod_specs(
    node: Any, ancestors: tuple[tuple[str, dict[str, Any]], ...] = ()
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(pod spec, the annotations its pods get)``: a template's metadata, a Grove clique's."""
    if isinstance(node, list):
        for item in node:
            yield from pod_specs(item, ancestors)
    if not isinstance(node, dict):
        return
    if isinstance(node.get("containers"), list):
        key, parent = ancestors[-1]
        holder = ancestors[-2][1] if key == "podSpec" else parent.get("metadata") or {}
        yield node, holder.get("annotations") or {}
        return
    for key, value in node.items():
        yield from pod_specs(value, (*ancestors, (key, node)))


def unaccounted(objects: list[dict[str, Any]]) -> list[str]:
    """Every reference of a checked kind that is neither rendered nor declared external."""
    rendered = {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o["metadata"].get("namespace") in (NAMESPACE, None)
    }
    missing = []
    for obj in objects:
        for spec, pod_annotations in pod_specs(obj.get("spec")):
            declared = set(pod_annotations.get(EXTERNAL_REFS_ANNOTATION, "").split(","))
            for kind, name in sorted(referenced(spec, set())):
                if kind not in CHECKED_KINDS or (kind, name) in rendered:
                    continue
                if f"{kind.lower()}/{name}" not in declared:
                    missing.append(f"{obj['kind']}/{obj['metadata']['name']}: {kind} {name}")
    return missing


def invalid(objects: list[dict[str, Any]]) -> list[str]:
    out = []
    for obj in objects:
        errors = schema_errors(obj)
        if (obj["apiVersion"], obj["kind"]) in NO_SCHEMA_HERE:
            assert errors == [f"no schema for {(obj['apiVersion'], obj['kind'])}"]
            continue
        out += [f"{obj['kind']}/{obj['metadata']['name']}: {e}" for e in errors]
    return out


class Rendered:
    """One file of the corpus rendered with the documents beside its graphs."""

    def __init__(self, path: str, multinode: str) -> None:
        self.name = Path(path).name
        self.objects: list[dict[str, Any]] = []
        self.documents_beside = 0
        #: why the file could not be rendered whole (None when it could)
        self.failure: str | None = None
        try:
            loaded = load_file(path)
            self.objects = render_documents(loaded, namespace=NAMESPACE, multinode=multinode)
            self.documents_beside = len(loaded.siblings)
        except InvalidGraph as exc:
            self.failure = next((r for r in EXPECTED_FAILURES if r in str(exc)), None)
            if self.failure is None:
                assert NAMESPACE_ERROR in str(exc), f"{self.name}: unexpected failure: {exc}"
                self.failure = NAMESPACE_ERROR
                self.objects = render_documents(
                    load_file(path), namespace=NAMESPACE, multinode=multinode, graphs_only=True
                )

    def declared(self) -> set[str]:
        return {
            token
            for obj in self.objects
            for _, pod_annotations in pod_specs(obj.get("spec"))
            for token in pod_annotations.get(EXTERNAL_REFS_ANNOTATION, "").split(",")
        }

    def references(self) -> int:
        return sum(
            len(referenced(spec, set()))
            for obj in self.objects
            for spec, _ in pod_specs(obj.get("spec"))
        )


@pytest.mark.skipif(not EXAMPLES, reason="../shared/dgd-examples is not beside this clone")
@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_every_reference_is_rendered_or_declared_and_every_object_is_valid(multinode: str) -> None:
    corpus = [Rendered(path, multinode) for path in EXAMPLES]
    problems = []
    for file in corpus:
        problems += [
            f"{file.name}: {p}: neither rendered nor declared" for p in unaccounted(file.objects)
        ]
        problems += [f"{file.name}: {p}" for p in invalid(file.objects)]
    assert problems == []
    # What the walk covered, so that it cannot pass by finding nothing.
    failed = {file.name: file.failure for file in corpus if file.failure}
    assert failed[GLM5] == NAMESPACE_ERROR and len(failed) == 4, failed  # + 3 not YAML
    token_users = [
        file.name
        for file in corpus
        if file.objects and "hf-token-secret" in (SHARED / "dgd-examples" / file.name).read_text()
    ]
    assert [f.name for f in corpus if "secret/hf-token-secret" in f.declared()] == token_users
    assert len(token_users) == 81  # agg_gms and agg_failover render since GMS and failover do
    assert sum(file.references() for file in corpus) > 300
    assert sum(file.documents_beside for file in corpus) == 33
