"""Namespace scopes: how the frontend's flags become a scope, and a scope becomes store prefixes."""

from __future__ import annotations

import pytest

from drivetrain.runtime.records import MODELS_PREFIX, model_key
from drivetrain.runtime.scope import NamespaceScope


@pytest.mark.parametrize("namespace", [None, "", "global"])
def test_no_namespace_empty_or_global_means_every_namespace(namespace: str | None) -> None:
    scope = NamespaceScope.from_args(namespace=namespace)
    assert scope.is_global
    assert scope.accepts("anything") and scope.accepts("") and scope.accepts("global")


def test_prefix_wins_over_namespace() -> None:
    scope = NamespaceScope.from_args(namespace="team-a", namespace_prefix="team")
    assert scope == NamespaceScope("prefix", "team")


def test_global_prefix_wins_over_namespace_too() -> None:
    assert NamespaceScope.from_args(namespace="team-a", namespace_prefix="").is_global


def test_strict_applies_only_to_a_prefix() -> None:
    assert NamespaceScope.from_args(namespace="team", strict=True) == NamespaceScope(
        "exact", "team"
    )
    assert NamespaceScope.from_args(namespace_prefix="team", strict=True).kind == "generation"


def test_exact_scope_watches_only_its_namespace_not_a_longer_one() -> None:
    # Dynamo's list by namespace is a raw starts_with, so "ns1" also lists "ns10" (vector
    # kv-list-04); the trailing '/' keeps an exact scope exact in the store itself.
    (prefix,) = NamespaceScope.from_args(namespace="ns1").watch_prefixes("models")
    assert model_key("ns1", "m", "1").startswith(prefix)
    assert not model_key("ns10", "m", "1").startswith(prefix)


def test_literal_prefix_scope_watches_every_namespace_starting_with_it() -> None:
    (prefix,) = NamespaceScope.from_args(namespace_prefix="ns1").watch_prefixes("models")
    assert model_key("ns1", "m", "1").startswith(prefix)
    assert model_key("ns10", "m", "1").startswith(prefix)
    assert not model_key("other-ns1", "m", "1").startswith(prefix)


def test_generation_scope_watches_the_namespace_and_its_dash_continuations() -> None:
    prefixes = NamespaceScope.from_args(namespace_prefix="foo", strict=True).watch_prefixes(
        "models"
    )

    def watched(namespace: str) -> bool:
        return any(model_key(namespace, "m", "1").startswith(p) for p in prefixes)

    assert watched("foo") and watched("foo-1a2b3c4d")
    assert not watched("foobar")
    # The store cannot express "8 hex digits"; accepts() rejects what the prefix lets through.
    assert watched("foo-bar")
    assert not NamespaceScope("generation", "foo").accepts("foo-bar")


def test_global_scope_watches_the_whole_kind() -> None:
    assert NamespaceScope.from_args().watch_prefixes("models") == [MODELS_PREFIX]


@pytest.mark.parametrize("prefix", ["a/b", "50%", "ns ", "é"])
def test_prefix_scoping_survives_key_encoding_of_odd_characters(prefix: str) -> None:
    (watched,) = NamespaceScope.from_args(namespace_prefix=prefix).watch_prefixes("models")
    assert model_key(prefix + "-x", "m", "1").startswith(watched)
    assert not model_key("x" + prefix, "m", "1").startswith(watched)


def test_namespaces_compare_case_sensitively() -> None:
    scope = NamespaceScope.from_args(namespace="Team")
    assert scope.accepts("Team") and not scope.accepts("team")
    assert not NamespaceScope.from_args(namespace="GLOBAL").is_global
