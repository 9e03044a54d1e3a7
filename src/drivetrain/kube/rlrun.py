"""One reconcile of one RLRun: the RayJob first and suspended, the graphs owned by it, the
three gates, then the release; the run's status from what is live (docs/rl.md).

Level-triggered, like the graph reconcile: each run reads the RLRun, its Ray object and its
graphs and acts on the difference, so a reconcile with nothing to do writes nothing (the
graphs carry the hash of what was applied; the status and its Events are written only when
they change).  What happens, in order:

1. **Parse** the run as the cluster holds it (``parse_applied_run``): an invalid spec fails
   the run (``InvalidSpec``) and creates nothing.
2. **Ray object**: the RayJob (raycluster mode: the RayCluster) is created first, RayJobs with
   ``suspend: true``, owned by the RLRun (``controller: true``).  It is created once: a Ray
   object that is gone later (deleted by hand) fails the run instead of starting it again.
3. **Graphs**, each owned only by the Ray object (``controller: false, blockOwnerDeletion:
   false``: the graph's controller is its own operator, and the garbage collector removes an
   object only when every owner is gone, so RLRun → RayJob → graph is the chain that takes
   everything down).  A graph of that name that is not the Ray object's is never adopted: the
   run fails.
4. **Gates** (``kube.gates``) while the RayJob is suspended; a graph that does not pass them
   within its ``readyTimeoutS`` (counted from its creation) fails the run, which names the gate
   and why, and leaves the RayJob suspended and every object in place.  Once every graph
   passes, the RayJob is unsuspended (raycluster mode: the run is Ready).
5. **After**: the RayCluster named by the RayJob's ``status.rayClusterName`` is reported,
   also while KubeRay has published the name but not created the object yet; when the RayJob
   reaches ``Complete`` or ``Failed`` the graphs are deleted at once (unless ``keepGraphs``),
   and the run is Succeeded or Failed for good.
"""

from __future__ import annotations

import copy
import datetime
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient, codecs
from lightkube.types import CascadeType, PatchType

from drivetrain.api.enums import RayMode
from drivetrain.api.rlrun import RLRun
from drivetrain.api.rlrun_validate import RunGraph, parse_applied_run
from drivetrain.kube import events, gates
from drivetrain.kube.children import HASH_ANNOTATION, desired_hash, owner_reference
from drivetrain.kube.client import FIELD_MANAGER
from drivetrain.kube.lightkube_adapter import ApiError
from drivetrain.kube.readiness import condition, status_changed
from drivetrain.kube.resources import (
    RAY_RESOURCES,
    RLRunResource,
    applied_form,
    graph_resource,
)
from drivetrain.render.rlrun import (
    ADMIN_TOKEN_KEY,
    RUN_LABEL,
    admin_token_secret,
    frontend_url,
    render_run,
)

log = logging.getLogger("drivetrain.operator")

PENDING, WAITING, RUNNING, SUCCEEDED, FAILED = (
    "Pending",
    "WaitingForGraphs",
    "Running",
    "Succeeded",
    "Failed",
)
PHASES = (PENDING, WAITING, RUNNING, SUCCEEDED, FAILED)
TERMINAL = (SUCCEEDED, FAILED)
#: KubeRay's terminal ``jobDeploymentStatus`` values.
RAYJOB_TERMINAL = ("Complete", "Failed")
INVALID_SPEC = "InvalidSpec"
GRAPHS_READY, READY = "GraphsReady", "Ready"
#: Status fields this operator owns.
STATUS_FIELDS = (
    "observedGeneration",
    "phase",
    "reason",
    "message",
    "graphs",
    "rayJob",
    "rayCluster",
    "conditions",
)


@dataclass
class RunOutcome:
    status: dict[str, Any]
    #: seconds after which to look again (gates cannot be watched), or None
    requeue_after: float | None = None
    #: what this reconcile did, for the log
    actions: list[str] = field(default_factory=list)


def graph_owner_reference(ray: dict[str, Any]) -> dict[str, Any]:
    """A graph's one owner: the Ray object, not as controller (the graph's own operator is)."""
    return {**owner_reference(ray), "controller": False, "blockOwnerDeletion": False}


def owns(obj: dict[str, Any], owner_uid: str, controller: bool | None = None) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(
        r.get("uid") == owner_uid
        and (controller is None or bool(r.get("controller")) == controller)
        for r in refs
    )


