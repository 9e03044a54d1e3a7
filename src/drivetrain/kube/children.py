"""A graph's desired children, marked as owned, and the plan that brings the live ones there.

Pure functions.  "Re-running a reconcile that changes nothing writes nothing": each desired
child carries the hash of its own desired form in an annotation, and a child is applied only
when the live object is missing or carries another hash.  (Comparing live fields instead would
need the server's defaulting, which only a real API server knows.)
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from drivetrain.kube.resources import CHILD_KINDS
from drivetrain.render.naming import GRAPH_LABEL

HASH_ANNOTATION = "drivetrain.dev/desired-hash"

ChildKey = tuple[str, str]  # kind, name


def child_key(obj: dict[str, Any]) -> ChildKey:
    return obj["kind"], obj["metadata"]["name"]


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def desired_hash(obj: dict[str, Any]) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def owned(rendered: list[dict[str, Any]], owner: dict[str, Any]) -> list[dict[str, Any]]:
    """Each rendered object labelled with the graph, owned by it, and stamped with its hash."""
    ref = owner_reference(owner)
    out = []
    for obj in rendered:
        child = copy.deepcopy(obj)
        meta = child["metadata"]
        meta["namespace"] = owner["metadata"]["namespace"]
        meta.setdefault("labels", {})[GRAPH_LABEL] = owner["metadata"]["name"]
        meta["ownerReferences"] = [ref]
        meta.setdefault("annotations", {}).pop(HASH_ANNOTATION, None)
        meta["annotations"][HASH_ANNOTATION] = desired_hash(child)
        out.append(child)
    return out


def is_owned_by(obj: dict[str, Any], owner_uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid and r.get("controller") for r in refs)


@dataclass
class Plan:
    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[dict[str, Any]] = field(default_factory=list)  # the live objects

    @property
    def writes(self) -> int:
        return len(self.apply) + len(self.delete)


def drifted(live: dict[str, Any], applied_generations: dict[str, int]) -> bool:
    """True when the child's spec changed since this operator applied it.

    ``applied_generations`` maps a child's uid to the generation the operator's own apply
    produced; a higher live generation means someone else changed the spec (``kubectl edit``,
    ``kubectl scale``).  A child the operator has not applied since it started is not drifted:
    its generation is adopted instead, so a restarted operator writes nothing.
    """
    meta = live.get("metadata", {})
    uid, generation = meta.get("uid"), meta.get("generation")
    if uid not in applied_generations or generation is None:
        return False
    return int(generation) > applied_generations[uid]


def plan(
    desired: list[dict[str, Any]],
    live: list[dict[str, Any]],
    owner_uid: str,
    applied_generations: dict[str, int] | None = None,
) -> Plan:
    """What to apply and what to delete.

    A child is applied when it is missing, carries another desired hash, is not controlled by
    this graph, or ``drifted``.  ``live`` is every object carrying the graph's label; only
    those this graph controls (ownerReference uid) are ever deleted, so a same-named graph
    recreated, or an object a person labelled by hand, is left alone.
    """
    generations = applied_generations or {}
    live_by_key = {child_key(o): o for o in live}
    result = Plan()
    for obj in desired:
        current = live_by_key.get(child_key(obj))
        wanted = obj["metadata"]["annotations"][HASH_ANNOTATION]
        have = ((current or {}).get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
        if (
            current is not None
            and have == wanted
            and is_owned_by(current, owner_uid)
            and not drifted(current, generations)
        ):
            result.unchanged.append(current)
        else:
            result.apply.append(obj)
    wanted_keys = {child_key(o) for o in desired}
    for obj in live:
        kind = CHILD_KINDS.get(obj["kind"])
        if (
            child_key(obj) not in wanted_keys
            and kind is not None
            and kind.prunable
            and is_owned_by(obj, owner_uid)
        ):
            result.delete.append(obj)
    return result
