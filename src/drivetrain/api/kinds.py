"""The Kubernetes resource types drivetrain defines, renders or watches: one table.

Group, version, kind and plural are written here once; the CRD generator, the renderer, the
cluster client and the operator's watches all read them from this table (pure data, no
pydantic, so any layer may import it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core API group
    version: str
    kind: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``: the name of the CustomResourceDefinition that serves it."""
        return f"{self.plural}.{self.group}"


GRAPH = ResourceType("drivetrain.dev", "v1alpha1", "GraphDeployment", "graphdeployments")
DYNAMO_GRAPH = ResourceType(
    "nvidia.com", "v1alpha1", "DynamoGraphDeployment", "dynamographdeployments"
)
DEPLOYMENT = ResourceType("apps", "v1", "Deployment", "deployments")
LEADER_WORKER_SET = ResourceType(
    "leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet", "leaderworkersets"
)
POD_CLIQUE_SET = ResourceType("grove.io", "v1alpha1", "PodCliqueSet", "podcliquesets")
SERVICE = ResourceType("", "v1", "Service", "services")
CONFIG_MAP = ResourceType("", "v1", "ConfigMap", "configmaps")
PERSISTENT_VOLUME_CLAIM = ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
POD = ResourceType("", "v1", "Pod", "pods")
JOB = ResourceType("batch", "v1", "Job", "jobs")
#: The RL run: graphs and the Ray training beside them (docs/rl.md).
RLRUN = ResourceType("drivetrain.dev", "v1alpha1", "RLRun", "rlruns")
#: KubeRay's resources (ray.io/v1), which an RLRun creates.
RAY_JOB = ResourceType("ray.io", "v1", "RayJob", "rayjobs")
RAY_CLUSTER = ResourceType("ray.io", "v1", "RayCluster", "rayclusters")

#: The graph kinds, by kind.
GRAPH_KINDS = {t.kind: t for t in (GRAPH, DYNAMO_GRAPH)}
#: The workloads that run a graph's pods (their readiness is the graph's); a trainer is a Job.
WORKLOADS = (DEPLOYMENT, LEADER_WORKER_SET, POD_CLIQUE_SET, JOB)
#: The Ray objects an RLRun creates, by kind.
RAY_KINDS = {t.kind: t for t in (RAY_JOB, RAY_CLUSTER)}
