"""Dynamo's namespace-filter behaviours (../shared/vectors/dynamo-runtime-vectors.json) hold here.

One deliberate translation: Dynamo's global namespace is called ``dynamo``, drivetrain's is
``global`` (docs/discovery.md).  Every vector namespace spelled ``dynamo`` (any case) is read with
``global`` in the same case, so the case-sensitivity vectors keep their meaning.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from drivetrain.runtime.scope import (
    GLOBAL_NAMESPACE,
    NamespaceScope,
    is_global_namespace,
    matches_generation,
    parse_strict_flag,
)
from tests.paths import SHARED

VECTORS_PATH = SHARED / "vectors" / "dynamo-runtime-vectors.json"
FILTER_KINDS = {
    "Global": "global",
    "Exact": "exact",
    "Prefix": "prefix",
    "WorkerGenerationPrefix": "generation",
}


def _vectors(area: str) -> list[dict[str, Any]]:
    if not VECTORS_PATH.exists():
        return []
    data = json.loads(VECTORS_PATH.read_text())
    return [v for v in data["vectors"] if v["area"] == area]


def cases(area: str) -> Any:
    """Parametrise over the vectors of ``area`` (one skipped case when ../shared is absent)."""
    vectors = _vectors(area)
    if not vectors:
        return pytest.mark.parametrize(
            "vector",
            [pytest.param(None, marks=pytest.mark.skip(reason=f"{VECTORS_PATH} is not here"))],
        )
    return pytest.mark.parametrize("vector", vectors, ids=[v["id"] for v in vectors])


def ours(namespace: str | None) -> str | None:
    """Dynamo's global namespace name, in drivetrain's spelling."""
    return {"dynamo": "global", "Dynamo": "Global", "DYNAMO": "GLOBAL"}.get(namespace, namespace)  # type: ignore[arg-type]


@cases("namespace_filter.build")
def test_scope_is_built_like_dynamo_namespace_filter(vector: dict[str, Any]) -> None:
    given = vector["given"]
    scope = NamespaceScope.from_args(
        namespace=ours(given["namespace"]),
        namespace_prefix=ours(given["namespace_prefix"]),
        strict=given.get("mode") == "WorkerGeneration",
    )
    expected = vector["expect"]
    assert scope.kind == FILTER_KINDS[expected["filter"]]
    assert scope.value == ours(expected.get("value"))


@cases("namespace_filter.matches")
def test_scope_accepts_the_namespaces_dynamo_matches(vector: dict[str, Any]) -> None:
    given = vector["given"]
    scope = NamespaceScope(FILTER_KINDS[given["filter"]], ours(given["value"]))  # type: ignore[arg-type]
    assert scope.accepts(ours(given["namespace"])) is vector["expect"]["matches"]  # type: ignore[arg-type]


@cases("namespace_matches_prefix")
def test_prefix_modes_match_like_dynamo(vector: dict[str, Any]) -> None:
    given = vector["given"]
    strict = given["mode"] == "WorkerGeneration"
    scope = NamespaceScope.from_args(namespace_prefix=given["prefix"], strict=strict)
    assert scope.accepts(given["namespace"]) is vector["expect"]["matches"]
    if strict:
        assert (
            matches_generation(given["namespace"], given["prefix"]) is vector["expect"]["matches"]
        )


@cases("namespace_filter.is_global")
def test_only_the_global_scope_is_global(vector: dict[str, Any]) -> None:
    given = vector["given"]
    scope = NamespaceScope(FILTER_KINDS[given["filter"]], given["value"])  # type: ignore[arg-type]
    assert scope.is_global is vector["expect"]["is_global"]


@cases("is_global_namespace")
def test_global_namespace_names_are_exact_and_case_sensitive(vector: dict[str, Any]) -> None:
    assert is_global_namespace(ours(vector["given"]["namespace"])) is vector["expect"]["is_global"]


@cases("GLOBAL_NAMESPACE")
def test_the_global_namespace_is_named_global_where_dynamo_says_dynamo(
    vector: dict[str, Any],
) -> None:
    assert ours(vector["expect"]["value"]) == GLOBAL_NAMESPACE == "global"


@cases("namespace_prefix_mode_from_env")
def test_strict_prefix_flag_reads_like_dynamo_env(vector: dict[str, Any]) -> None:
    value = vector["given"]["DYN_NAMESPACE_PREFIX_STRICT"]
    assert parse_strict_flag(value) is (vector["expect"]["mode"] == "WorkerGeneration")


@cases("discovery_scoping")
def test_frontend_namespace_decides_which_registrations_are_visible(vector: dict[str, Any]) -> None:
    given = vector["given"]
    scope = NamespaceScope.from_args(namespace=ours(given["frontend_namespace"]))
    expected = vector["expect"]
    if "model_namespaces" in given:
        visible = sorted(
            model
            for model, namespace in given["model_namespaces"].items()
            if scope.accepts(ours(namespace))  # type: ignore[arg-type]
        )
        assert visible == sorted(expected["visible"])
    else:
        visible_namespaces = [
            ns
            for ns in given["endpoint_namespaces"]
            if scope.accepts(ours(ns))  # type: ignore[arg-type]
        ]
        assert len(visible_namespaces) == expected["visible_count"]
        if "all_visible_in" in expected:
            assert set(visible_namespaces) == {expected["all_visible_in"]}


@cases("frontend_vs_worker")
def test_operator_style_frontend_env_sees_suffixed_workers_only_with_a_prefix(
    vector: dict[str, Any],
) -> None:
    env = vector["given"]["frontend_env"]
    scope = NamespaceScope.from_args(
        namespace=env.get("DYN_NAMESPACE"), namespace_prefix=env.get("DYN_NAMESPACE_PREFIX")
    )
    assert scope.accepts(vector["given"]["worker_namespace"]) is vector["expect"]["visible"]
