#!/usr/bin/env python3
"""Regenerate src/drivetrain/api/schemas/raycluster.json from KubeRay's RayCluster CRD.

The shipped file is the ``ray.io/v1`` RayCluster ``.spec`` schema of the CRD in
``../shared/crds/kuberay`` (KubeRay at the commit its SOURCE.md names), in the dialect
``drivetrain.api.schemawalk`` reads:

* descriptions and CEL rules (``x-kubernetes-validations``) dropped (the walker does not run
  CEL; the API server still does);
* an object with known fields and no ``additionalProperties`` gets ``additionalProperties:
  false``, as the API server's strict field validation refuses unknown fields;
* ``x-kubernetes-int-or-string`` becomes ``oneOf`` integer | string;
* a required field with a ``default`` is not required of the user (the API server defaults it
  before it validates), and defaults are then dropped;
* a large subtree that appears more than once (the head and worker pod templates) is stored
  once under ``definitions`` and referenced (``$ref``), which keeps the file near 100 kB.

tests/api/test_kuberay_schema.py checks that the committed file equals this script's output and
that the walker decides as jsonschema does over the CRD itself.

Usage: .venv/bin/python scripts/trim-kuberay-schema.py > src/drivetrain/api/schemas/raycluster.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

CRD = Path(__file__).resolve().parent.parent.parent / "shared" / "crds" / "kuberay"
ROOT = "RayClusterSpec"
#: Subtrees at least this large (JSON characters) that occur twice are stored once.
SHARED_SIZE = 2000
_DROP = {"description", "x-kubernetes-validations", "x-kubernetes-list-type"}
_DROP |= {"x-kubernetes-list-map-keys", "x-kubernetes-map-type", "default"}


def source_commit() -> str:
    for line in (CRD / "SOURCE.md").read_text().splitlines():
        if line.startswith("| kuberay/"):
            return line.rstrip(" |").rsplit("|", 1)[-1].strip()
    raise SystemExit("no kuberay line in SOURCE.md")


def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load((CRD / "ray.io_rayclusters.yaml").read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return dict(v1["schema"]["openAPIV3Schema"]["properties"]["spec"])


def _dialect(node: Any) -> Any:
    if isinstance(node, list):
        return [_dialect(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _dialect(v) for k, v in node.items() if k not in _DROP}
    defaulted = {k for k, v in (node.get("properties") or {}).items() if "default" in v}
    if "required" in out:
        out["required"] = [k for k in out["required"] if k not in defaulted]
        if not out["required"]:
            del out["required"]
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("anyOf", None)
        out.pop("type", None)
        out["oneOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    out.pop("x-kubernetes-embedded-resource", None)
    if out.get("type") == "object" and "additionalProperties" not in out and not preserve:
        if "properties" in out:
            out["additionalProperties"] = False
    return out


def _key(node: Any) -> str:
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def _children(node: dict[str, Any], path: str) -> list[tuple[str, str, Any, str]]:
    """(keyword, key, subschema, path) of every subschema directly under ``node``."""
    out = []
    for name, sub in (node.get("properties") or {}).items():
        out.append(("properties", name, sub, f"{path}.{name}"))
    for keyword in ("items", "additionalProperties"):
        if isinstance(node.get(keyword), dict):
            out.append((keyword, "", node[keyword], f"{path}.{keyword}"))
    for i, sub in enumerate(node.get("oneOf") or []):
        out.append(("oneOf", str(i), sub, f"{path}.oneOf{i}"))
    return out


def _factor(root: dict[str, Any]) -> dict[str, Any]:
    """Store repeated large subschemas once, named after the first path they occur at."""
    counts: dict[str, int] = {}
    names: dict[str, str] = {}

    def count(node: dict[str, Any], path: str) -> None:
        key = _key(node)
        if len(key) >= SHARED_SIZE:
            counts[key] = counts.get(key, 0) + 1
            names.setdefault(key, path)
        for _, _, sub, sub_path in _children(node, path):
            count(sub, sub_path)

    count(root, ROOT)
    shared = {k for k, n in counts.items() if n > 1}
    definitions: dict[str, Any] = {}

    def replace(node: dict[str, Any], path: str, top: bool = False) -> dict[str, Any]:
        key = _key(node)
        if key in shared and not top:
            name = names[key]
            if name not in definitions:
                definitions[name] = replace(node, name, top=True)
            return {"$ref": f"#/$defs/{name}"}
        out = dict(node)
        for keyword, sub_key, sub, sub_path in _children(node, path):
            new = replace(sub, sub_path)
            if keyword == "properties":
                out["properties"] = {**out["properties"], sub_key: new}
            elif keyword == "oneOf":
                out["oneOf"] = [
                    *out["oneOf"][: int(sub_key)],
                    new,
                    *out["oneOf"][int(sub_key) + 1 :],
                ]
            else:
                out[keyword] = new
        return out

    definitions[ROOT] = replace(root, ROOT, top=True)
    return definitions


def trimmed() -> dict[str, Any]:
    definitions = _factor(_dialect(spec_schema()))
    digest = hashlib.sha256(_key(definitions).encode()).hexdigest()[:12]
    return {
        "source": f"ray-project/kuberay@{source_commit()} ray-operator/config/crd/bases/"
        "ray.io_rayclusters.yaml (v1, .spec)",
        "digest": digest,
        "root": ROOT,
        "definitions": dict(sorted(definitions.items())),
    }


def render() -> str:
    return json.dumps(trimmed(), indent=None, separators=(",", ":"), sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
