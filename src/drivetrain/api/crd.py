"""Generate the GraphDeployment and RLRun CustomResourceDefinitions from the pydantic models.

Kubernetes wants a *structural* schema: no ``$ref``, no ``anyOf`` for nullability, and
free-form parts marked ``x-kubernetes-preserve-unknown-fields``.  This module converts
pydantic's JSON schema into that form, so the CRD can never drift from the models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from drivetrain.api.kinds import GRAPH, RLRUN, ResourceType
from drivetrain.api.models import GraphSpec
from drivetrain.api.rlrun import RLRunSpec

SHORT_NAMES = {GRAPH.kind: ["gd"], RLRUN.kind: ["rlrun"]}
DESCRIPTIONS = {
    GRAPH.kind: "A graph of inference and training services.",
    RLRUN.kind: "Inference graphs and the Ray training beside them (docs/rl.md).",
}
COLUMNS = {
    GRAPH.kind: [
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "State", "type": "string", "jsonPath": ".status.state"},
    ],
    RLRUN.kind: [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Ray", "type": "string", "jsonPath": ".status.rayJob.jobDeploymentStatus"},
    ],
}
_DROP = {"title", "default"}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
    return node


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        variants = [_resolve(v, defs) for v in node["anyOf"]]
        non_null = [v for v in variants if v.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(non_null) == 1:
            return _convert({**non_null[0], **rest}, defs)
        return {
            **{k: v for k, v in rest.items() if k not in _DROP},
            "x-kubernetes-preserve-unknown-fields": True,
        }
    if "const" in node:
        node = {**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out["properties"] = {k: _convert(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif value is not False:
                out["additionalProperties"] = _convert(value, defs)
        else:
            out[key] = value
    if "x-kubernetes-int-or-string" in out:
        out.pop("type", None)
    elif "type" not in out and "enum" not in out:
        out["type"] = "object"
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif "enum" in out and "type" not in out:
        out["type"] = "string"
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if (
        out.get("type") == "object"
        and "properties" in out
        and out.get("x-kubernetes-preserve-unknown-fields")
    ):
        # An object with known fields and others allowed (extraPodSpec: a PodSpec).
        pass
    return out


def spec_schema(model: type[BaseModel] = GraphSpec) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    defs = schema.pop("$defs", {})
    return _convert(schema, defs)


def graph_crd() -> dict[str, Any]:
    """The CustomResourceDefinition for ``GraphDeployment``."""
    return _crd(GRAPH, GraphSpec)


def rlrun_crd() -> dict[str, Any]:
    """The CustomResourceDefinition for ``RLRun``."""
    return _crd(RLRUN, RLRunSpec)


def _crd(rt: ResourceType, spec_model: type[BaseModel]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": rt.crd_name},
        "spec": {
            "group": rt.group,
            "names": {
                "kind": rt.kind,
                "listKind": f"{rt.kind}List",
                "plural": rt.plural,
                "singular": rt.kind.lower(),
                "shortNames": SHORT_NAMES[rt.kind],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": rt.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *COLUMNS[rt.kind],
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": DESCRIPTIONS[rt.kind],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(spec_model),
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def crds_yaml() -> str:
    """Both CRDs as one YAML stream: what ``drivetrain crd`` prints and deploy/crd.yaml holds."""
    import yaml

    header = "# Generated by `drivetrain crd` from the pydantic models; do not edit.\n"
    return header + yaml.safe_dump_all(
        [graph_crd(), rlrun_crd()], sort_keys=False, width=100, explicit_start=True
    )
