"""One reconcile of one graph: render, apply what changed, prune what went, compute status.

Level-triggered and idempotent: it reads the graph and its live children and makes the
cluster match, so running it again with nothing changed reads but writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient, codecs
from lightkube.types import CascadeType, PatchType

from drivetrain.api import InvalidGraph, parse_graph
from drivetrain.kube import multinode, readiness
from drivetrain.kube.children import Plan, child_key, owned, plan
from drivetrain.kube.client import FIELD_MANAGER
from drivetrain.kube.lightkube_adapter import ApiError
from drivetrain.kube.mpi_secret import ensure_mpi_secret
from drivetrain.kube.resources import CHILD_KINDS, applied_form, graph_resource
from drivetrain.render import render_graph
from drivetrain.render.companions import is_placeholder
from drivetrain.render.naming import GRAPH_LABEL

log = logging.getLogger("drivetrain.operator")

#: Status fields this operator owns (anything else under status is left alone).
STATUS_FIELDS = ("observedGeneration", "state", "conditions", "services")


@dataclass
class Outcome:
    status: dict[str, Any]
    plan: Plan = field(default_factory=Plan)
    status_written: bool = False


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else obj.to_dict()


async def list_children(
    client: AsyncClient, namespace: str, graph_name: str, groups: set[str]
) -> list[dict[str, Any]]:
    """Every object of a kind drivetrain renders that carries the graph's label."""
    out: list[dict[str, Any]] = []
    for kind in CHILD_KINDS.values():
        if kind.group is not None and kind.group not in groups:
            continue
        async for obj in client.list(
            kind.resource, namespace=namespace, labels={GRAPH_LABEL: graph_name}
        ):
            item = _as_dict(obj)
            item.setdefault("kind", kind.kind)
            out.append(item)
    return out


def _remember(generations: dict[str, int], obj: dict[str, Any], overwrite: bool = False) -> None:
    meta = obj.get("metadata", {})
    uid, generation = meta.get("uid"), meta.get("generation")
    if uid and generation is not None and (overwrite or uid not in generations):
        generations[uid] = int(generation)


async def reconcile(
    client: AsyncClient,
    body: dict[str, Any],
    groups: set[str],
    applied_generations: dict[str, int] | None = None,
) -> Outcome:
    """Make the cluster match ``body`` (a live GraphDeployment or DynamoGraphDeployment).

    ``applied_generations`` (child uid → generation after this process's apply) is the
    operator's memory for drift detection (``children.drifted``); it is updated in place.
    """
    generations = applied_generations if applied_generations is not None else {}
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    generation = meta.get("generation")
    previous = body.get("status") or {}

    try:
        graph = parse_graph(applied_form(body))
        choice = multinode.choose(graph, groups)
        if choice.problem:
            status = readiness.failed_status(
                "MultinodeAPIUnavailable", choice.problem, generation, previous
            )
            return await _write_status(client, body, status, Outcome(status))
        assert choice.deployer is not None
        rendered = render_graph(graph, namespace=namespace, multinode=choice.deployer)
    except InvalidGraph as exc:
        message = "; ".join(str(e).replace("<input>: ", "", 1) for e in exc.errors)
        status = readiness.failed_status("InvalidSpec", message, generation, previous)
        return await _write_status(client, body, status, Outcome(status))

    # A placeholder (the MPI SSH Secret) is not applied: the operator makes the real object
    # once per namespace and never rewrites it (kube/mpi_secret.py).
    for obj in (o for o in rendered if is_placeholder(o)):
        if obj["kind"] == "Secret":
            await ensure_mpi_secret(client, obj["metadata"]["name"], namespace)
    desired = owned([o for o in rendered if not is_placeholder(o)], body)
    live = await list_children(client, namespace, name, groups)
    todo = plan(desired, live, uid, generations)
    current = {child_key(o): o for o in todo.unchanged}
    for obj in todo.unchanged:  # adopt what a previous operator process applied
        _remember(generations, obj)
    live_keys = {child_key(o) for o in live}
    for obj in todo.apply:
        kind = CHILD_KINDS[obj["kind"]]
        if kind.recreate and child_key(obj) in live_keys:
            await _delete(client, obj, namespace)
        applied = await client.apply(codecs.from_dict(obj), field_manager=FIELD_MANAGER, force=True)
        current[child_key(obj)] = {**_as_dict(applied), "kind": obj["kind"]}
        _remember(generations, current[child_key(obj)], overwrite=True)
    for obj in todo.delete:
        generations.pop(obj["metadata"].get("uid", ""), None)
        await _delete(client, obj, namespace)
    if todo.writes:
        log.info(
            "graph %s/%s: applied %s, deleted %s",
            namespace,
            name,
            [child_key(o) for o in todo.apply],
            [child_key(o) for o in todo.delete],
        )

    children = {
        svc: readiness.child_status(current.get((kind, child)), kind, child)
        for svc, (kind, child) in readiness.service_children(graph, choice.deployer).items()
    }
    status = readiness.graph_status(children, generation, previous)
    return await _write_status(client, body, status, Outcome(status, todo))


async def _delete(client: AsyncClient, obj: dict[str, Any], namespace: str) -> None:
    try:
        # Background: the object goes now, the garbage collector takes its pods after.
        await client.delete(
            CHILD_KINDS[obj["kind"]].resource,
            obj["metadata"]["name"],
            namespace=namespace,
            cascade=CascadeType.BACKGROUND,
        )
    except ApiError as exc:
        if exc.status.code != 404:  # already gone is what we wanted
            raise


async def _write_status(
    client: AsyncClient, body: dict[str, Any], status: dict[str, Any], outcome: Outcome
) -> Outcome:
    previous = body.get("status") or {}
    if not readiness.status_changed(previous, status):
        return outcome
    meta = body["metadata"]
    await client.patch(
        graph_resource(body["kind"]).Status,
        meta["name"],
        {"status": readiness.status_patch(previous, status)},
        namespace=meta["namespace"],
        patch_type=PatchType.MERGE,
    )
    outcome.status_written = True
    return outcome