def _as_dict(obj: Any, kind: str | None = None) -> dict[str, Any]:
    out = obj if isinstance(obj, dict) else obj.to_dict()
    if kind:
        out.setdefault("kind", kind)
    return out


def _created_at(obj: dict[str, Any]) -> float | None:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return None
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return when.timestamp()


class _Reconcile:
    """The state of one reconcile (one RLRun), so each step is a method of its own."""

    def __init__(self, client: AsyncClient, body: dict[str, Any], now: float, poll_s: float):
        self.client = client
        self.body = body
        meta = body["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.generation = meta.get("generation")
        self.previous: dict[str, Any] = body.get("status") or {}
        self.now = now
        self.poll_s = poll_s
        self.actions: list[str] = []
        self.events: list[tuple[str, str, str]] = []  # (reason, message, type)
        self.failure: tuple[str, str] | None = None  # (reason, message)
        self.graph_status: dict[str, dict[str, Any]] = {}
        self.requeue: float | None = None

    # -------------------------------------------------------------------------- reads/writes

    async def get(self, resource: Any, name: str, kind: str) -> dict[str, Any] | None:
        try:
            return _as_dict(await self.client.get(resource, name, namespace=self.namespace), kind)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        applied = await self.client.apply(
            codecs.from_dict(obj), field_manager=FIELD_MANAGER, force=True
        )
        return _as_dict(applied, obj["kind"])

    async def delete(self, resource: Any, name: str) -> None:
        try:
            await self.client.delete(
                resource, name, namespace=self.namespace, cascade=CascadeType.BACKGROUND
            )
        except ApiError as exc:
            if exc.status.code != 404:
                raise

    def fail(self, reason: str, message: str) -> None:
        if self.failure is None:
            self.failure = (reason, message)

    # -------------------------------------------------------------------------- the steps

    def finished(self) -> bool:
        """A run that ended stays ended (a spec that was invalid from the start may be fixed)."""
        return (
            self.previous.get("phase") in TERMINAL and self.previous.get("reason") != INVALID_SPEC
        )

    def may_create_ray(self) -> bool:
        return self.previous.get("phase") in (None, "", PENDING) or (
            self.previous.get("reason") == INVALID_SPEC
        )

    async def ray_object(self, run: RLRun, desired: dict[str, Any]) -> dict[str, Any] | None:
        resource = RAY_RESOURCES[run.ray_kind]
        live = await self.get(resource, run.ray_name, run.ray_kind)
        if live is None:
            if not self.may_create_ray():
                self.fail(
                    "RayObjectGone",
                    f"{run.ray_kind} {run.ray_name} is gone (deleted while the run was on); the "
                    "run stops rather than start it again",
                )
                return None
            if not run.spec.adminTokenSecret:
                await self.admin_secret(run)
            obj = copy.deepcopy(desired)
            obj["metadata"]["ownerReferences"] = [owner_reference(self.body)]
            live = await self.apply(obj)
            suspended = " suspended" if run.mode is RayMode.rayjob else ""
            self.actions.append(f"created {run.ray_kind} {run.ray_name}{suspended}")
            self.events.append(
                ("Created", f"{run.ray_kind} {run.ray_name} created{suspended}", "Normal")
            )
        elif not owns(live, self.uid, controller=True):
            self.fail(
                "RayObjectConflict",
                f"{run.ray_kind} {run.ray_name} exists and is not this run's (a run never adopts "
                "an object it did not create)",
            )
            return None
        return live

    async def admin_secret(self, run: RLRun) -> None:
        """The run's RL API token (docs/rl.md): a random one, made once with the Ray object and
        owned by the run; one that exists already (a retry, a person's) is kept as it is.  Only
        ``create`` is needed (the operator may not read Secrets by any name)."""
        name = admin_token_secret(run)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {**(run.spec.labels or {}), RUN_LABEL: run.name},
                "ownerReferences": [owner_reference(self.body)],
            },
            "type": "Opaque",
            "stringData": {ADMIN_TOKEN_KEY: secrets.token_urlsafe(32)},
        }
        try:
            await self.client.create(codecs.from_dict(secret))
        except ApiError as exc:
            if exc.status.code == 409:
                return
            raise
        self.actions.append(f"created Secret {name}")
        self.events.append(("Created", f"Secret {name} created (the RL API's token)", "Normal"))

    async def graphs(
        self,
        run: RLRun,
        graphs: dict[str, RunGraph],
        desired: dict[str, dict[str, Any]],
        ray: dict[str, Any],
        free: bool,
    ) -> dict[str, dict[str, Any] | None]:
        """Create or update each graph, or (``free``: the job ended) delete it unless
        ``keepGraphs``; the live graphs by key."""
        ray_uid = ray["metadata"]["uid"]
        live_graphs: dict[str, dict[str, Any] | None] = {}
        freed = []
        for key, graph in graphs.items():
            resource = graph_resource(graph.graph.kind)
            live = await self.get(resource, graph.name, graph.graph.kind)
            if free:
                if live is not None and owns(live, ray_uid) and not run.spec.keepGraphs:
                    await self.delete(resource, graph.name)
                    freed.append(graph.name)
                    live = None
                live_graphs[key] = live
                continue
            obj = copy.deepcopy(desired[key])
            obj["metadata"]["ownerReferences"] = [graph_owner_reference(ray)]
            wanted = desired_hash(obj)
            obj["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = wanted
            if live is not None and not owns(live, ray_uid):
                self.fail(
                    "GraphConflict",
                    f"{graph.graph.kind} {graph.name} (graph {key}) exists and is not this "
                    f"run's {run.ray_kind}'s (a run never adopts a graph it did not create)",
                )
                live_graphs[key] = None
                continue
            have = ((live or {}).get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
            if live is None or have != wanted:
                verb = "created" if live is None else "updated"
                live = await self.apply(obj)
                self.actions.append(f"{verb} {graph.graph.kind} {graph.name}")
                if verb == "created":
                    self.events.append(
                        (
                            "Created",
                            f"{graph.graph.kind} {graph.name} (graph {key}) created",
                            "Normal",
                        )
                    )
            live_graphs[key] = live
        if freed:
            self.actions.append(f"deleted graphs {', '.join(freed)}")
            self.events.append(
                ("GraphsDeleted", f"the job ended: deleted {', '.join(freed)}", "Normal")
            )
        return live_graphs

    async def gates(
        self, graphs: dict[str, RunGraph], live: dict[str, dict[str, Any] | None]
    ) -> bool:
        """Check every graph's gates; fail the run on a timeout; True when all passed."""
        all_open = True
        soonest: float | None = None
        for key, graph in graphs.items():
            obj = live.get(key)
            gate = (
                gates.Gate(False, gates.STATUS, "not created")
                if obj is None
                else await gates.check_graph(self.client, obj)
            )
            self.graph_status[key]["ready"] = gate.ready
            self.graph_status[key]["gate"] = gate.gate
            self.graph_status[key]["message"] = gate.message
            if gate.ready:
                continue
            all_open = False
            if gate.failed:
                self.fail("GraphFailed", f"graph {key} ({graph.name}): {gate.message}")
                continue
            created = _created_at(obj) if obj is not None else None
            waited = self.now - created if created is not None else 0.0
            left = graph.ready_timeout_s - waited
            if left <= 0:
                self.fail(
                    "GateTimedOut",
                    f"graph {key} ({graph.name}) did not pass its {gate.gate} gate within "
                    f"readyTimeoutS={graph.ready_timeout_s}: {gate.reason}",
                )
            else:
                soonest = min(left, soonest if soonest is not None else left)
        if not all_open and self.failure is None:
            self.requeue = min(self.poll_s, soonest if soonest is not None else self.poll_s)
        return all_open

    async def release(self, run: RLRun, ray: dict[str, Any]) -> None:
        await self.client.patch(
            RAY_RESOURCES[run.ray_kind],
            run.ray_name,
            {"spec": {"suspend": False}},
            namespace=self.namespace,
            patch_type=PatchType.MERGE,
        )
        self.actions.append(f"unsuspended RayJob {run.ray_name}")
        self.events.append(
            (
                "Released",
                f"every graph passed its gates: RayJob {run.ray_name} unsuspended",
                "Normal",
            )
        )

    async def ray_cluster(self, ray: dict[str, Any], run: RLRun) -> dict[str, Any]:
        """The RayCluster of a RayJob, tolerating a name KubeRay published before the object."""
        name = ((ray.get("status") or {}).get("rayClusterName")) or ""
        if not name:
            return {}
        cluster = await self.get(RAY_RESOURCES["RayCluster"], name, "RayCluster")
        if cluster is None:
            self.requeue = min(self.requeue or self.poll_s, self.poll_s)
            return {"name": name, "state": "not created yet"}
        return {"name": name, "state": (cluster.get("status") or {}).get("state") or "starting"}


def _ray_job_status(ray: dict[str, Any] | None, name: str) -> dict[str, Any]:
    status = (ray or {}).get("status") or {}
    out: dict[str, Any] = {
        "name": name,
        "suspended": bool(((ray or {}).get("spec") or {}).get("suspend")),
        "jobDeploymentStatus": status.get("jobDeploymentStatus", ""),
        "jobStatus": status.get("jobStatus", ""),
    }
    if status.get("message"):
        out["message"] = status["message"]
    return out


def _outcome_of_job(ray: dict[str, Any]) -> tuple[str, str, str] | None:
    """(phase, reason, message) of a RayJob that ended, else None."""
    status = ray.get("status") or {}
    deployment, job = status.get("jobDeploymentStatus"), status.get("jobStatus") or ""
    if deployment not in RAYJOB_TERMINAL:
        return None
    detail = status.get("message") or status.get("reason") or ""
    if deployment == "Complete" and job in ("SUCCEEDED", ""):
        return SUCCEEDED, "JobSucceeded", "the Ray job succeeded"
    why = f"RayJob {deployment}, job {job or 'status unknown'}" + (f": {detail}" if detail else "")
    return FAILED, "JobFailed", why


async def reconcile_run(
    client: AsyncClient,
    body: dict[str, Any],
    *,
    poll_s: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> RunOutcome:
    """Make the cluster match ``body`` (a live RLRun) and write its status (see module doc)."""
    r = _Reconcile(client, body, clock(), poll_s)
    run, graphs, errors = parse_applied_run(applied_form(body))
    if run is None and r.finished():
        return RunOutcome(copy.deepcopy(r.previous))  # an edit after the end changes nothing
    if run is None:
        message = "; ".join(str(e).replace("<input>: ", "", 1) for e in errors)
        status = _status(r, PENDING, {}, None, {})
        status.update(phase=FAILED, reason=INVALID_SPEC, message=message)
        status["conditions"] = _conditions(r, FAILED, INVALID_SPEC, message, False)
        return await _write(r, status)
    rendered = render_run(run, graphs, namespace=r.namespace)
    for key, graph in graphs.items():
        r.graph_status[key] = {
            "kind": graph.graph.kind,
            "name": graph.name,
            "frontendURL": frontend_url(graph.graph, r.namespace) or "",
        }
    if r.finished():
        return await _after_the_end(r, run, graphs, rendered.graphs)
    ray = await r.ray_object(run, rendered.ray)
    if ray is None:
        return await _write(r, _status(r, FAILED, graphs, None, {}, run))
    rayjob = run.mode is RayMode.rayjob
    ended = _outcome_of_job(ray) if rayjob else None
    live = await r.graphs(run, graphs, rendered.graphs, ray, free=ended is not None)
    _graph_states(r, live, ended is not None)
    if rayjob:
        released = not (ray.get("spec") or {}).get("suspend", False)
    else:
        released = r.previous.get("phase") == RUNNING
    if released or ended is not None:
        _carry_gates(r, graphs)
    elif r.failure is None and await r.gates(graphs, live):
        if rayjob:
            await r.release(run, ray)
        else:
            message = "every graph passed its gates: the RayCluster's graphs serve"
            r.events.append(("Ready", message, "Normal"))
        released = True
    cluster = await r.ray_cluster(ray, run) if rayjob else {}
    if r.failure is not None:
        phase = FAILED
    elif ended is not None:
        phase = ended[0]
    else:
        phase = RUNNING if released else WAITING
    return await _write(r, _status(r, phase, graphs, ray, cluster, run, ended))


def _graph_states(r: _Reconcile, live: dict[str, dict[str, Any] | None], freed: bool) -> None:
    for key, obj in live.items():
        state = ((obj or {}).get("status") or {}).get("state")
        r.graph_status[key]["state"] = state or ("deleted" if obj is None and freed else "")


def _carry_gates(r: _Reconcile, graphs: dict[str, RunGraph]) -> None:
    """After the release the gates are not checked again: each graph keeps what it showed."""
    before = r.previous.get("graphs") or {}
    for key in graphs:
        old = before.get(key) or {}
        r.graph_status[key]["ready"] = old.get("ready", True)
        r.graph_status[key]["gate"] = old.get("gate", "")
        r.graph_status[key]["message"] = old.get("message", "all gates passed")


async def _after_the_end(
    r: _Reconcile, run: RLRun, graphs: dict[str, RunGraph], desired: dict[str, dict[str, Any]]
) -> RunOutcome:
    """A run that ended stays as it ended; only a RayJob that finished since frees the graphs
    (a run failed at a gate keeps its suspended RayJob and its graphs, for a person to look)."""
    status = copy.deepcopy(r.previous)
    if run.mode is not RayMode.rayjob:
        return RunOutcome(status)
    ray = await r.get(RAY_RESOURCES[run.ray_kind], run.ray_name, run.ray_kind)
    if ray is None or _outcome_of_job(ray) is None:
        return RunOutcome(status)
    live = await r.graphs(run, graphs, desired, ray, free=True)
    for key, obj in live.items():
        entry = status.setdefault("graphs", {}).setdefault(key, {})
        if obj is None:
            entry["state"] = "deleted"
    status["rayJob"] = _ray_job_status(ray, run.ray_name)
    return await _write(r, status)


def _message(r: _Reconcile, phase: str, graphs: dict[str, RunGraph], ended: Any) -> tuple[str, str]:
    if r.failure is not None:
        return r.failure
    if ended is not None:
        return ended[1], ended[2]
    if phase == WAITING:
        waiting = [
            f"{key} ({g.name}) {r.graph_status[key].get('message', '')}"
            for key, g in graphs.items()
            if not r.graph_status[key].get("ready")
        ]
        return "WaitingForGraphs", "waiting for graph " + "; ".join(waiting)
    if phase == RUNNING:
        return "Running", "every graph passed its gates; the Ray job runs"
    return phase, ""


def _conditions(
    r: _Reconcile, phase: str, reason: str, message: str, graphs_open: bool
) -> list[dict[str, Any]]:
    ready = phase == RUNNING
    graphs_reason = (
        "AllGatesPassed" if graphs_open else (reason if phase == FAILED else "WaitingForGraphs")
    )
    return [
        condition(
            "True" if graphs_open else "False",
            graphs_reason,
            "every graph passed its gates" if graphs_open else message,
            r.generation,
            r.previous,
            GRAPHS_READY,
        ),
        condition(
            "True" if ready else "False",
            phase if not ready else "Running",
            message,
            r.generation,
            r.previous,
            READY,
        ),
    ]


def _status(
    r: _Reconcile,
    phase: str,
    graphs: dict[str, RunGraph],
    ray: dict[str, Any] | None,
    cluster: dict[str, Any],
    run: RLRun | None = None,
    ended: Any = None,
) -> dict[str, Any]:
    reason, message = _message(r, phase, graphs, ended)
    graphs_open = bool(graphs) and all(r.graph_status[k].get("ready") for k in graphs)
    status: dict[str, Any] = {
        "observedGeneration": r.generation,
        "phase": phase,
        "reason": reason,
        "message": message,
        "graphs": {k: r.graph_status[k] for k in graphs},
    }
    if run is not None and run.mode is RayMode.rayjob:
        status["rayJob"] = _ray_job_status(ray, run.ray_name)
        status["rayCluster"] = cluster
    elif run is not None:
        state = ((ray or {}).get("status") or {}).get("state") or ("starting" if ray else "")
        status["rayCluster"] = {"name": run.ray_name, "state": state}
    status["conditions"] = _conditions(r, phase, reason, message, graphs_open)
    return status


async def _write(r: _Reconcile, status: dict[str, Any]) -> RunOutcome:
    outcome = RunOutcome(status, r.requeue if status["phase"] not in TERMINAL else None, r.actions)
    if r.actions:
        log.info("rlrun %s/%s: %s", r.namespace, r.name, "; ".join(r.actions))
    if status_changed(r.previous, status):
        patch = dict(status)
        for gone in set(r.previous.get("graphs") or {}) - set(status.get("graphs") or {}):
            patch.setdefault("graphs", {})[gone] = None
        await r.client.patch(
            RLRunResource.Status,
            r.name,
            {"status": patch},
            namespace=r.namespace,
            patch_type=PatchType.MERGE,
        )
    if status["phase"] != r.previous.get("phase"):
        kind = "Warning" if status["phase"] == FAILED else "Normal"
        r.events.append((status["phase"], status["message"] or status["phase"], kind))
    for reason, message, kind in r.events:
        await events.post(
            r.client, {**r.body, "kind": r.body.get("kind", "RLRun")}, reason, message, kind
        )
    return outcome
