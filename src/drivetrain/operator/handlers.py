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
* RLRuns (``kube.rlrun``) are reconciled on their own events and on those of their RayJob,
  RayCluster and graphs (found by the run label).  A run waiting for its graphs' gates is
  looked at again after ``run_poll_s`` (pods and the frontend's answer are not watched), from
  memory: a timer writes nothing.
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
from drivetrain.kube.resources import RLRunResource, graph_resource
from drivetrain.kube.rlrun import reconcile_run
from drivetrain.render.naming import GRAPH_LABEL
from drivetrain.render.rlrun import RUN_LABEL

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
    #: how often a run waiting for its graphs' gates is looked at again
    run_poll_s: float = 5.0
    #: the pending look-again of each run (one per run)
    requeues: dict[Any, asyncio.Task[None]] = field(default_factory=dict)
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


async def _fetch_run(client: AsyncClient, namespace: str, name: str) -> dict | None:
    try:
        obj = await client.get(RLRunResource, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
    return {**obj.to_dict(), "kind": kinds.RLRUN.kind}


async def reconcile_rlrun(
    state: OperatorState, namespace: str, name: str, body: dict | None = None, delay: float = 0.0
) -> None:
    client = state.api()
    key = (kinds.RLRUN.kind, namespace, name)

    async def job(rerun: bool) -> None:
        current = body if body is not None and not rerun else None
        if current is None:
            current = await _fetch_run(client, namespace, name)
        if current is None or current["metadata"].get("deletionTimestamp"):
            return  # going away: the RayJob and, through it, the graphs go with it
        outcome = await reconcile_run(client, current, poll_s=state.run_poll_s)
        if outcome.requeue_after is not None:
            _requeue(state, key, outcome.requeue_after)

    await state.coalescer.run(key, job, delay)


def _requeue(state: OperatorState, key: Any, delay: float) -> None:
    pending = state.requeues.get(key)
    if pending is not None and not pending.done():
        return

    async def again() -> None:
        await asyncio.sleep(delay)
        state.requeues.pop(key, None)
        try:
            await reconcile_rlrun(state, key[1], key[2])
        except Exception as exc:  # no handler to retry it: look again later
            log.warning(
                "rlrun %s/%s: reconcile failed (%s); again in %gs", key[1], key[2], exc, delay
            )
            _requeue(state, key, delay)

    state.requeues[key] = asyncio.create_task(again())


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

    async def on_rlrun(type: str | None, body: Any, **_: Any) -> None:
        plain = _plain(body)
        meta = plain["metadata"]
        key = (kinds.RLRUN.kind, meta["namespace"], meta["name"])
        if type == "DELETED":
            pending = state.requeues.pop(key, None)
            if pending is not None:
                pending.cancel()
            return
        await reconcile_rlrun(state, meta["namespace"], meta["name"], {**plain, "kind": key[0]})

    async def on_run_member(body: Any, **_: Any) -> None:
        """A run's RayJob, RayCluster or graph changed: look at the run."""
        meta = body.get("metadata", {})
        run = (meta.get("labels") or {}).get(RUN_LABEL)
        if run:
            await reconcile_rlrun(state, meta["namespace"], run, delay=CHILD_DEBOUNCE_S)

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
    watch(kinds.RLRUN, on_rlrun)
    for member in (kinds.GRAPH, kinds.DYNAMO_GRAPH, kinds.RAY_JOB, kinds.RAY_CLUSTER):
        watch(member, on_run_member, labels={RUN_LABEL: kopf.PRESENT})


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
