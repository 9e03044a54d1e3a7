"""Runtime profiles: the defaults a pod gets for its role, as one table.

A profile says which runtime the images run: ``drivetrain`` (drivetrain's own frontend and
workers) or ``dynamo`` (the defaults Dynamo's images expect: ``DYN_*`` env, the
``dynamo.frontend`` entry point, the system port and probes; docs/rendering.md).  Pod assembly
reads the table; there is no second code path per profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from drivetrain import __version__, envnames
from drivetrain.api.models import WORKER_TYPES, GraphDeployment, Profile


def _http_probe(path: str, port: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, **timing}


@dataclass(frozen=True)
class RoleDefaults:
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)  # (name, value template)
    liveness: dict[str, Any] | None = None
    readiness: dict[str, Any] | None = None
    startup: dict[str, Any] | None = None


@dataclass(frozen=True)
class ProfileTable:
    name: str
    #: env every container of the graph gets first; values may use {namespace},
    #: {graph}, {k8s_namespace}, {component_type}, {service}.
    common_env: list[tuple[str, str]]
    #: env from the downward API, after ``common_env``.
    field_env: list[tuple[str, str]]
    #: label keys: graph name, service name (original case), component type, namespace.
    label_keys: dict[str, str]
    roles: dict[str, RoleDefaults]
    #: the runtime namespace a graph's services register in.
    namespace_format: str
    #: the runtime namespace of a service with ``globalDynamoNamespace: true``: the one its
    #: runtime treats as global (Dynamo's ``dynamo``; drivetrain's frontend serves ``global``
    #: to everyone, see docs/runtime.md).
    global_namespace: str
    #: the image a main container gets when the user names none (None: the user must).
    default_image: str | None = None
    #: labels on the pod templates and component Services of a service with Kubernetes
    #: discovery on (docs/dynamo-on-kubernetes.md: the Service's are the ones the runtime reads).
    discovery_labels: dict[str, str] = field(default_factory=dict)
    #: a label every pod carries unless the graph turns metrics off (Prometheus' PodMonitor
    #: selects on it, and Dynamo's planner reads the metrics it scrapes).
    metrics_label: str | None = None

    def role(self, component_type: str) -> RoleDefaults:
        if component_type in WORKER_TYPES:
            return self.roles["worker"]
        return self.roles.get(component_type, self.roles["default"])


# Dynamo's workers and planner answer /live and /health on their system port.
_SYSTEM_PROBES: dict[str, Any] = {
    "liveness": _http_probe(
        "/live", "system", periodSeconds=5, timeoutSeconds=4, failureThreshold=1
    ),
    "readiness": _http_probe(
        "/health", "system", periodSeconds=10, timeoutSeconds=4, failureThreshold=3
    ),
    "startup": _http_probe(
        "/live", "system", periodSeconds=10, timeoutSeconds=5, failureThreshold=720
    ),
}

_DOWNWARD = [
    (envnames.POD_NAME, "metadata.name"),
    (envnames.POD_NAMESPACE, "metadata.namespace"),
    (envnames.POD_UID, "metadata.uid"),
]

DYNAMO = ProfileTable(
    name="dynamo",
    common_env=[
        (envnames.DYN_NAMESPACE, "{namespace}"),
        (envnames.DYN_COMPONENT, "{component_type}"),
        (envnames.DYN_PARENT_DGD_K8S_NAME, "{graph}"),
        (envnames.DYN_PARENT_DGD_K8S_NAMESPACE, "{k8s_namespace}"),
    ],
    field_env=_DOWNWARD,
    label_keys={
        "graph": "nvidia.com/dynamo-graph-deployment-name",
        "service": "nvidia.com/dynamo-component",
        "component_type": "nvidia.com/dynamo-component-type",
        "sub_component_type": "nvidia.com/dynamo-sub-component-type",
        "namespace": "nvidia.com/dynamo-namespace",
    },
    roles={
        "frontend": RoleDefaults(
            command=["python3"],
            args=["-m", "dynamo.frontend"],
            ports=[{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
            env=[
                ("DYNAMO_PORT", "8000"),
                (envnames.DYN_HTTP_PORT, "8000"),
                (envnames.DYN_NAMESPACE_PREFIX, "{namespace}"),
            ],
            liveness=_http_probe(
                "/live",
                "http",
                initialDelaySeconds=15,
                periodSeconds=10,
                timeoutSeconds=1,
                failureThreshold=3,
            ),
            readiness=_http_probe(
                "/health",
                "http",
                initialDelaySeconds=10,
                periodSeconds=10,
                timeoutSeconds=3,
                failureThreshold=3,
            ),
        ),
        "worker": RoleDefaults(
            command=["/bin/sh", "-c"],
            ports=[
                {"name": "system", "containerPort": 9090, "protocol": "TCP"},
                {"name": "nixl", "containerPort": 19090, "protocol": "TCP"},
            ],
            env=[
                (envnames.DYN_SYSTEM_ENABLED, "true"),
                (envnames.DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS, '["generate"]'),
                (envnames.DYN_SYSTEM_PORT, "9090"),
                (envnames.DYN_HEALTH_CHECK_ENABLED, "false"),
                ("NIXL_TELEMETRY_ENABLE", "n"),
                ("NIXL_TELEMETRY_EXPORTER", "prometheus"),
                ("NIXL_TELEMETRY_PROMETHEUS_PORT", "19090"),
            ],
            **_SYSTEM_PROBES,
        ),
        "planner": RoleDefaults(
            command=["/bin/sh", "-c"],
            ports=[
                {"name": "metrics", "containerPort": 9085, "protocol": "TCP"},
                {"name": "system", "containerPort": 9090, "protocol": "TCP"},
            ],
            env=[("PLANNER_PROMETHEUS_PORT", "9085"), (envnames.DYN_SYSTEM_PORT, "9090")],
            **_SYSTEM_PROBES,
        ),
        "epp": RoleDefaults(
            command=["/bin/sh", "-c"],
            ports=[{"name": "grpc", "containerPort": 9002, "protocol": "TCP"}],
        ),
        "default": RoleDefaults(command=["/bin/sh", "-c"]),
    },
    namespace_format="{k8s_namespace}-{graph_dashed}",
    global_namespace="dynamo",
    discovery_labels={
        "nvidia.com/dynamo-discovery-backend": "kubernetes",
        "nvidia.com/dynamo-discovery-enabled": "true",
    },
    metrics_label="nvidia.com/metrics-enabled",
)

DRIVETRAIN = ProfileTable(
    name="drivetrain",
    common_env=[
        (envnames.NAMESPACE, "{namespace}"),
        (envnames.COMPONENT, "{service}"),
        (envnames.COMPONENT_TYPE, "{component_type}"),
        (envnames.GRAPH, "{graph}"),
    ],
    field_env=[*_DOWNWARD, (envnames.POD_IP, "status.podIP")],
    label_keys={
        "graph": "drivetrain.dev/graph",
        "service": "drivetrain.dev/service",
        "component_type": "drivetrain.dev/component-type",
        "sub_component_type": "drivetrain.dev/sub-component-type",
        "namespace": "drivetrain.dev/namespace",
    },
    roles={
        "frontend": RoleDefaults(
            command=["drivetrain"],
            args=["frontend", "--port", "8000"],
            # admin: the RL API (docs/rl.md), open only when the pod has an admin token
            ports=[
                {"name": "http", "containerPort": 8000, "protocol": "TCP"},
                {"name": "admin", "containerPort": 8002, "protocol": "TCP"},
            ],
            liveness=_http_probe(
                "/live",
                "http",
                initialDelaySeconds=5,
                periodSeconds=10,
                timeoutSeconds=1,
                failureThreshold=3,
            ),
            readiness=_http_probe(
                "/health",
                "http",
                initialDelaySeconds=2,
                periodSeconds=10,
                timeoutSeconds=3,
                failureThreshold=3,
            ),
        ),
        "worker": RoleDefaults(
            command=["drivetrain"],
            args=["worker"],
            ports=[{"name": "rpc", "containerPort": 9090, "protocol": "TCP"}],
            # In env, not args, so a user's own args cannot drop them.
            env=[
                (envnames.RPC_HOST, "0.0.0.0"),
                (envnames.RPC_PORT, "9090"),
                (envnames.ADVERTISE_HOST, f"$({envnames.POD_IP})"),
            ],
            readiness={"tcpSocket": {"port": "rpc"}, "periodSeconds": 10, "timeoutSeconds": 3},
        ),
        "trainer": RoleDefaults(command=["/bin/sh", "-c"]),
        "default": RoleDefaults(command=["/bin/sh", "-c"]),
    },
    namespace_format="{k8s_namespace}-{graph_dashed}",
    global_namespace="global",
    # The image the Dockerfile builds: drivetrain's CLI, runtime and operator.
    default_image=f"drivetrain:{__version__}",
)

#: drivetrain's runtime in a cluster, when the graph names no discovery URL: the API server
#: itself (WorkerEndpoint objects, docs/discovery.md), so no store has to be installed.
DEFAULT_CLUSTER_DISCOVERY = "kubernetes://"
KUBERNETES_SCHEME = "kubernetes://"

# Dynamo's annotations (graph, spec or service level; the service's wins), docs/rendering.md.
DISCOVERY_BACKEND_ANNOTATION = "nvidia.com/dynamo-discovery-backend"
DISCOVERY_MODE_ANNOTATION = "nvidia.com/dynamo-kube-discovery-mode"
METRICS_ANNOTATION = "nvidia.com/enable-metrics"

PROFILES = {Profile.dynamo: DYNAMO, Profile.drivetrain: DRIVETRAIN}


def profile_of(graph: GraphDeployment) -> ProfileTable:
    return PROFILES[graph.profile]


def runtime_namespace(graph: GraphDeployment, service_name: str, k8s_namespace: str) -> str:
    """The runtime (discovery) namespace a service registers in.

    ``<k8s-namespace>-<graph>`` (dots in the graph name become ``-``), or the profile's global
    namespace for a service with ``globalDynamoNamespace`` (``dynamo`` under the dynamo
    profile, as Dynamo does; ``global`` under drivetrain's).
    """
    svc = graph.spec.services[service_name]
    table = profile_of(graph)
    if svc.globalDynamoNamespace:
        return table.global_namespace
    return table.namespace_format.format(
        k8s_namespace=k8s_namespace, graph_dashed=graph.name.replace(".", "-")
    )


@dataclass(frozen=True)
class Discovery:
    """How one service's runtime finds the others, as rendered."""

    #: ``kubernetes`` (through the API server: needs RBAC, and for Dynamo a Service per
    #: component), or anything else (``etcd``, ``file``...: nothing around the pods).
    backend: str
    #: Dynamo's per-pod or per-container discovery (``DYN_KUBE_DISCOVERY_MODE``).
    mode: Literal["pod", "container"] = "pod"
    #: drivetrain's discovery URL (``DRIVETRAIN_DISCOVERY``); None under the dynamo profile.
    url: str | None = None

    @property
    def kubernetes(self) -> bool:
        return self.backend == "kubernetes"


def service_discovery(graph: GraphDeployment, service_name: str) -> Discovery:
    """The discovery of one service's pods: ``spec.discovery`` (default ``kubernetes://``) under
    the drivetrain profile; under the dynamo profile Kubernetes unless the backend annotation
    says ``etcd``, as Dynamo's operator decides."""
    if profile_of(graph) is DYNAMO:
        annotations = _annotations(graph, service_name)
        backend = (
            "etcd" if annotations.get(DISCOVERY_BACKEND_ANNOTATION) == "etcd" else "kubernetes"
        )
        container = annotations.get(DISCOVERY_MODE_ANNOTATION) == "container"
        return Discovery(backend, "container" if container else "pod")
    url = graph.spec.discovery or DEFAULT_CLUSTER_DISCOVERY
    scheme = url.split("://", 1)[0] if "://" in url else url
    return Discovery(scheme, url=url)


def metrics_enabled(graph: GraphDeployment, service_name: str) -> bool:
    """Dynamo's ``nvidia.com/enable-metrics: "false"`` turns the metrics label off."""
    return _annotations(graph, service_name).get(METRICS_ANNOTATION, "").lower() != "false"


def _values(
    graph: GraphDeployment, service_name: str, k8s_namespace: str, component_type: str
) -> dict[str, str]:
    return {
        "namespace": runtime_namespace(graph, service_name, k8s_namespace),
        "graph": graph.name,
        "k8s_namespace": k8s_namespace,
        "component_type": component_type,
        "service": service_name,
    }


def service_env(
    graph: GraphDeployment,
    service_name: str,
    k8s_namespace: str,
    component_type: str | None = None,
) -> list[dict[str, Any]]:
    """The env the renderer injects into a service's main container, in order.

    ``component_type`` overrides the service's for a container of another role in the same
    pod (the frontend sidecar).
    """
    table = profile_of(graph)
    role = component_type or graph.spec.services[service_name].componentType
    values = _values(graph, service_name, k8s_namespace, role)
    env: list[dict[str, Any]] = [
        {"name": n, "value": v.format(**values)} for n, v in table.common_env
    ]
    sub_type = graph.spec.services[service_name].subComponentType
    if table is DRIVETRAIN and sub_type and component_type is None:
        # A DGD's prefill or decode worker: the worker registers with that role.
        env.append({"name": envnames.SUB_COMPONENT_TYPE, "value": sub_type})
    env += [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in table.field_env]
    discovery = service_discovery(graph, service_name)
    if table is DYNAMO:
        if discovery.kubernetes:
            env.append({"name": envnames.DYN_DISCOVERY_BACKEND, "value": "kubernetes"})
        if discovery.mode == "container":  # the operator sets these whatever the backend
            env.append({"name": "CONTAINER_NAME", "value": "main"})
            env.append({"name": envnames.DYN_KUBE_DISCOVERY_MODE, "value": "container"})
    else:
        # Every pod of a graph shares one store: by default the API server (no etcd to run).
        assert discovery.url is not None
        env.append({"name": envnames.DISCOVERY, "value": discovery.url})
    env += [{"name": n, "value": v.format(**values)} for n, v in table.role(role).env]
    return env


def _annotations(graph: GraphDeployment, service_name: str) -> dict[str, str]:
    svc = graph.spec.services[service_name]
    return {**graph.annotations, **(graph.spec.annotations or {}), **(svc.annotations or {})}


def main_command(graph: GraphDeployment, service_name: str) -> tuple[list[str], list[str]]:
    """The main container's command and args after the user's mainContainer is merged.

    A user list that is absent or empty keeps the default, as Dynamo's merge does.
    """
    svc = graph.spec.services[service_name]
    role = profile_of(graph).role(svc.componentType)
    main = svc.main_container
    user_command = list(main.get("command") or [])
    user_args = list(main.get("args") or [])
    if not user_command and len(user_args) > 1 and role.command[-1:] == ["-c"]:
        # `args: [python3, -m, dynamo.vllm, ...]` under Dynamo's default `/bin/sh -c` would
        # run `sh -c python3` with the rest as positional parameters; run the argv instead.
        return user_args[:1], user_args[1:]
    command = user_command or list(role.command)
    args = user_args or ([] if user_command else list(role.args))
    return command, args
