"""Generate the GraphDeployment CustomResourceDefinition from the pydantic models.

Kubernetes wants a *structural* schema: no ``$ref``, no ``anyOf`` for nullability, and
free-form parts marked ``x-kubernetes-preserve-unknown-fields``.  This module converts
pydantic's JSON schema into that form, so the CRD can never drift from the models.
"""

from __future__ import annotations

from typing import Any

from drivetrain.api.kinds import GRAPH
from drivetrain.api.models import GROUP, KIND, VERSION, GraphSpec

PLURAL = GRAPH.plural
SHORT_NAMES = ["gd"]
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


def spec_schema() -> dict[str, Any]:
    schema = GraphSpec.model_json_schema(mode="validation")
    defs = schema.pop("$defs", {})
    return _convert(schema, defs)


def graph_crd() -> dict[str, Any]:
    """The CustomResourceDefinition for ``GraphDeployment``."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": SHORT_NAMES,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {"name": "State", "type": "string", "jsonPath": ".status.state"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A graph of inference and training services.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
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


def graph_crd_yaml() -> str:
    import yaml

    header = "# Generated by `drivetrain crd` from the pydantic models; do not edit.\n"
    return header + yaml.safe_dump(graph_crd(), sort_keys=False, width=100)
