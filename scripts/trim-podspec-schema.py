#!/usr/bin/env python3
"""Regenerate src/drivetrain/api/schemas/podspec.json from kubernetes-validate's schemas.

The shipped file is the Kubernetes 1.30 PodSpec and every definition it reaches, with the
descriptions and x-kubernetes-* annotations dropped (about 40 kB instead of the library's
100 MB).  One addition: a pod resource claim accepts both the 1.30 form (``source``) and the
1.31+ form (``resourceClaimName``/``resourceClaimTemplateName``), as graphs use either.
tests/api/test_podspec_schema.py checks that the committed file equals this script's output.

Usage: .venv/bin/python scripts/trim-podspec-schema.py > src/drivetrain/api/schemas/podspec.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate

VERSION = "1.30.0"
NEWER = "1.32.0"  # the first release whose resource-claim form graphs also use
ROOT = "io.k8s.api.core.v1.PodSpec"
CLAIM = "io.k8s.api.core.v1.PodResourceClaim"


def definitions(version: str) -> dict[str, Any]:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = base / f"v{version}-local-strict" / "_definitions.json"
    return dict(json.loads(path.read_text())["$defs"])


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _strip(v)
            for k, v in node.items()
            if k not in ("description", "discriminator", "fields-to-discriminateBy")
            and not k.startswith("x-kubernetes")
        }
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def trimmed() -> dict[str, Any]:
    defs = definitions(VERSION)
    seen: dict[str, Any] = {}
    todo = [ROOT]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen[name] = _strip(defs[name])
            todo += _refs(defs[name])
    newer = _strip(definitions(NEWER)[CLAIM])
    seen[CLAIM]["properties"] = {**seen[CLAIM]["properties"], **newer["properties"]}
    return {"kubernetesVersion": VERSION, "root": ROOT, "definitions": dict(sorted(seen.items()))}


def render() -> str:
    return json.dumps(trimmed(), indent=None, separators=(",", ":"), sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
