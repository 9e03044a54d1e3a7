"""The resource types drivetrain reads and writes, keyed by kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import (
    ConfigMap,
    PersistentVolumeClaim,
    Pod,
    Service,
    ServiceAccount,
)
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.resources.resource_v1 import ResourceClaimTemplate

from drivetrain.api import kinds
from drivetrain.kube.lightkube_adapter import custom_resource

GraphDeploymentResource = custom_resource(kinds.GRAPH)
RLRunResource = custom_resource(kinds.RLRUN)
RayJobResource = custom_resource(kinds.RAY_JOB)
RayClusterResource = custom_resource(kinds.RAY_CLUSTER)
PodResource = Pod
DynamoGraphDeploymentResource = custom_resource(kinds.DYNAMO_GRAPH)
LeaderWorkerSet = custom_resource(kinds.LEADER_WORKER_SET)
PodCliqueSet = custom_resource(kinds.POD_CLIQUE_SET)

LWS_GROUP = kinds.LEADER_WORKER_SET.group
GROVE_GROUP = kinds.POD_CLIQUE_SET.group
#: Dynamic resource allocation (the GPU memory service's claim templates), v1 from 1.34.
RESOURCE_GROUP = "resource.k8s.io"


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
    #: The API server refuses changes to its pod template (a Job's): a changed one is deleted
    #: and created again instead of applied.
    recreate: bool = False


CHILD_KINDS: dict[str, ChildKind] = {
    k.kind: k
    for k in (
        ChildKind("ConfigMap", ConfigMap),
        ChildKind("PersistentVolumeClaim", PersistentVolumeClaim, prunable=False),
        ChildKind("Deployment", Deployment, workload=True),
        ChildKind("LeaderWorkerSet", LeaderWorkerSet, group=LWS_GROUP, workload=True),
        ChildKind("PodCliqueSet", PodCliqueSet, group=GROVE_GROUP, workload=True),
        ChildKind("Job", Job, workload=True, recreate=True),
        ChildKind("Service", Service),
        ChildKind("ResourceClaimTemplate", ResourceClaimTemplate, group=RESOURCE_GROUP),
        # The pods' RBAC (render/rbac.py): applied before the workloads, like every child.
        ChildKind("ServiceAccount", ServiceAccount),
        ChildKind("Role", Role),
        ChildKind("RoleBinding", RoleBinding),
    )
}


def graph_resource(kind: str) -> Any:
    return (
        DynamoGraphDeploymentResource
        if kind == kinds.DYNAMO_GRAPH.kind
        else GraphDeploymentResource
    )


#: The custom resources the CLI reads and writes by kind (graphs and runs).
PRIMARY = {
    kinds.GRAPH.kind: GraphDeploymentResource,
    kinds.DYNAMO_GRAPH.kind: DynamoGraphDeploymentResource,
    kinds.RLRUN.kind: RLRunResource,
}
RAY_RESOURCES = {kinds.RAY_JOB.kind: RayJobResource, kinds.RAY_CLUSTER.kind: RayClusterResource}


def applied_form(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of a live object that the API models describe (what was applied): apiVersion,
    kind, name, namespace, labels, annotations and spec; the server's fields dropped."""
    meta = body.get("metadata", {})
    keep = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": keep,
        "spec": body.get("spec") or {},
    }
