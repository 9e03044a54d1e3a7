"""Is a graph ready to serve a training job?  Three gates, each a reason when it is closed.

1. **status**: the graph's controller reports ``state: successful`` for the current
   generation (``status.observedGeneration == metadata.generation``) with ``Ready=True``;
2. **pods**: every pod of the graph is Ready (at least one pod; a pod that finished, such as
   a trainer's that succeeded, or that is going away, is not waited for);
3. **frontend**: the frontend answers ``GET /v1/models`` through the API server's service
   proxy: 200 or 404 is a listener that is up, anything else (502, 503, refused) not yet.

They are checked in that order and the first closed one is reported.  The readings are pure
(``status_gate``, ``pods_gate``, ``probe_gate``); ``check_graph`` makes the three requests.
The operator gates an RLRun's RayJob on them and ``drivetrain apply --wait`` waits for them
(docs/rl.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient

from drivetrain.api.kinds import DYNAMO_GRAPH
from drivetrain.kube.lightkube_adapter import ApiError, TransportError, service_proxy_get
from drivetrain.kube.resources import PodResource
from drivetrain.render.naming import GRAPH_LABEL, service_slug
from drivetrain.render.workloads import FRONTEND_PORT

#: Dynamo's operator labels a DGD's pods with this (drivetrain's graphs: ``GRAPH_LABEL``).
DYNAMO_GRAPH_LABEL = "nvidia.com/dynamo-graph-deployment-name"
STATUS, PODS, FRONTEND = "status", "pods", "frontend"
#: How long one frontend probe may take.
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Gate:
    """The first closed gate of a graph (``gate`` and ``reason``), or ``ready``."""

    ready: bool
    gate: str = ""
    reason: str = ""
    #: the graph's controller says it failed: waiting longer will not help
    failed: bool = False

    @property
    def message(self) -> str:
        return "all gates passed" if self.ready else f"{self.gate}: {self.reason}"


OPEN = Gate(True)


def status_gate(graph: dict[str, Any]) -> Gate:
    meta = graph.get("metadata") or {}
    status = graph.get("status") or {}
    state = status.get("state") or "not reported yet"
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    if not status.get("state"):
        return Gate(False, STATUS, "no status yet (is the graph's operator running?)")
    if state == "failed":
        why = ready.get("message") or ready.get("reason") or "no reason given"
        return Gate(False, STATUS, f"state is failed: {why}", failed=True)
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is None or observed != generation:
        return Gate(
            False, STATUS, f"generation {generation} not observed yet (observed {observed})"
        )
    if state != "successful":
        return Gate(False, STATUS, f"state is {state}")
    if ready.get("status") != "True":
        why = ready.get("message") or ready.get("reason") or "no Ready condition"
        return Gate(False, STATUS, f"Ready is not True: {why}")
    return OPEN


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pods_gate(pods: list[dict[str, Any]]) -> Gate:
    if not pods:
        return Gate(False, PODS, "no pods yet")
    waited = [
        p
        for p in pods
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    not_ready = sorted(p["metadata"]["name"] for p in waited if not _pod_ready(p))
    if not_ready:
        shown = ", ".join(not_ready[:3]) + (
            f" and {len(not_ready) - 3} more" if len(not_ready) > 3 else ""
        )
        return Gate(
            False, PODS, f"{len(waited) - len(not_ready)}/{len(waited)} pods ready ({shown} not)"
        )
    return OPEN


def probe_gate(code: int | None, error: str = "") -> Gate:
    """The frontend probe's answer: an HTTP status, or ``error`` when there was none."""
    if code in (200, 404):
        return OPEN  # 404: the listener is up, only the path is not served
    if code is None:
        return Gate(False, FRONTEND, f"GET /v1/models did not get through: {error}")
    if code == 403:
        return Gate(
            False, FRONTEND, "the API server refused the service proxy (403): services/proxy get"
        )
    return Gate(False, FRONTEND, f"GET /v1/models through the service proxy answered {code}")


def pod_selector(graph: dict[str, Any]) -> dict[str, str]:
    """The label that marks the graph's pods (drivetrain's, or Dynamo's operator's)."""
    label = DYNAMO_GRAPH_LABEL if graph.get("kind") == DYNAMO_GRAPH.kind else GRAPH_LABEL
    return {label: graph["metadata"]["name"]}


def frontend_service(graph: dict[str, Any]) -> str | None:
    """The frontend's Service name, ``<graph>-<service>``, as both renderers name it."""
    services = ((graph.get("spec") or {}).get("services")) or {}
    for key, svc in services.items():
        if isinstance(svc, dict) and svc.get("componentType") == "frontend":
            return f"{graph['metadata']['name']}-{service_slug(key)}"
    return None


async def check_graph(client: AsyncClient, graph: dict[str, Any]) -> Gate:
    """The three gates of a live graph, in order (a graph without a frontend has two)."""
    gate = status_gate(graph)
    if not gate.ready:
        return gate
    namespace = graph["metadata"]["namespace"]
    labels: dict[str, Any] = dict(pod_selector(graph))
    pods = [p.to_dict() async for p in client.list(PodResource, namespace=namespace, labels=labels)]
    gate = pods_gate(pods)
    if not gate.ready:
        return gate
    service = frontend_service(graph)
    if service is None:
        return OPEN
    try:
        code = await service_proxy_get(
            client, namespace, service, FRONTEND_PORT, "v1/models", PROBE_TIMEOUT_S
        )
    except TransportError as exc:
        return probe_gate(None, str(exc) or type(exc).__name__)
    except ApiError as exc:  # pragma: no cover - the proxy answers with a status, not an error
        return probe_gate(exc.status.code)
    return probe_gate(code)
