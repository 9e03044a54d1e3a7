"""Which worker namespaces a frontend serves (docs/discovery.md).

Four scopes, built from the frontend's ``--namespace`` / ``--namespace-prefix`` /
``--namespace-prefix-strict``:

* ``global``: every namespace.  Chosen by no namespace, ``""`` or ``"global"`` (for the namespace
  and for the prefix alike; compared case-sensitively, so ``"Global"`` is a real namespace).
* ``exact``: one namespace.
* ``prefix``: every namespace that starts with the literal prefix (``ns`` takes ``ns10`` too).
* ``generation``: the prefix itself or ``<prefix>-`` followed by exactly 8 lowercase hex digits,
  the worker-generation suffix of a rolling update (Dynamo's ``WorkerGenerationPrefix``).

The prefix wins over the namespace when both are given.  ``watch_prefixes`` turns a scope into the
store prefixes to watch, so the store sends a scoped frontend only (or, for ``generation``, nearly
only) the keys it wants; ``accepts`` is the exact rule, applied to every put that arrives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from drivetrain.runtime.records import RecordKind, encode_segment, kind_prefix

GLOBAL_NAMESPACE = "global"
DEFAULT_NAMESPACE = GLOBAL_NAMESPACE  # where a worker registers when given no namespace

ScopeKind = Literal["global", "exact", "prefix", "generation"]

_GENERATION_SUFFIX = re.compile(r"-[0-9a-f]{8}")
_TRUTHY = frozenset({"1", "true", "yes", "on"})


def is_global_namespace(namespace: str | None) -> bool:
    """None, ``""`` and ``"global"`` mean every namespace (case-sensitive, no trimming)."""
    return namespace is None or namespace in ("", GLOBAL_NAMESPACE)


def parse_strict_flag(value: str | None) -> bool:
    """An environment flag such as ``DRIVETRAIN_NAMESPACE_PREFIX_STRICT``: 1/true/yes/on."""
    return value is not None and value.strip().lower() in _TRUTHY


def matches_generation(namespace: str, prefix: str) -> bool:
    """``prefix`` itself or ``prefix-<8 lowercase hex>``."""
    if namespace == prefix:
        return True
    rest = namespace[len(prefix) :] if namespace.startswith(prefix) else None
    return rest is not None and _GENERATION_SUFFIX.fullmatch(rest) is not None


@dataclass(frozen=True)
class NamespaceScope:
    kind: ScopeKind
    value: str | None = None  # the namespace or prefix; None for global

    @classmethod
    def from_args(
        cls, namespace: str | None = None, namespace_prefix: str | None = None, strict: bool = False
    ) -> NamespaceScope:
        if namespace_prefix is not None:
            # The prefix takes precedence, even when it turns out to be global.
            if is_global_namespace(namespace_prefix):
                return cls("global")
            return cls("generation" if strict else "prefix", namespace_prefix)
        if is_global_namespace(namespace):
            return cls("global")
        return cls("exact", namespace)

    @property
    def is_global(self) -> bool:
        return self.kind == "global"

    def accepts(self, namespace: str) -> bool:
        if self.kind == "global":
            return True
        assert self.value is not None
        if self.kind == "exact":
            return namespace == self.value
        if self.kind == "prefix":
            return namespace.startswith(self.value)
        return matches_generation(namespace, self.value)

    def watch_prefixes(self, kind: RecordKind) -> list[str]:
        """Store prefixes whose union holds every accepted key of ``kind`` (and little else)."""
        root = kind_prefix(kind)
        if self.kind == "global":
            return [root]
        assert self.value is not None
        encoded = root + encode_segment(self.value)
        if self.kind == "exact":
            return [encoded + "/"]
        if self.kind == "prefix":
            return [encoded]
        # generation: the namespace itself, or one that continues with '-' (filtered by accepts).
        return [encoded + "/", encoded + "-"]

    def describe(self) -> str:
        if self.kind == "global":
            return "every namespace"
        if self.kind == "exact":
            return f"namespace {self.value!r}"
        if self.kind == "prefix":
            return f"namespaces starting with {self.value!r}"
        return f"namespace {self.value!r} and its generations {self.value!r}-<8 hex>"
