"""kopf wiring: which events start a reconcile, and how reconciles of one graph are serialised.

Design (see docs/operator.md):

* ``on.event`` handlers only: no create/update/resume handlers means kopf writes nothing of
  its own (no last-handled-configuration annotation, no progress status, no finalizers), so
  a restarted operator that finds everything in place makes no write at all.  The reconcile
  is level-triggered; every event of the graph re-derives everything from live state.
* Children are watched too (Deployment, LeaderWorkerSet, PodCliqueSet, by the graph label)
  and mapped to their controller graph, so a rollout finishing updates the status at once
  instead of on a timer.  Deleted children are re-created the same way.
* Reconciles of one graph never overlap, and a burst of events while one runs collapses into
  one more run (``Coalescer``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import kopf
from lightkube import AsyncClient

from drivetrain.api import kinds
from drivetrain.kube.client import async_client
from drivetrain.kube.errors import cluster_errors, crd_missing
from drivetrain.kube.lightkube_adapter import ApiError, api_groups
from drivetrain.kube.reconcile import reconcile
from drivetrain.kube.resources import graph_resource
from drivetrain.render.naming import GRAPH_LABEL

log = logging.getLogger("drivetrain.operator")

OWNER_KINDS = set(kinds.GRAPH_KINDS)
#: How long the set of installed API groups is trusted (LWS or Grove may be installed later).
DISCOVERY_TTL_S = 30.0
#: Child events wait this long before reconciling their graph, so that the events of all of a
#: graph's children (a rollout touches several) cost one reconcile, not one each.
CHILD_DEBOUNCE_S = 0.2


class Coalescer:
    """Run at most one job per key at a time; requests during a run cause one more run."""

    def __init__(self) -> None:
        self._running: set[Any] = set()
        self._dirty: set[Any] = set()

    async def run(
        self, key: Any, job: Callable[[bool], Awaitable[None]], delay: float = 0.0
    ) -> None:
        """``job(rerun)``: ``rerun`` is True for a run caused by requests made meanwhile.

        ``delay`` holds the first run back so a burst of requests (the events of a graph's
        several children) is absorbed into it.
        """
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        try:
            rerun = False
            if delay:
                await asyncio.sleep(delay)
            while True:
                self._dirty.discard(key)
                await job(rerun)
                if key not in self._dirty:
                    return
                rerun = True
        finally:
            self._running.discard(key)


@dataclass
class OperatorState:
    claim_dynamo: bool = False
    client: AsyncClient | None = None
    coalescer: Coalescer = field(default_factory=Coalescer)
    #: child uid → generation after this process's apply (drift detection, see kube.children)
    applied_generations: dict[str, int] = field(default_factory=dict)
    _groups: set[str] = field(default_factory=set)
    _groups_at: float = -1e9

    def api(self) -> AsyncClient:
        if self.client is None:
            self.client = async_client()
        return self.client

    async def groups(self) -> set[str]:
        if time.monotonic() - self._groups_at > DISCOVERY_TTL_S:
            self._groups = await api_groups(self.api())
            self._groups_at = time.monotonic()
        return self._groups


def _plain(body: Any) -> dict[str, Any]:
    return json.loads(json.dumps(body, default=dict))


async def _fetch(client: AsyncClient, kind: str, namespace: str, name: str) -> dict | None:
    try:
        obj = await client.get(graph_resource(kind), name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
    return {**obj.to_dict(), "kind": kind}


async def reconcile_graph(
    state: OperatorState,
    kind: str,
    namespace: str,
    name: str,
    body: dict | None = None,
    delay: float = 0.0,
) -> None:
    client = state.api()

    async def job(rerun: bool) -> None:
        current = body if body is not None and not rerun else None
        if current is None:
            current = await _fetch(client, kind, namespace, name)
        if current is None or current["metadata"].get("deletionTimestamp"):
            return  # going away: ownerReferences take the children with it
        await reconcile(client, current, await state.groups(), state.applied_generations)

    await state.coalescer.run((kind, namespace, name), job, delay)


def register(registry: kopf.OperatorRegistry, state: OperatorState) -> None:
    """Add the operator's handlers to ``registry``."""

    async def on_graph(type: str | None, body: Any, **_: Any) -> None:
        if type == "DELETED":
            return
        plain = _plain(body)
        meta = plain["metadata"]
        await reconcile_graph(state, plain["kind"], meta["namespace"], meta["name"], plain)

    async def on_child(type: str | None, body: Any, **_: Any) -> None:
        meta = body.get("metadata", {})
        if type == "DELETED":
            state.applied_generations.pop(meta.get("uid", ""), None)
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") in OWNER_KINDS:
                if ref["kind"] == kinds.DYNAMO_GRAPH.kind and not state.claim_dynamo:
                    return
                await reconcile_graph(
                    state, ref["kind"], meta["namespace"], ref["name"], delay=CHILD_DEBOUNCE_S
                )
                return

    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    kopf.on.login(registry=registry)(login)

    def watch(rt: kinds.ResourceType, handler: Any, **filters: Any) -> None:
        kopf.on.event(rt.group, rt.version, rt.plural, registry=registry, **filters)(handler)

    watch(kinds.GRAPH, on_graph)
    if state.claim_dynamo:
        watch(kinds.DYNAMO_GRAPH, on_graph)
    for child in kinds.WORKLOADS:
        watch(child, on_child, labels={GRAPH_LABEL: kopf.PRESENT})


async def preflight(state: OperatorState) -> None:
    with cluster_errors():
        groups = await state.groups()
    if kinds.GRAPH.group not in groups:
        raise crd_missing(kinds.GRAPH.kind)


def settings(post_events: bool = True) -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.posting.enabled = post_events
    # kopf can post per-object log lines as Events (writes); only problems are posted, so a
    # graph in a steady state never causes one (the restart test runs with these settings).
    s.posting.level = logging.WARNING
    s.watching.server_timeout = 300
    # Errors are retried by the next event; kopf's own backoff would hold the handler.
    s.networking.error_backoffs = [1, 2, 5]
    return s


async def run(
    namespaces: list[str],
    claim_dynamo: bool,
    liveness: str | None = None,
    stop_flag: asyncio.Event | None = None,
) -> None:
    """The operator until stopped (``drivetrain operator``).

    Raises ``KubeError`` before starting kopf when the cluster cannot be reached or does not
    serve GraphDeployments (kopf itself would retry forever, logging tracebacks).
    """
    state = OperatorState(claim_dynamo=claim_dynamo)
    await preflight(state)
    registry = kopf.OperatorRegistry()
    register(registry, state)
    await kopf.operator(
        registry=registry,
        settings=settings(),
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        stop_flag=stop_flag,
        liveness_endpoint=liveness,
    )
