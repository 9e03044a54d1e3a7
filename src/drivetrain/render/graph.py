"""``render_graph``: a validated graph in, the list of Kubernetes objects out (pure)."""

from __future__ import annotations

from typing import Any

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.models import Deployer, GraphDeployment
from drivetrain.render import workloads


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


def render_graph(
    graph: GraphDeployment, *, namespace: str = "default", multinode: str | None = None
) -> list[dict[str, Any]]:
    """Every Kubernetes object the graph needs in ``namespace``, in apply order.

    Raises ``InvalidGraph`` (with every problem found across services) when the graph
    cannot be rendered: an undeterminable or mismatched engine, a missing mount point...
    """
    deployer = choose_deployer(graph, multinode)
    objects: list[dict[str, Any]] = list(_pvcs(graph, namespace))
    errors: list[FieldError] = []

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
        svc_obj = workloads.service(graph, name, namespace)
        if svc_obj:
            objects.append(svc_obj)
    if errors:
        # The same engine error is found once per role; report it once.
        unique = list(dict.fromkeys(errors))
        raise InvalidGraph(unique)
    return workloads.dedupe(objects)
