"""The GraphDeployment API (``drivetrain.dev/v1alpha1``), as pydantic v2 models.

The spec has the shape of Dynamo's ``DynamoGraphDeployment`` v1alpha1 so that a DGD can be
read by the same models; fields drivetrain adds are marked *drivetrain* below and are
documented in ``docs/api.md``.  Every model forbids unknown fields: a typo is an error with a
field path, not a silently ignored key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from drivetrain.api import kinds
from drivetrain.api.enums import WORKER_TYPES, Backend, Deployer, Profile

GROUP = kinds.GRAPH.group
VERSION = kinds.GRAPH.version
API_VERSION = kinds.GRAPH.api_version
KIND = kinds.GRAPH.kind
DYNAMO_API_VERSION = kinds.DYNAMO_GRAPH.api_version
DYNAMO_KIND = kinds.DYNAMO_GRAPH.kind


def _stringify(v: Any) -> Any:
    # Quantities are strings in Kubernetes, but YAML authors write `gpu: 1`.
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return str(v)
    return v


# In the CRD a quantity is int-or-string, as Kubernetes writes resource quantities.
INT_OR_STRING = {"x-kubernetes-int-or-string": True}
Quantity = Annotated[str, BeforeValidator(_stringify), WithJsonSchema(INT_OR_STRING)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EnvVar(Strict):
    name: str = Field(min_length=1)
    value: Quantity | None = None
    valueFrom: dict[str, Any] | None = None


class ResourceItem(Strict):
    cpu: Quantity | None = None
    memory: Quantity | None = None
    gpu: Quantity | None = None
    gpuType: str | None = None
    custom: dict[str, Quantity] | None = None


class Resources(Strict):
    requests: ResourceItem | None = None
    limits: ResourceItem | None = None
    claims: list[dict[str, Any]] | None = None


class Multinode(Strict):
    nodeCount: int = Field(default=2, ge=2, description="Pods per group (leader + workers).")
    # drivetrain: which multinode API to render with; the CLI flag wins over nothing.
    deployer: Deployer | None = None
    # drivetrain: vLLM's distributed executor for multinode tensor/pipeline parallelism.
    executor: Literal["mp", "ray"] = "mp"


class SharedMemory(Strict):
    disabled: bool = False
    size: Quantity | None = None


class VolumeMount(Strict):
    name: str = Field(min_length=1)
    mountPoint: str | None = None
    useAsCompilationCache: bool = False


class ExtraPodMetadata(Strict):
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None


class FrontendSidecar(Strict):
    image: str
    args: list[str] | None = None
    envFromSecret: str | None = None
    envs: list[EnvVar] | None = None


class ExtraPodSpec(BaseModel):
    """A Kubernetes PodSpec plus ``mainContainer``; PodSpec fields are checked in validate."""

    model_config = ConfigDict(extra="allow")
    mainContainer: dict[str, Any] | None = None


class Toggle(BaseModel):
    """A feature block drivetrain recognises but does not render (see ``UNSUPPORTED``)."""

    model_config = ConfigDict(extra="allow")
    enabled: bool | None = None


class Service(Strict):
    componentType: str
    subComponentType: str | None = None
    replicas: int | None = Field(default=None, ge=0)
    resources: Resources | None = None
    envs: list[EnvVar] | None = None
    envFromSecret: str | None = None
    extraPodSpec: ExtraPodSpec | None = None
    extraPodMetadata: ExtraPodMetadata | None = None
    multinode: Multinode | None = None
    volumeMounts: list[VolumeMount] | None = None
    sharedMemory: SharedMemory | None = None
    livenessProbe: dict[str, Any] | None = None
    readinessProbe: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    frontendSidecar: FrontendSidecar | None = None
    # drivetrain: a trainer runs as a Job; this many failed pods are retried before the Job
    # fails (default 0: a finished or failed run stays finished).
    backoffLimit: int | None = Field(default=None, ge=0)
    # Accepted for DGD compatibility; see docs/api.md for what each does here.
    serviceName: str | None = None
    dynamoNamespace: str | None = None  # deprecated and ignored, as in Dynamo
    globalDynamoNamespace: bool = False
    modelRef: dict[str, Any] | None = None
    eppConfig: dict[str, Any] | None = None
    ingress: dict[str, Any] | None = None
    autoscaling: dict[str, Any] | None = None  # deprecated and ignored, as in Dynamo
    scalingAdapter: dict[str, Any] | None = None
    topologyConstraint: dict[str, Any] | None = None
    # Features outside drivetrain's renderer: a graph that enables one fails clearly.
    gpuMemoryService: Toggle | None = None
    failover: Toggle | None = None
    checkpoint: Toggle | None = None

    @property
    def node_count(self) -> int:
        return self.multinode.nodeCount if self.multinode else 1

    @property
    def replica_count(self) -> int:
        return 1 if self.replicas is None else self.replicas

    @property
    def is_worker(self) -> bool:
        return self.componentType in WORKER_TYPES

    @property
    def main_container(self) -> dict[str, Any]:
        eps = self.extraPodSpec
        return dict(eps.mainContainer or {}) if eps else {}


class PVC(Strict):
    name: str = Field(min_length=1)
    create: bool | None = None
    storageClass: str | None = None
    size: Quantity | None = None
    volumeAccessMode: str | None = None


class GraphSpec(Strict):
    # An empty graph is valid (Dynamo's CRD allows it) and renders no objects.
    services: dict[str, Service] = Field(default_factory=dict)
    backendFramework: Backend | None = None
    envs: list[EnvVar] | None = None
    pvcs: list[PVC] | None = None
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    # drivetrain: which defaults the pods get (drivetrain's runtime or Dynamo's images).
    profile: Profile | None = None
    # drivetrain: discovery URL for drivetrain's runtime in the cluster, injected as
    # DRIVETRAIN_DISCOVERY (drivetrain profile only; default etcd://etcd:2379).
    discovery: str | None = None
    # DGD fields accepted and passed over (documented in docs/api.md).
    restart: dict[str, Any] | None = None
    topologyConstraint: dict[str, Any] | None = None


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class GraphDeployment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apiVersion: Literal["drivetrain.dev/v1alpha1", "nvidia.com/v1alpha1"]
    kind: Literal["GraphDeployment", "DynamoGraphDeployment"]
    metadata: ObjectMeta
    spec: GraphSpec = Field(default_factory=GraphSpec)
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def is_dynamo(self) -> bool:
        return self.kind == DYNAMO_KIND

    @property
    def profile(self) -> Profile:
        if self.spec.profile is not None:
            return self.spec.profile
        return Profile.dynamo if self.is_dynamo else Profile.drivetrain

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.metadata.annotations or {})
