"""Names and labels of rendered objects (pure)."""

from __future__ import annotations

from typing import Any

from drivetrain.api.models import GraphDeployment

GRAPH_LABEL = "drivetrain.dev/graph"
SELECTOR_LABEL = "drivetrain.dev/selector"
ROLE_LABEL = "drivetrain.dev/role"


def service_slug(service_name: str) -> str:
    """Lowercase, dots to dashes: the form Kubernetes names accept."""
    return service_name.lower().replace(".", "-")


def resource_name(graph: GraphDeployment, service_name: str) -> str:
    """``<graph>-<service>``: the Deployment, LeaderWorkerSet and Service name."""
    return f"{graph.name}-{service_slug(service_name)}"


def object_meta(
    graph: GraphDeployment, name: str, namespace: str, service_name: str | None = None
) -> dict[str, Any]:
    """Metadata of a rendered object: the graph's (and the service's) labels and annotations,
    and ``drivetrain.dev/graph``."""
    labels = dict(graph.spec.labels or {})
    annotations = dict(graph.spec.annotations or {})
    if service_name is not None:
        svc = graph.spec.services[service_name]
        labels.update(svc.labels or {})
        annotations.update(svc.annotations or {})
    labels[GRAPH_LABEL] = graph.name
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return meta
