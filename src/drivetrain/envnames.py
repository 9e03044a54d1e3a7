"""Env variable names shared by the renderer (which injects them) and the runtime (which reads them).

A leaf module: it imports nothing of drivetrain, so the runtime can use these names without
importing the renderer (see docs/architecture.md).  Values are the names themselves; what each
variable means is in docs/rendering.md and docs/runtime.md.
"""

from __future__ import annotations

# drivetrain's runtime: what a frontend or worker reads at start.
DISCOVERY = "DRIVETRAIN_DISCOVERY"
NAMESPACE = "DRIVETRAIN_NAMESPACE"
NAMESPACE_PREFIX = "DRIVETRAIN_NAMESPACE_PREFIX"
NAMESPACE_PREFIX_STRICT = "DRIVETRAIN_NAMESPACE_PREFIX_STRICT"
COMPONENT = "DRIVETRAIN_COMPONENT"
COMPONENT_TYPE = "DRIVETRAIN_COMPONENT_TYPE"
#: a service's ``subComponentType`` (a DGD's ``prefill`` or ``decode`` worker), when it has one
SUB_COMPONENT_TYPE = "DRIVETRAIN_SUB_COMPONENT_TYPE"
GRAPH = "DRIVETRAIN_GRAPH"
RPC_HOST = "DRIVETRAIN_RPC_HOST"
RPC_PORT = "DRIVETRAIN_RPC_PORT"
ADVERTISE_HOST = "DRIVETRAIN_ADVERTISE_HOST"
#: the container a worker runs in, when a pod runs several (its WorkerEndpoint's name suffix)
CONTAINER = "DRIVETRAIN_CONTAINER"
#: seconds a stopping frontend or worker lets requests in flight finish (`up` sets it)
DRAIN_TIMEOUT = "DRIVETRAIN_DRAIN_TIMEOUT"
#: the frontend's answer to a saturated model (Dynamo: DYN_HTTP_OVERLOAD_STATUS_CODE)
OVERLOAD_STATUS = "DRIVETRAIN_OVERLOAD_STATUS"
#: a folder with one tokenizer folder per served model name, for the frontend
TOKENIZER_ROOT = "DRIVETRAIN_TOKENIZER_ROOT"

# The downward API: the pod's own identity, filled in by the kubelet.
POD_NAME = "POD_NAME"
POD_NAMESPACE = "POD_NAMESPACE"
POD_UID = "POD_UID"
POD_IP = "POD_IP"

# Dynamo's runtime (the `dynamo` profile): the names Dynamo's images read.
DYN_NAMESPACE = "DYN_NAMESPACE"
DYN_NAMESPACE_PREFIX = "DYN_NAMESPACE_PREFIX"
DYN_COMPONENT = "DYN_COMPONENT"
DYN_PARENT_DGD_K8S_NAME = "DYN_PARENT_DGD_K8S_NAME"
DYN_PARENT_DGD_K8S_NAMESPACE = "DYN_PARENT_DGD_K8S_NAMESPACE"
DYN_HTTP_PORT = "DYN_HTTP_PORT"
DYN_SYSTEM_ENABLED = "DYN_SYSTEM_ENABLED"
DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS = "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS"
DYN_SYSTEM_PORT = "DYN_SYSTEM_PORT"
DYN_HEALTH_CHECK_ENABLED = "DYN_HEALTH_CHECK_ENABLED"
DYN_DISCOVERY_BACKEND = "DYN_DISCOVERY_BACKEND"
DYN_KUBE_DISCOVERY_MODE = "DYN_KUBE_DISCOVERY_MODE"

# The distributed-training env the renderer passes to distenv (docs/distenv.md).
RANK_SOURCE = "DRIVETRAIN_RANK_SOURCE"
NNODES = "DRIVETRAIN_NNODES"
GROVE_LEADER_CLIQUE = "DRIVETRAIN_GROVE_LEADER_CLIQUE"
GROVE_WORKER_CLIQUE = "DRIVETRAIN_GROVE_WORKER_CLIQUE"

# Failover (docs/gms-failover.md): which engine of a pair a container runs (0 starts active,
# 1 as the shadow); the same name in both profiles.
ENGINE_ID = "ENGINE_ID"

# The frontend of an RLRun's graph, for the training code (docs/rl.md): one per graph as
# DRIVETRAIN_FRONTEND_URL_<KEY>, and without suffix (plus OpenAI's client's own variable) when
# the run has one graph.
FRONTEND_URL = "DRIVETRAIN_FRONTEND_URL"
# The RL API of that frontend (docs/rl.md): its admin listener's URL and the bearer token it
# requires (the frontend reads the token too: no token, no admin listener).
ADMIN_URL = "DRIVETRAIN_ADMIN_URL"
ADMIN_TOKEN = "DRIVETRAIN_ADMIN_TOKEN"
OPENAI_BASE_URL = "OPENAI_BASE_URL"
#: The RayJob's entrypoint script, carried to the driver in the Ray head's env (docs/rl.md).
ENTRYPOINT = "DRIVETRAIN_ENTRYPOINT"
