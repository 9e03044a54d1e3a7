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


def whole_count(quantity: str | int | None) -> int:
    """A count quantity (GPUs) as an int; 0 when unset or not a whole number (as Dynamo reads
    it: ``"1.5"`` or ``"1k"`` count as none)."""
    if quantity is None or isinstance(quantity, bool):
        return 0
    if isinstance(quantity, int):
        return max(quantity, 0)
    try:
        return max(int(quantity.strip()), 0)
    except ValueError:
        return 0


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


class EngineServer(Strict):
    """drivetrain: the main container runs an OpenAI-compatible server (an engine's own), and a
    drivetrain worker runs beside it as a native sidecar (``--engine http``).  Detected for
    ``vllm serve``, ``python -m vllm.entrypoints.openai.api_server``, ``python -m
    sglang.launch_server`` and ``trtllm-serve``; declare it for any other server."""

    port: int | None = Field(
        default=None, ge=1, le=65535, description="The port it listens on (default 8000)."
    )
    healthPath: str = Field(
        default="/health", pattern=r"^/", description="Its health check, for the probes."
    )


class ExtraPodSpec(BaseModel):
    """A Kubernetes PodSpec plus ``mainContainer``; PodSpec fields are checked in validate."""

    model_config = ConfigDict(extra="allow")
    mainContainer: dict[str, Any] | None = None


#: Where the GPU memory service and the shadow engines run: in the pod (the one mode
#: rendered), or in pods of their own (refused: not supported yet).
TopologyMode = Literal["intraPod", "interPod"]


class GpuMemoryService(Strict):
    """The GPU memory service: a ``gms-server`` sidecar holds the GPUs' memory, shared with
    the engine(s) through a DRA claim (docs/gms-failover.md)."""

    enabled: bool
    mode: TopologyMode = "intraPod"
    deviceClassName: str = Field(
        default="gpu.nvidia.com", min_length=1, description="The DRA DeviceClass of the GPUs."
    )


class Failover(Strict):
    """Active/shadow engines in one pod: the main container runs twice, as ``engine-0`` and
    ``engine-1``, and the shadow takes over when the active one dies (docs/gms-failover.md)."""

    enabled: bool
    # None: not set (it must then agree with gpuMemoryService.mode only when both are set).
    mode: TopologyMode | None = None
    numShadows: int = Field(default=1, ge=1, le=1)


class CheckpointIdentity(Strict):
    """What makes two checkpoints interchangeable; its hash is the checkpoint id."""

    model: str = Field(min_length=1)
    backendFramework: Backend
    dynamoVersion: str | None = None
    tensorParallelSize: int = Field(default=1, ge=1)
    pipelineParallelSize: int = Field(default=1, ge=1)
    dtype: str | None = None
    maxModelLen: int | None = Field(default=None, ge=1)
    extraParameters: dict[str, str] | None = None


class CheckpointStorage(Strict):
    # drivetrain: the PVC that holds checkpoints, mounted at basePath in the checkpointed and
    # restored containers (Dynamo finds it on its snapshot agent's DaemonSet instead).
    pvcName: str = Field(min_length=1)
    basePath: str = Field(default="/checkpoints", pattern=r"^/")


class Checkpoint(Strict):
    """Checkpoint/restore of a worker (docs/snapshot.md)."""

    enabled: bool = False
    # Auto: render the checkpoint Job; Manual: only the restore targets.
    mode: Literal["Auto", "Manual"] = "Auto"
    # Accepted for DGD compatibility and refused when enabled: it names a DynamoCheckpoint in
    # the cluster, which a pure render cannot read.
    checkpointRef: str | None = None
    identity: CheckpointIdentity | None = None
    # drivetrain: the artifact version (part of the Job name and the artifact path).
    artifactVersion: str = Field(default="1", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    # drivetrain: how long the checkpoint Job may run (Dynamo's job.activeDeadlineSeconds).
    activeDeadlineSeconds: int = Field(default=3600, ge=1)
    storage: CheckpointStorage | None = None


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
    # drivetrain: the main container is an engine's OpenAI server (docs/api.md).
    engineServer: EngineServer | None = None
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
    gpuMemoryService: GpuMemoryService | None = None
    failover: Failover | None = None
    checkpoint: Checkpoint | None = None

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
    def gpu_count(self) -> int:
        """GPUs per pod: ``resources.limits.gpu``, else ``requests.gpu`` (the count the DRA
        claim of the GPU memory service asks for, as Dynamo counts it)."""
        res = self.resources
        limits = whole_count(res.limits.gpu if res and res.limits else None)
        return limits or whole_count(res.requests.gpu if res and res.requests else None)

    @property
    def gms_enabled(self) -> bool:
        return self.gpuMemoryService is not None and self.gpuMemoryService.enabled

    @property
    def failover_enabled(self) -> bool:
        return self.failover is not None and self.failover.enabled

    @property
    def checkpoint_enabled(self) -> bool:
        return self.checkpoint is not None and self.checkpoint.enabled

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
    # DRIVETRAIN_DISCOVERY (drivetrain profile only; default kubernetes://).
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
