"""The Kubernetes API calls the processes of a graph's pods make, and how a Role's rules cover them.

One table (a leaf: imports nothing of drivetrain).  The renderer grants these rules
(``render/rbac.py``), ``verify`` checks that a pod's ServiceAccount holds them, and the tests of
``deploy/`` check that the operator holds every rule it grants.  What each entry is, and how it
was established, is in docs/discovery.md (drivetrain's ``kubernetes://``),
docs/dynamo-on-kubernetes.md (Dynamo 1.6.1's runtime, proven with its own processes) and
docs/rendering.md (planner and trainer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: The order verbs are written in a rendered rule (Kubernetes' own documentation order).
VERB_ORDER = ("get", "list", "watch", "create", "update", "patch", "delete")

Process = Literal["frontend", "worker"]
DynamoMode = Literal["pod", "container"]


@dataclass(frozen=True, order=True)
class Need:
    """One call a process makes: a verb on a resource of an API group (and one object, if named)."""

    group: str  # "" is the core group
    resource: str  # plural, or "plural/subresource"
    verb: str
    name: str | None = None  # a rule restricted to names (resourceNames) must list it

    def __str__(self) -> str:
        what = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{self.verb} {what}" + (f" {self.name}" if self.name else "")


def needs(group: str, resource: str, *verbs: str, names: Sequence[str] = ()) -> tuple[Need, ...]:
    """Every (group, resource, verb[, name]) combination, as Needs."""
    return tuple(
        Need(group, resource, verb, name) for verb in verbs for name in (tuple(names) or (None,))
    )


# ------------------------------------------------------------------ drivetrain kubernetes://
# docs/discovery.md: a worker applies (create + patch), re-reads (get) and on a clean stop
# deletes its WorkerEndpoint; a frontend lists and watches WorkerEndpoints and Pods (readiness,
# and its own pod's controller), applies the durable WorkerEndpoint of the RL API's committed
# weight version (create + patch; docs/rl.md) and adds its ReplicaSet to that object's owners
# (patch).
DRIVETRAIN_DISCOVERY: dict[Process, tuple[Need, ...]] = {
    "worker": needs("drivetrain.dev", "workerendpoints", "get", "create", "patch", "delete"),
    "frontend": (
        *needs("drivetrain.dev", "workerendpoints", "list", "watch", "create", "patch"),
        *needs("", "pods", "list", "watch"),
    ),
}

# ------------------------------------------------------------------ Dynamo 1.6.1 K8s discovery
# docs/dynamo-on-kubernetes.md: every entry was removed alone and the worker was no longer
# served.  Pod mode watches EndpointSlices; container mode watches Pods and first deletes a
# stale DynamoWorkerMetadata of its own name.  Only workers write their CR.
_DWM = ("nvidia.com", "dynamoworkermetadatas")
DYNAMO_DISCOVERY: dict[tuple[DynamoMode, Process], tuple[Need, ...]] = {
    ("pod", "frontend"): (
        *needs("discovery.k8s.io", "endpointslices", "list", "watch"),
        *needs(*_DWM, "list", "watch"),
    ),
    ("pod", "worker"): (
        *needs("discovery.k8s.io", "endpointslices", "list", "watch"),
        *needs(*_DWM, "list", "watch", "create", "patch"),
    ),
    ("container", "frontend"): (
        *needs("", "pods", "list", "watch"),
        *needs(*_DWM, "list", "watch", "delete"),
    ),
    ("container", "worker"): (
        *needs("", "pods", "list", "watch"),
        *needs(*_DWM, "list", "watch", "create", "patch", "delete"),
    ),
}

# ------------------------------------------------------------------ trainers
# docs/distenv.md: JAX's own Kubernetes bootstrap (``K8sCluster``) lists pods by IP and reads
# its Job; it lists Services only to word an error when the pod has no subdomain.
TRAINER: tuple[Need, ...] = (*needs("", "pods", "list"), *needs("batch", "jobs", "get"))
TRAINER_WITHOUT_SUBDOMAIN: tuple[Need, ...] = needs("", "services", "list")


# ------------------------------------------------------------------ Dynamo's planner
def planner(graph: str, adapters: Sequence[str]) -> tuple[Need, ...]:
    """Dynamo's planner (``planner/connectors/clients/kubernetes_api.py`` in 1.6.1) scaling one
    graph: it reads and JSON-patches its DynamoGraphDeployment, gets and patches the ``scale``
    of the graph's DynamoGraphDeploymentScalingAdapters (``<graph>-<lower(service)>``, trying
    them first; a 403 there is not a fallback), and lists the graph's pods by label.  Metrics
    come from Prometheus over HTTP, not from the API server."""
    return (
        *needs("nvidia.com", "dynamographdeployments", "get", "patch", names=[graph]),
        *(
            needs("nvidia.com", "dynamographdeploymentscalingadapters/scale", "get", "patch",
                  names=adapters)
            if adapters
            else ()
        ),
        *needs("", "pods", "list"),
    )  # fmt: skip


# ------------------------------------------------------------------ rules as written in a Role
def policy_rules(wanted: Iterable[Need]) -> list[dict[str, Any]]:
    """The fewest PolicyRules granting exactly ``wanted``: verbs gathered per (group, resource,
    names), then resources with the same group, verbs and names in one rule.  Deterministic:
    resources in the order they are first wanted, verbs in ``VERB_ORDER``."""
    # (group, resource, verb) -> names; "" stands for every object (no resourceNames).
    names_of: dict[tuple[str, str, str], set[str]] = {}
    for need in wanted:
        names_of.setdefault((need.group, need.resource, need.verb), set()).add(need.name or "")
    # (group, resource, names) -> verbs
    verbs_of: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for (group, resource, verb), named in names_of.items():
        restricted = () if "" in named else tuple(sorted(named))
        verbs_of.setdefault((group, resource, restricted), set()).add(verb)
    # (group, verbs, names) -> resources
    merged: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for (group, resource, restricted), verbs in verbs_of.items():
        ordered = tuple(v for v in VERB_ORDER if v in verbs) + tuple(
            sorted(v for v in verbs if v not in VERB_ORDER)
        )
        merged.setdefault((group, ordered, restricted), []).append(resource)
    out: list[dict[str, Any]] = []
    for (group, ordered, restricted), resources in merged.items():
        rule: dict[str, Any] = {
            "apiGroups": [group],
            "resources": resources,
            "verbs": list(ordered),
        }
        if restricted:
            rule["resourceNames"] = list(restricted)
        out.append(rule)
    return out


def _matches(patterns: Sequence[str], value: str) -> bool:
    if "*" in patterns or value in patterns:
        return True
    # "pods/*" covers every subresource of pods; "*/scale" the scale of every resource.
    base, _, sub = value.partition("/")
    return bool(sub) and (f"{base}/*" in patterns or f"*/{sub}" in patterns)


def allows(rule: Mapping[str, Any], need: Need) -> bool:
    """Whether one PolicyRule grants ``need``, as the RBAC authorizer reads it."""
    if not _matches(list(rule.get("apiGroups") or []), need.group):
        return False
    if not _matches(list(rule.get("resources") or []), need.resource):
        return False
    if not _matches(list(rule.get("verbs") or []), need.verb):
        return False
    restricted = list(rule.get("resourceNames") or [])
    return not restricted or (need.name is not None and need.name in restricted)


def missing(wanted: Iterable[Need], granted: Iterable[Mapping[str, Any]]) -> list[Need]:
    """The needs no rule of ``granted`` covers, in order, once each."""
    rules = list(granted)
    return list(dict.fromkeys(n for n in wanted if not any(allows(r, n) for r in rules)))


def expand(rule: Mapping[str, Any]) -> list[Need]:
    """Every Need one PolicyRule grants (its names included); wildcards stay as written."""
    return [
        need
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for need in needs(
            group, resource, *(rule.get("verbs") or []), names=rule.get("resourceNames") or ()
        )
    ]
