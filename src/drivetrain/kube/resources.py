"""The resource types drivetrain reads and writes, keyed by kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, PersistentVolumeClaim, Service

GraphDeploymentResource = create_namespaced_resource(
    "drivetrain.dev", "v1alpha1", "GraphDeployment", "graphdeployments"
)
DynamoGraphDeploymentResource = create_namespaced_resource(
    "nvidia.com", "v1alpha1", "DynamoGraphDeployment", "dynamographdeployments"
)
LeaderWorkerSet = create_namespaced_resource(
    "leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet", "leaderworkersets"
)
PodCliqueSet = create_namespaced_resource("grove.io", "v1alpha1", "PodCliqueSet", "podcliquesets")

LWS_GROUP = "leaderworkerset.x-k8s.io"
GROVE_GROUP = "grove.io"


@dataclass(frozen=True)
class ChildKind:
    kind: str
    resource: Any
    #: The API group that must be installed for this kind (None: built in).
    group: str | None = None
    #: Removed from the cluster when no longer rendered.  PVCs are not: they hold model
    #: caches and deleting one loses data a person may want back (they still go with the graph).
    prunable: bool = True
    #: Has replicas whose readiness makes the graph ready.
    workload: bool = False


CHILD_KINDS: dict[str, ChildKind] = {
    k.kind: k
    for k in (
        ChildKind("ConfigMap", ConfigMap),
        ChildKind("PersistentVolumeClaim", PersistentVolumeClaim, prunable=False),
        ChildKind("Deployment", Deployment, workload=True),
        ChildKind("LeaderWorkerSet", LeaderWorkerSet, group=LWS_GROUP, workload=True),
        ChildKind("PodCliqueSet", PodCliqueSet, group=GROVE_GROUP, workload=True),
        ChildKind("Service", Service),
    )
}


def graph_resource(kind: str) -> Any:
    return (
        DynamoGraphDeploymentResource
        if kind == "DynamoGraphDeployment"
        else GraphDeploymentResource
    )
