"""Status from children (pure): a rollout in progress is never "ready".

A workload is ready when its controller has observed its current generation and every
desired replica is both updated and ready, with no old replica left.  Counting only ready
replicas (as Dynamo and KubeRay do) calls a graph ready in the middle of a rolling update,
because the old pods are still ready.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from drivetrain.api.models import Deployer, GraphDeployment
from drivetrain.render.naming import resource_name
from drivetrain.render.workloads import is_trainer

READY = "Ready"


@dataclass(frozen=True)
class ChildStatus:
    kind: str
    name: str
    replicas: int  # desired
    ready: int
    updated: int
    is_ready: bool
    reason: str  # what is missing, "" when ready
    #: a trainer's Job that ran to completion: done, not down
    succeeded: bool = False


def service_children(graph: GraphDeployment, deployer: Deployer) -> dict[str, tuple[str, str]]:
    """service → (kind, name) of the workload that runs it."""
    out = {}
    for name, svc in graph.spec.services.items():
        if is_trainer(graph, name):
            out[name] = ("Job", resource_name(graph, name))
        elif deployer is Deployer.grove:
            out[name] = ("PodCliqueSet", graph.name)
        elif svc.node_count > 1:
            out[name] = ("LeaderWorkerSet", resource_name(graph, name))
        else:
            out[name] = ("Deployment", resource_name(graph, name))
    return out


def _condition_true(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next(
        (
            c
            for c in status.get("conditions") or []
            if c.get("type") == kind and c.get("status") == "True"
        ),
        None,
    )


def job_status(obj: dict[str, Any], name: str) -> ChildStatus:
    """A trainer's Job: ready while all its pods are ready, done once it completed.

    A Job has no rollout and no ``observedGeneration``; its controller's conditions say how it
    ended (``Complete`` / ``Failed``, kubernetes ``pkg/controller/job``).
    """
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    desired = int(spec.get("parallelism", 1)) if not spec.get("suspend") else 0
    if _condition_true(status, "Complete"):
        count = int(spec.get("completions", 1))
        return ChildStatus("Job", name, count, count, count, True, "", succeeded=True)
    failed = _condition_true(status, "Failed")
    ready = int(status.get("ready", 0))
    if failed:
        why = failed.get("message") or failed.get("reason") or "the Job failed"
        return ChildStatus("Job", name, desired, ready, desired, False, f"failed: {why}")
    reason = "" if ready >= desired else f"{ready}/{desired} pods ready"
    return ChildStatus("Job", name, desired, ready, desired, not reason, reason)


def child_status(obj: dict[str, Any] | None, kind: str, name: str) -> ChildStatus:
    """Readiness of a Deployment, LeaderWorkerSet, PodCliqueSet or Job from its status fields."""
    if obj is None:
        return ChildStatus(kind, name, 0, 0, 0, False, "not created yet")
    if kind == "Job":
        return job_status(obj, name)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    desired = int(spec.get("replicas", 1))
    total = int(status.get("replicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    # Deployment and LWS count ready replicas; a PodCliqueSet counts available ones.
    ready_field = "availableReplicas" if kind == "PodCliqueSet" else "readyReplicas"
    ready = int(status.get(ready_field, 0))
    generation = obj.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed != generation:
        reason = f"generation {generation} not observed yet (observed {observed})"
    elif updated < desired:
        reason = f"{updated}/{desired} replicas updated"
    elif total > desired:
        reason = f"{total - desired} old replica(s) still running"
    elif ready < desired:
        reason = f"{ready}/{desired} replicas ready"
    else:
        reason = ""
    return ChildStatus(kind, name, desired, ready, updated, not reason, reason)


def condition(
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    previous: dict[str, Any],
    kind: str = READY,
) -> dict[str, Any]:
    """A status condition of type ``kind``; its ``lastTransitionTime`` is kept from
    ``previous`` (the object's current status) while its status holds."""
    old: dict[str, Any] = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == kind), {}
    )
    # The transition time moves only when the status does, so a steady graph writes nothing.
    if old.get("status") == status and old.get("lastTransitionTime"):
        when = old["lastTransitionTime"]
    else:
        when = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cond = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def failed_status(
    reason: str, message: str, generation: int | None, previous: dict[str, Any]
) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "state": "failed",
        "conditions": [condition("False", reason, message, generation, previous)],
        "services": {},
    }


def graph_status(
    children: dict[str, ChildStatus], generation: int | None, previous: dict[str, Any]
) -> dict[str, Any]:
    """``children`` maps each service to its workload's status."""
    services = {
        svc: {
            "componentKind": c.kind,
            "componentName": c.name,
            "replicas": c.replicas,
            "readyReplicas": c.ready,
            "updatedReplicas": c.updated,
            **({"succeeded": True} if c.succeeded else {}),
        }
        for svc, c in sorted(children.items())
    }
    waiting = sorted(
        {f"{c.kind} {c.name}: {c.reason}" for c in children.values() if not c.is_ready}
    )
    if waiting:
        state, cond = (
            "pending",
            condition(
                "False",
                "ResourcesNotReady",
                "not ready: " + "; ".join(waiting),
                generation,
                previous,
            ),
        )
    else:
        state, cond = (
            "successful",
            condition("True", "AllResourcesReady", "all resources are ready", generation, previous),
        )
    return {
        "observedGeneration": generation,
        "state": state,
        "conditions": [cond],
        "services": services,
    }


def status_changed(previous: dict[str, Any], new: dict[str, Any]) -> bool:
    return any(previous.get(k) != v for k, v in new.items())


def status_patch(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch from ``previous`` to ``new``: services that went away are set to null."""
    patch = dict(new)
    gone = set(previous.get("services") or {}) - set(new.get("services") or {})
    patch["services"] = {**(new.get("services") or {}), **dict.fromkeys(gone)}
    return patch
