"""Names and labels of rendered objects (pure)."""

from __future__ import annotations

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
