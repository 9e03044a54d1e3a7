"""Schema checks for rendered objects.

Built-in kinds: ``kubernetes-validate`` strict against Kubernetes 1.30.  Custom resources:
jsonschema (Draft 7) over the CRD's ``openAPIV3Schema`` from ``../shared/crds``, made strict
(unknown fields rejected) the way the API server's strict field validation would.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml

from tests.paths import shared

K8S_VERSION = "1.30"
#: Pods that claim DRA devices in the flat form (``resourceClaims[].resourceClaimTemplateName``)
#: need Kubernetes 1.31 or later; 1.30's form (``source:``) was removed then, so no one form
#: is valid for both.  Such user-written pod specs are checked against this version instead.
DRA_K8S_VERSION = "1.32"
#: API versions that Kubernetes 1.30 does not serve: their objects (written by users beside a
#: graph, such as a ``resource.k8s.io/v1`` ResourceClaimTemplate) are checked against the first
#: release that does.
API_VERSION_K8S = {"resource.k8s.io/v1": "1.34"}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# kubernetes-validate parses its schema files (the definitions alone are megabytes of JSON) on
# every call; they never change, so each is parsed once. Nothing it builds from them mutates
# them. This makes the corpus walks several times faster.
kubernetes_validate.utils.schema_contents = functools.cache(
    kubernetes_validate.utils.schema_contents
)


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("nullable"):
            t = out.get("type")
            if isinstance(t, str):
                out["type"] = [t, "null"]
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
            and not out.get("x-kubernetes-embedded-resource")
        ):
            out["additionalProperties"] = False
        if "required" in out and "properties" in out:
            # The API server defaults before it validates: a defaulted field is never missing.
            out["required"] = [
                k for k in out["required"] if "default" not in out["properties"].get(k, {})
            ]
        fmt = out.get("format")
        if fmt == "int32":
            out.setdefault("minimum", -(2**31))
            out.setdefault("maximum", 2**31 - 1)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) → validator, for every CRD under ../shared/crds."""
    validators = {}
    for path in sorted(Path(shared("crds")).rglob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=_Loader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group = doc["spec"]["group"]
            kind = doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                props = schema.setdefault("properties", {})
                for open_key in ("metadata", "apiVersion", "kind"):
                    props[open_key] = {}
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(
                    _strict(schema)
                )
    return validators


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Every schema problem of one rendered object (empty when valid)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    validators = crd_validators()
    if key in validators:
        return [
            f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in validators[key].iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, k8s_version_for(obj), strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key}"]
    return []


def _uses_flat_resource_claims(node: Any) -> bool:
    if isinstance(node, dict):
        claims = node.get("resourceClaims")
        if isinstance(claims, list) and any(
            isinstance(c, dict) and ("resourceClaimTemplateName" in c or "resourceClaimName" in c)
            for c in claims
        ):
            return True
        return any(_uses_flat_resource_claims(v) for v in node.values())
    if isinstance(node, list):
        return any(_uses_flat_resource_claims(v) for v in node)
    return False


def k8s_version_for(obj: dict[str, Any]) -> str:
    """1.30, or the first version that serves the object's API version or has the fields the
    user's pod spec relies on."""
    if obj.get("apiVersion") in API_VERSION_K8S:
        return API_VERSION_K8S[obj["apiVersion"]]
    return DRA_K8S_VERSION if _uses_flat_resource_claims(obj) else K8S_VERSION
