"""``extraPodSpec`` and ``mainContainer`` checked against the Kubernetes PodSpec schema.

The schema ships with the package (``schemas/podspec.json``: the 1.30 PodSpec and what it
reaches, trimmed by ``scripts/trim-podspec-schema.py``), and this module walks it.  The walk
covers the JSON-schema keywords that schema uses (``type``, ``properties``,
``additionalProperties``, ``items``, ``required``, ``oneOf`` of scalar types, ``$ref`` and the
``int32`` range); a test checks it against the jsonschema library on the example corpus.  The
graph's own ``extraPodSpec`` is a partial PodSpec and ``mainContainer`` a partial Container, so
their top-level ``required`` fields are not demanded (drivetrain fills them in).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from drivetrain.api.errors import FieldError

POD_SPEC = "io.k8s.api.core.v1.PodSpec"
CONTAINER = "io.k8s.api.core.v1.Container"
_INT32 = (-(2**31), 2**31 - 1)
_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


@functools.cache
def _definitions() -> dict[str, Any]:
    text = resources.files("drivetrain.api").joinpath("schemas/podspec.json").read_text("utf-8")
    return dict(json.loads(text)["definitions"])


def field_names(definition: str) -> frozenset[str]:
    """The fields of a Kubernetes type (``POD_SPEC``, ``CONTAINER``)."""
    return frozenset(_definitions()[definition]["properties"])


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return kind == "null" and value is None


def _types(node: dict[str, Any]) -> list[str]:
    if "oneOf" in node:
        return [t for variant in node["oneOf"] for t in _types(variant)]
    kind = node.get("type")
    if kind is None:
        return []
    return [t for t in ([kind] if isinstance(kind, str) else kind) if t != "null"]


def _expected(types: list[str]) -> str:
    return " or ".join(_NAMES.get(t, t) for t in types)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _short(definition: str) -> str:
    return definition.rsplit(".", 1)[-1]


def _walk(
    node: dict[str, Any], value: Any, path: str, owner: str, partial: bool
) -> list[FieldError]:
    defs = _definitions()
    while "$ref" in node:
        owner = node["$ref"].rsplit("/", 1)[-1]
        node = defs[owner]
    types = _types(node)
    if value is None:
        return []  # nulls are pruned as the API server prunes them
    if types and not any(_is(value, t) for t in types):
        return [FieldError(path, f"must be {_expected(types)} (got {value!r})")]
    errors: list[FieldError] = []
    if node.get("format") == "int32" and _is(value, "integer"):
        low, high = _INT32
        if not low <= value <= high:
            errors.append(FieldError(path, f"must be a 32-bit integer (got {value})"))
    if isinstance(value, dict):
        props = node.get("properties") or {}
        extra = node.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                errors += _walk(props[key], item, _join(path, key), owner, False)
            elif isinstance(extra, dict):
                errors += _walk(extra, item, _join(path, str(key)), owner, False)
            elif extra is False:
                errors.append(
                    FieldError(
                        _join(path, str(key)), f"unknown field (not a {_short(owner)} field)"
                    )
                )
        if not partial:
            for key in node.get("required") or []:
                if key not in value:
                    errors.append(FieldError(_join(path, key), "required field is missing"))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            errors += _walk(node["items"], item, f"{path}[{i}]", owner, False)
    return errors


def check(value: Any, definition: str, path: str, *, partial: bool = False) -> list[FieldError]:
    """Every problem of ``value`` as a Kubernetes ``definition``, with field paths under ``path``.

    ``partial``: the top level may leave out required fields (someone else sets them).
    """
    return _walk({"$ref": f"#/{definition}"}, value, path, definition, partial)
