"""A small JSON-schema walker for the schemas the package ships (no jsonschema dependency).

It reads the keywords those schemas use (``type``, ``properties``, ``additionalProperties``,
``items``, ``required``, ``enum``, ``oneOf`` of scalar types, ``$ref``, ``minimum``/``maximum``,
``minLength``/``maxLength``, ``pattern``, the ``int32`` range) and reports every problem with a
field path, in the words of ``api/errors``.  ``podspec`` (the Kubernetes PodSpec) and
``kuberay`` (KubeRay's RayCluster spec) are its two schemas; the tests keep it in agreement
with the jsonschema library on real examples and their mutants.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from drivetrain.api.errors import FieldError

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
def definitions(schema_file: str) -> dict[str, Any]:
    """The ``definitions`` of ``schemas/<schema_file>``, package data of ``drivetrain.api``."""
    text = resources.files("drivetrain.api").joinpath(f"schemas/{schema_file}").read_text("utf-8")
    return dict(json.loads(text)["definitions"])


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


def _unknown(definition: str) -> str:
    """ "unknown field", naming the type when the definition is a type (``Container``) rather
    than a place in a schema (``RayClusterSpec.headGroupSpec.template``)."""
    short = definition.rsplit(".", 1)[-1]
    return f"unknown field (not a {short} field)" if short[:1].isupper() else "unknown field"


def _scalar_rules(node: dict[str, Any], value: Any, path: str) -> list[FieldError]:
    errors = []
    if "enum" in node and value not in node["enum"]:
        allowed = ", ".join(str(v) for v in node["enum"])
        errors.append(FieldError(path, f"must be one of {allowed} (got {value!r})"))
    if _is(value, "number"):
        low, high = node.get("minimum"), node.get("maximum")
        if node.get("format") == "int32" and _is(value, "integer"):
            low = _INT32[0] if low is None else low
            high = _INT32[1] if high is None else high
            if not _INT32[0] <= value <= _INT32[1]:
                return [*errors, FieldError(path, f"must be a 32-bit integer (got {value})")]
        if low is not None and value < low:
            errors.append(FieldError(path, f"must be at least {low} (got {value})"))
        if high is not None and value > high:
            errors.append(FieldError(path, f"must be at most {high} (got {value})"))
    if isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            errors.append(FieldError(path, f"must be at least {node['minLength']} characters"))
        if "maxLength" in node and len(value) > node["maxLength"]:
            errors.append(FieldError(path, f"must be at most {node['maxLength']} characters"))
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(FieldError(path, f"must match {node['pattern']} (got {value!r})"))
    return errors


def walk(
    defs: dict[str, Any], node: dict[str, Any], value: Any, path: str, owner: str, partial: bool
) -> list[FieldError]:
    """Every problem of ``value`` against ``node`` (resolving ``$ref`` in ``defs``)."""
    while "$ref" in node:
        owner = node["$ref"].rsplit("/", 1)[-1]
        node = defs[owner]
    types = _types(node)
    if value is None:
        return []  # nulls are pruned as the API server prunes them
    if types and not any(_is(value, t) for t in types):
        return [FieldError(path, f"must be {_expected(types)} (got {value!r})")]
    errors = _scalar_rules(node, value, path)
    if isinstance(value, dict):
        props = node.get("properties") or {}
        extra = node.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                # An inline object is a place in its owner, not the owner (messages say so).
                inner = owner if "$ref" in props[key] else f"{owner}.{key}"
                errors += walk(defs, props[key], item, _join(path, key), inner, False)
            elif isinstance(extra, dict):
                errors += walk(defs, extra, item, _join(path, str(key)), owner, False)
            elif extra is False:
                errors.append(FieldError(_join(path, str(key)), _unknown(owner)))
        if not partial:
            for key in node.get("required") or []:
                if key not in value:
                    errors.append(FieldError(_join(path, key), "required field is missing"))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            errors += walk(defs, node["items"], item, f"{path}[{i}]", owner, False)
    return errors


def check(
    schema_file: str, value: Any, definition: str, path: str, *, partial: bool = False
) -> list[FieldError]:
    """Every problem of ``value`` as ``definition`` of ``schema_file``, paths under ``path``.

    ``partial``: the top level may leave out required fields (someone else sets them).
    """
    defs = definitions(schema_file)
    return walk(defs, {"$ref": f"#/{definition}"}, value, path, definition, partial)
