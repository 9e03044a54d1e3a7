"""``render_graph``: a validated graph in, the list of Kubernetes objects out (pure)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.models import Deployer, GraphDeployment
from drivetrain.render import companions, external, rbac, workloads
from drivetrain.render.pod import service_engine
from drivetrain.render.profiles import DRIVETRAIN, KUBERNETES_SCHEME, profile_of


def spec_deployer(graph: GraphDeployment) -> Deployer | None:
    """The multinode deployer the spec names, if any (validation makes them agree)."""
    for svc in graph.spec.services.values():
        if svc.multinode and svc.multinode.deployer:
            return svc.multinode.deployer
    return None


def graph_needs_multinode(graph: GraphDeployment) -> bool:
    """Whether a multinode API (LWS or Grove) must serve the graph: a multinode trainer is an
    Indexed Job, which every cluster has."""
    return any(
        svc.node_count > 1 and not workloads.is_trainer(graph, name)
        for name, svc in graph.spec.services.items()
    )


def choose_deployer(graph: GraphDeployment, requested: str | None) -> Deployer:
    """The caller's explicit choice wins, then the spec's, then LeaderWorkerSet."""
    choice = requested or spec_deployer(graph) or Deployer.lws
    try:
        return Deployer(choice)
    except ValueError:
        expected = " or ".join(Deployer)
        raise InvalidGraph(
            [FieldError("", f"unknown multinode deployer {choice!r} (expected {expected})")]
        ) from None


def _pvcs(graph: GraphDeployment, namespace: str) -> list[dict[str, Any]]:
    out = []
    errors = []
    for i, pvc in enumerate(graph.spec.pvcs or []):
        if not pvc.create:
            continue
        missing = [f for f in ("size", "storageClass", "volumeAccessMode") if not getattr(pvc, f)]
        if missing:
            errors.append(FieldError(f"spec.pvcs[{i}]", f"create: true needs {', '.join(missing)}"))
            continue
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": workloads.object_meta(graph, pvc.name, namespace),
                "spec": {
                    "accessModes": [pvc.volumeAccessMode],
                    "storageClassName": pvc.storageClass,
                    "resources": {"requests": {"storage": pvc.size}},
                },
            }
        )
    if errors:
        raise InvalidGraph(errors)
    return out


def _mpi_secrets(graph: GraphDeployment, namespace: str) -> list[dict[str, Any]]:
    """The MPI SSH Secret's placeholder when a service runs TRT-LLM over several nodes."""
    for name, svc in graph.spec.services.items():
        if svc.node_count > 1 and service_engine(graph, name) == "trtllm":
            return [companions.mpi_secret_placeholder(graph, namespace)]
    return []


def _discovery_namespace(graph: GraphDeployment, namespace: str) -> list[FieldError]:
    """``kubernetes://NS`` naming another namespace than the pods': a worker publishes its
    WorkerEndpoint beside its pod (it is owned by the pod), so it would refuse to start."""
    url = graph.spec.discovery or ""
    if profile_of(graph) is not DRIVETRAIN or not url.startswith(KUBERNETES_SCHEME):
        return []
    named = url[len(KUBERNETES_SCHEME) :].strip("/")
    workers = [n for n, s in graph.spec.services.items() if s.is_worker]
    if named and named != namespace and workers:
        return [
            FieldError(
                "spec.discovery",
                f"{url} names namespace {named!r}, but the graph's pods run in {namespace!r}: "
                "a worker publishes its WorkerEndpoint beside its own pod (docs/discovery.md)",
            )
        ]
    return []


def render_graph(
    graph: GraphDeployment,
    *,
    namespace: str = "default",
    multinode: str | None = None,
    provided: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Every Kubernetes object the graph needs in ``namespace``, in apply order.

    The order follows Dynamo's reconcile (docs/rendering.md): the pods' RBAC first (a pod
    naming a ServiceAccount that does not exist yet is refused), PVCs, the MPI SSH Secret, the
    workloads with what they mount, then the Services.

    Each pod template lists, in the ``drivetrain.dev/external-refs`` annotation, the Secrets,
    ConfigMaps, PVCs... its pods reference that are neither rendered here nor ``provided``
    (tokens such as ``configmap/x`` of the objects written beside the graph;
    ``render/external.py``).

    Raises ``InvalidGraph`` (with every problem found across services) when the graph
    cannot be rendered: an undeterminable or mismatched engine, a missing mount point...
    """
    deployer = choose_deployer(graph, multinode)
    objects: list[dict[str, Any]] = list(_pvcs(graph, namespace))
    errors: list[FieldError] = _discovery_namespace(graph, namespace)

    def attempt(produce: Any, *args: Any) -> Any:
        try:
            return produce(*args)
        except InvalidGraph as exc:
            errors.extend(exc.errors)
            return None

    trainers = [n for n in graph.spec.services if workloads.is_trainer(graph, n)]
    if deployer is Deployer.grove and len(trainers) < len(graph.spec.services):
        pcs = attempt(workloads.pod_clique_set, graph, namespace)
        if pcs:
            objects += pcs
    elif deployer is not Deployer.grove:
        for name, svc in graph.spec.services.items():
            if name in trainers:
                continue
            produce = workloads.leader_worker_set if svc.node_count > 1 else workloads.deployment
            made = attempt(produce, graph, name, namespace)
            if made:
                objects += made
    for name in trainers:
        made = attempt(workloads.trainer_job, graph, name, namespace)
        if made:
            objects += made
    for name in graph.spec.services:
        made = attempt(workloads.checkpoint_job, graph, name, namespace)
        if made:
            objects += made
    for name in graph.spec.services:
        svc_obj = workloads.service(graph, name, namespace)
        if svc_obj:
            objects.append(svc_obj)
    objects += companions.model_services(graph, namespace)
    if errors:
        # The same engine error is found once per role; report it once.
        unique = list(dict.fromkeys(errors))
        raise InvalidGraph(unique)
    pods_rbac = rbac.render_rbac(graph, namespace, objects)
    secrets = _mpi_secrets(graph, namespace)
    pvcs = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    rest = [o for o in objects if o["kind"] != "PersistentVolumeClaim"]
    # Last: what is external depends on every object rendered above.
    return external.declare(workloads.dedupe([*pods_rbac, *pvcs, *secrets, *rest]), provided)
