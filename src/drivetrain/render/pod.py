"""Pod assembly: one service, one role, one pod template (pure).

The order follows Dynamo's ``GenerateBasePodSpec`` (see docs/rendering.md) where it matters
to users, with two deliberate differences: injected env comes first and the user's env keeps
its written order after it (Dynamo sorts by name, which can break ``$(VAR)`` references), and
the vLLM multinode executor defaults to ``mp``.

``build_pod`` resolves the service once (``ServiceView``: profile, role defaults, command and
args, engine) and runs the numbered steps below over it, each a function of its own.  The
order of the steps is also the order of the keys in the output, which the podspec vectors and
the example corpus pin.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from drivetrain import snapshot_protocol
from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.models import (
    Deployer,
    GraphDeployment,
    ResourceItem,
    Resources,
    Service,
    whole_count,
)
from drivetrain.api.validate import VLLM_EXECUTOR_ANNOTATION
from drivetrain.podcontainers import workload_containers
from drivetrain.render import (
    checkpoint,
    companions,
    engines,
    failover,
    gpu,
    rbac,
    sidecar,
    training,
)
from drivetrain.render.deployers import MultinodeDeployer
from drivetrain.render.naming import GRAPH_LABEL, ROLE_LABEL, SELECTOR_LABEL, resource_name
from drivetrain.render.profiles import (
    ProfileTable,
    RoleDefaults,
    _annotations,
    main_command,
    metrics_enabled,
    profile_of,
    runtime_namespace,
    service_discovery,
    service_env,
)

Role = Literal["main", "leader", "worker"]
DEFAULT_SHM = "8Gi"
VLLM_COMPILE_CACHE = "/root/.cache/vllm"


#: What a pod is built for: serving (the workload's pods, restore targets when the service
#: checkpoints) or taking the service's checkpoint (the checkpoint Job's pod, no failover).
Purpose = Literal["serve", "checkpoint"]


@dataclass(frozen=True)
class PodTemplate:
    metadata: dict[str, Any]
    spec: dict[str, Any]
    extra_objects: list[dict[str, Any]]

    def as_template(self) -> dict[str, Any]:
        return {"metadata": self.metadata, "spec": self.spec}

    @property
    def is_restore_target(self) -> bool:
        return self.metadata.get("labels", {}).get(snapshot_protocol.RESTORE_TARGET_LABEL) == (
            "true"
        )


@dataclass(frozen=True)
class ServiceView:
    """One service as every step of pod assembly sees it, resolved once."""

    graph: GraphDeployment
    name: str
    svc: Service
    k8s_namespace: str
    table: ProfileTable
    role_defaults: RoleDefaults
    #: the user's mainContainer (a copy)
    user_main: dict[str, Any]
    #: the main container's command and args after the mainContainer merge
    command: list[str]
    args: list[str]
    engine: str | None
    #: the engine server of a worker paired with a drivetrain worker sidecar (render/sidecar.py)
    server: sidecar.EngineServer | None = None

    @property
    def base(self) -> str:
        """The field path of the service, for errors."""
        return f"spec.services.{self.name}"


def _engine_of(
    graph: GraphDeployment, service_name: str, command: list[str], args: list[str]
) -> str | None:
    """The engine of a worker service: detected from its command, else backendFramework."""
    svc = graph.spec.services[service_name]
    if not svc.is_worker:
        return None
    base = f"spec.services.{service_name}"
    try:
        detected = engines.detect_engine(command, args)
    except engines.EngineChoiceError as exc:
        raise InvalidGraph([FieldError(f"{base}.extraPodSpec.mainContainer", str(exc))]) from None
    explicit = graph.spec.backendFramework.value if graph.spec.backendFramework else None
    if detected and explicit and detected != explicit:
        raise InvalidGraph(
            [
                FieldError(
                    "spec.backendFramework",
                    f"backend framework mismatch: service {service_name} runs {detected} "
                    f"(detected from its command) but backendFramework is {explicit}",
                )
            ]
        )
    engine = detected or explicit
    if engine is None and svc.node_count > 1:
        raise InvalidGraph(
            [
                FieldError(
                    f"{base}.multinode",
                    "cannot determine the engine of this multinode worker: set "
                    "spec.backendFramework (vllm, sglang or trtllm) or run a recognised launcher "
                    "(python3 -m dynamo.vllm, vllm serve, python3 -m sglang.launch_server, "
                    "trtllm-serve, ...)",
                )
            ]
        )
    return engine


def resolve_service(graph: GraphDeployment, service_name: str, k8s_namespace: str) -> ServiceView:
    svc = graph.spec.services[service_name]
    table = profile_of(graph)
    command, args = main_command(graph, service_name)
    return ServiceView(
        graph=graph,
        name=service_name,
        svc=svc,
        k8s_namespace=k8s_namespace,
        table=table,
        role_defaults=table.role(svc.componentType),
        user_main=svc.main_container,
        command=command,
        args=args,
        engine=_engine_of(graph, service_name, command, args),
        server=sidecar.engine_server_of(graph, service_name, command, args),
    )


def service_engine(graph: GraphDeployment, service_name: str) -> str | None:
    """The engine of a worker service: detected from its command, else backendFramework."""
    command, args = main_command(graph, service_name)
    return _engine_of(graph, service_name, command, args)


def k8s_resources(res: Resources | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if res is None:
        return out
    for side in ("requests", "limits"):
        item: ResourceItem | None = getattr(res, side)
        if item is None:
            continue
        values: dict[str, str] = {}
        if item.cpu:
            values["cpu"] = item.cpu
        if item.memory:
            values["memory"] = item.memory
        if item.gpu:
            values[item.gpuType or "nvidia.com/gpu"] = item.gpu
        values.update(item.custom or {})
        if values:
            out[side] = values
    if res.claims:
        out["claims"] = copy.deepcopy(res.claims)
    return out


def merge_env(
    injected: list[dict[str, Any]], *user_lists: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Injected env first, then the user's entries in written order.

    A later list wins on a duplicate name but the entry keeps its first position, so a
    ``$(VAR)`` reference that pointed at an earlier entry still does.  A user entry that
    overrides an injected name takes the injected entry's place.
    """
    order: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    for entry in injected:
        if entry["name"] not in values:
            order.append(entry["name"])
        values[entry["name"]] = entry
    for env_list in user_lists:
        for entry in env_list:
            if entry["name"] not in values:
                order.append(entry["name"])
            values[entry["name"]] = entry
    return [values[n] for n in order]


def _env_dicts(entries: list[Any] | None) -> list[dict[str, Any]]:
    out = []
    for e in entries or []:
        out.append(e if isinstance(e, dict) else e.model_dump(exclude_none=True))
    return out


def _pod_labels(graph: GraphDeployment, service_name: str, k8s_namespace: str) -> dict[str, str]:
    svc = graph.spec.services[service_name]
    table = profile_of(graph)
    keys = table.label_keys
    system = {
        keys["graph"]: graph.name,
        keys["service"]: service_name,
        keys["component_type"]: svc.componentType,
        keys["namespace"]: runtime_namespace(graph, service_name, k8s_namespace),
        GRAPH_LABEL: graph.name,
        SELECTOR_LABEL: resource_name(graph, service_name),
    }
    if svc.subComponentType:
        system[keys["sub_component_type"]] = svc.subComponentType
    if table.metrics_label and metrics_enabled(graph, service_name):
        system[table.metrics_label] = "true"
    if service_discovery(graph, service_name).kubernetes:
        system.update(table.discovery_labels)
    system.update(companions.model_pod_labels(graph, service_name))
    labels = {**(graph.spec.labels or {}), **(svc.labels or {})}
    if svc.extraPodMetadata and svc.extraPodMetadata.labels:
        labels.update(svc.extraPodMetadata.labels)
    labels.update(system)  # system labels are re-asserted over the user's
    return labels


def _pod_annotations(graph: GraphDeployment, service_name: str) -> dict[str, str]:
    svc = graph.spec.services[service_name]
    out = {**(graph.spec.annotations or {}), **(svc.annotations or {})}
    if svc.extraPodMetadata and svc.extraPodMetadata.annotations:
        out.update(svc.extraPodMetadata.annotations)
    out.update(companions.model_pod_annotations(graph, service_name))
    return out


def _base_container(role: RoleDefaults) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main"}
    if role.ports:
        c["ports"] = copy.deepcopy(role.ports)
    for key, probe in (
        ("livenessProbe", role.liveness),
        ("readinessProbe", role.readiness),
        ("startupProbe", role.startup),
    ):
        if probe:
            c[key] = copy.deepcopy(probe)
    return c


def _merge_main(base: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """Non-empty user fields override the base; empty ones do not (Dynamo's merge)."""
    out = copy.deepcopy(base)
    for key, value in user.items():
        if key in ("name", "env"):
            continue
        if value in (None, [], {}, ""):
            continue
        if key == "resources" and isinstance(value, dict):
            merged = dict(out.get("resources", {}))
            for side, vals in value.items():
                merged[side] = {**merged.get(side, {}), **vals} if isinstance(vals, dict) else vals
            out["resources"] = merged
            continue
        out[key] = copy.deepcopy(value)
    return out


def _engine_context(
    view: ServiceView, role: Role, deployer: MultinodeDeployer | None
) -> engines.EngineContext:
    graph, service_name, svc = view.graph, view.name, view.svc
    res = svc.resources
    limits = res.limits if res else None
    requests = res.requests if res else None
    cache = next(
        (
            vm.mountPoint or VLLM_COMPILE_CACHE
            for vm in svc.volumeMounts or []
            if vm.useAsCompilationCache
        ),
        None,
    )
    return engines.EngineContext(
        deployer=deployer if deployer is not None else _NO_DEPLOYER,
        role=role,
        node_count=svc.node_count,
        service_name=service_name,
        graph_name=graph.name,
        executor=_executor(graph, service_name),
        gpus_limit=whole_count(limits.gpu if limits else None),
        gpus_request=whole_count(requests.gpu if requests else None),
        compilation_cache_mount=cache,
    )


def _executor(graph: GraphDeployment, service_name: str) -> Literal["mp", "ray"]:
    """vLLM's multinode executor: Dynamo's annotation wins, else the spec (default mp)."""
    svc = graph.spec.services[service_name]
    value = _annotations(graph, service_name).get(VLLM_EXECUTOR_ANNOTATION, "").lower()
    if value == "ray":
        return "ray"
    if value == "mp":
        return "mp"
    return svc.multinode.executor if svc.multinode else "mp"


class _SingleNode(MultinodeDeployer):
    kind = "none"


_NO_DEPLOYER = _SingleNode()


def _main_container(view: ServiceView) -> dict[str, Any]:
    """1-2. The profile's container (an engine server's own, when paired with a worker sidecar),
    the user's mainContainer over it, command, args, image."""
    base = (
        sidecar.engine_container(view.server)
        if view.server
        else _base_container(view.role_defaults)
    )
    container = _merge_main(base, view.user_main)
    command, args = view.command, view.args
    if command in (["/bin/sh", "-c"], ["sh", "-c"]) and not args:
        # A shell with no script fails at start; with nothing to run, the image's own
        # entrypoint is what the user meant (EPP and other images with an entrypoint).
        command = []
    if command:
        container["command"] = command
    else:
        container.pop("command", None)
    if args:
        container["args"] = args
    else:
        container.pop("args", None)
    if not container.get("image"):
        if view.table.default_image is None:
            raise InvalidGraph(
                [
                    FieldError(
                        f"{view.base}.extraPodSpec.mainContainer.image",
                        f"required: the {view.table.name} profile has no default image",
                    )
                ]
            )
        container["image"] = view.table.default_image
    return container


def _env(view: ServiceView) -> list[dict[str, Any]]:
    """3. Env: injected first, then the user's in written order (graph < main < service).

    A paired engine server gets the user's env only: drivetrain's is its sidecar's.
    """
    return merge_env(
        [] if view.server else service_env(view.graph, view.name, view.k8s_namespace),
        _env_dicts(view.user_main.get("env")),
        _env_dicts(view.graph.spec.envs),
        _env_dicts(view.svc.envs),
    )


def _set_probes(view: ServiceView, container: dict[str, Any]) -> None:
    """4. Probes given on the service replace the defaults whole."""
    if view.svc.livenessProbe:
        container["livenessProbe"] = copy.deepcopy(view.svc.livenessProbe)
    if view.svc.readinessProbe:
        container["readinessProbe"] = copy.deepcopy(view.svc.readinessProbe)


def _set_resources(view: ServiceView, container: dict[str, Any]) -> None:
    """5. Resources, key by key over what the mainContainer set."""
    res = k8s_resources(view.svc.resources)
    if not res:
        return
    merged = dict(container.get("resources", {}))
    for side in ("requests", "limits"):
        if side in res:
            merged[side] = {**merged.get(side, {}), **res[side]}
    if "claims" in res:
        merged["claims"] = merged.get("claims", []) + res["claims"]
    container["resources"] = merged


def _set_env_from(view: ServiceView, container: dict[str, Any]) -> None:
    """6. envFromSecret."""
    if view.svc.envFromSecret:
        container["envFrom"] = [
            *container.get("envFrom", []),
            {"secretRef": {"name": view.svc.envFromSecret}},
        ]


def _mount_pvcs(view: ServiceView, container: dict[str, Any]) -> list[dict[str, Any]]:
    """7. PVC mounts into the container; the pod volumes they need are returned."""
    volumes: list[dict[str, Any]] = []
    mounts = list(container.get("volumeMounts", []))
    for i, vm in enumerate(view.svc.volumeMounts or []):
        mount_point = vm.mountPoint
        if not mount_point and vm.useAsCompilationCache:
            if view.engine != "vllm":
                raise InvalidGraph(
                    [
                        FieldError(
                            f"{view.base}.volumeMounts[{i}].mountPoint",
                            "useAsCompilationCache needs an explicit mountPoint for engine "
                            f"{view.engine or 'unknown'} (only vLLM has a default)",
                        )
                    ]
                )
            mount_point = VLLM_COMPILE_CACHE
        volumes.append({"name": vm.name, "persistentVolumeClaim": {"claimName": vm.name}})
        mounts.append({"name": vm.name, "mountPath": mount_point})
    if mounts:
        container["volumeMounts"] = mounts
    return volumes


def _pod_spec(view: ServiceView) -> dict[str, Any]:
    """9. Pod spec: defaults, then the user's extraPodSpec over them."""
    svc = view.svc
    user_pod = dict(svc.extraPodSpec.model_extra or {}) if svc.extraPodSpec else {}
    # A trainer runs once as a Job's pod; a finished run must not start again.
    restart = "Never" if svc.componentType == "trainer" else "Always"
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": 60, "restartPolicy": restart}
    for key, value in copy.deepcopy(user_pod).items():
        if value in (None, [], {}, ""):
            continue
        spec[key] = value
    if "securityContext" not in user_pod:
        spec["securityContext"] = {"fsGroup": 1000}
    return spec


def _add_volumes(
    view: ServiceView,
    spec: dict[str, Any],
    container: dict[str, Any],
    pvc_volumes: list[dict[str, Any]],
) -> None:
    """10. PVC volumes and shared memory."""
    spec_volumes = list(spec.get("volumes", []))
    names = {v.get("name") for v in spec_volumes}
    spec_volumes += [v for v in pvc_volumes if v["name"] not in names]
    shm = view.svc.sharedMemory
    if shm is None or not shm.disabled:
        size = (shm.size if shm else None) or DEFAULT_SHM
        spec_volumes = [v for v in spec_volumes if v.get("name") != "shared-memory"]
        spec_volumes.append(
            {"name": "shared-memory", "emptyDir": {"medium": "Memory", "sizeLimit": size}}
        )
        container["volumeMounts"] = [
            m for m in container.get("volumeMounts", []) if m.get("name") != "shared-memory"
        ] + [{"name": "shared-memory", "mountPath": "/dev/shm"}]
    if spec_volumes:
        spec["volumes"] = spec_volumes


def _engine_pod_changes(
    view: ServiceView, spec: dict[str, Any], ctx: engines.EngineContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """12. Pod-level engine changes (init containers, secret volumes) and their objects."""
    if not view.engine:
        return spec, []
    spec, needed = engines.update_pod_spec(view.engine, spec, ctx)
    for obj in needed:
        obj["metadata"]["namespace"] = view.k8s_namespace
    return spec, needed


def _training(
    view: ServiceView,
    spec: dict[str, Any],
    deployer: MultinodeDeployer | None,
    indexed_job: tuple[str, str] | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """13. Trainers start through the distributed-env script (MASTER_ADDR, NODE_RANK...)."""
    if view.svc.componentType != "trainer":
        return spec, []
    nodes = view.svc.node_count
    kind = Deployer(deployer.kind) if deployer is not None and nodes > 1 else None
    try:
        return training.apply_training_env(
            spec,
            graph_name=view.graph.name,
            service_name=view.name,
            deployer=kind,
            node_count=nodes,
            namespace=view.k8s_namespace,
            indexed_job=indexed_job,
        )
    except training.TrainingEnvError as exc:
        raise InvalidGraph([FieldError(view.base, str(exc))]) from None


def _pod_metadata(view: ServiceView, role: Role) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": _pod_labels(view.graph, view.name, view.k8s_namespace)}
    if role != "main":
        metadata["labels"][ROLE_LABEL] = role
    annotations = _pod_annotations(view.graph, view.name)
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def _gpu_claim(view: ServiceView, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """17. DRA: the main container's GPUs become a claim the pod's containers can share (with
    the GPU memory service), from the service's ResourceClaimTemplate, returned."""
    gms = view.svc.gpuMemoryService
    if gms is None or not gms.enabled:
        return []
    name = gpu.claim_template_name(view.graph.name, view.name)
    template = gpu.resource_claim_template(
        name,
        namespace=view.k8s_namespace,
        gpus=view.svc.gpu_count,
        device_class=gms.deviceClassName,
        graph_name=view.graph.name,
    )
    if template is None:  # the API rules refuse this first; kept for a graph built in code
        raise InvalidGraph(
            [FieldError(f"{view.base}.resources.limits.gpu", "gpuMemoryService needs a GPU")]
        )
    res = view.svc.resources
    items = (res.limits, res.requests) if res else ()
    gpu_types = {item.gpuType for item in items if item and item.gpuType}
    gpu.apply_claim(spec, name, (gpu.GPU_RESOURCE, *sorted(gpu_types)))
    return [template]


def _gms(view: ServiceView, spec: dict[str, Any]) -> None:
    """18. The GPU memory service: the ``gms-server`` native sidecar beside the main container."""
    if view.svc.gms_enabled:
        gpu.ensure_gms_server(spec)


def _failover(view: ServiceView, spec: dict[str, Any]) -> None:
    """19. Failover: the finished main container becomes ``engine-0`` and ``engine-1``."""
    if not view.svc.failover_enabled:
        return
    try:
        failover.apply_failover(
            spec,
            profile=view.table.name,
            engine=view.engine,
            node_count=view.svc.node_count,
        )
    except failover.FailoverError as exc:
        raise InvalidGraph([FieldError(f"{view.base}.{exc.field}", str(exc))]) from None


def _checkpoint(
    view: ServiceView, spec: dict[str, Any], metadata: dict[str, Any], purpose: Purpose
) -> None:
    """20. Checkpoint/restore: the checkpoint Job's pod, or the service's pods as restore
    targets (the failover engines, else the main container)."""
    ckpt = view.svc.checkpoint
    if ckpt is None or not ckpt.enabled or ckpt.identity is None:
        return
    identity = ckpt.identity
    if view.engine and identity.backendFramework.value != view.engine:
        raise InvalidGraph(
            [
                FieldError(
                    f"{view.base}.checkpoint.identity.backendFramework",
                    f"is {identity.backendFramework.value}, but the service runs {view.engine}",
                )
            ]
        )
    checkpoint_id = checkpoint.identity_hash(identity)
    gms = view.svc.gms_enabled
    try:
        if purpose == "checkpoint":
            checkpoint.apply_checkpoint_source(spec, metadata, ckpt, checkpoint_id, gms=gms)
            # Not one of the service's serving pods: no Service or workload selects it.
            metadata["labels"].pop(SELECTOR_LABEL, None)
        else:
            targets = [c["name"] for c in workload_containers(spec)]
            checkpoint.apply_restore_target(
                spec, metadata, ckpt, checkpoint_id, targets=targets, gms=gms
            )
    except checkpoint.CheckpointError as exc:
        raise InvalidGraph([FieldError(f"{view.base}.{exc.field}", str(exc))]) from None


def build_pod(
    graph: GraphDeployment,
    service_name: str,
    *,
    k8s_namespace: str,
    role: Role = "main",
    deployer: MultinodeDeployer | None = None,
    purpose: Purpose = "serve",
    indexed_job: tuple[str, str] | None = None,
) -> PodTemplate:
    """The pod template of one role of one service (``purpose="checkpoint"``: the pod of the
    service's checkpoint Job).

    ``indexed_job``: (Job name, headless Service name) for the pods of a multinode trainer's
    Indexed Job (``workloads.trainer_job``).
    """
    view = resolve_service(graph, service_name, k8s_namespace)
    container = _main_container(view)  # 1-2
    container["env"] = _env(view)  # 3
    if not container["env"]:
        del container["env"]  # a paired engine server with no env of the user's
    _set_probes(view, container)  # 4
    _set_resources(view, container)  # 5
    _set_env_from(view, container)  # 6
    pvc_volumes = _mount_pvcs(view, container)  # 7
    # 8. The engine's flags and container changes for this role (a paired server's port first:
    # TRT-LLM's leader wraps the command it is given into its mpirun script).
    ctx = _engine_context(view, role, deployer)
    if view.server and role != "worker":
        container = sidecar.with_port_flags(container, view.server)
    if view.engine:
        container = engines.update_container(view.engine, container, ctx)
    spec = _pod_spec(view)  # 9
    _add_volumes(view, spec, container, pvc_volumes)  # 10
    # 11. The workload container goes after the user's containers.
    spec["containers"] = [*spec.get("containers", []), container]
    spec, extra_objects = _engine_pod_changes(view, spec, ctx)  # 12
    spec, needed = _training(view, spec, deployer, indexed_job)  # 13
    extra_objects += needed
    if view.svc.frontendSidecar is not None:  # 14
        spec["containers"].append(_frontend_sidecar(graph, service_name, k8s_namespace))
    metadata = _pod_metadata(view, role)
    _worker_sidecar(view, spec, role)  # 15
    _service_account(view, spec)  # 16
    extra_objects += _gpu_claim(view, spec)  # 17
    _gms(view, spec)  # 18
    if purpose == "serve":
        # After 17 and 18, so that both engines carry the claim, the GMS mount and its env.
        _failover(view, spec)  # 19
    _checkpoint(view, spec, metadata, purpose)  # 20
    return PodTemplate(metadata=metadata, spec=spec, extra_objects=extra_objects)


def _worker_sidecar(view: ServiceView, spec: dict[str, Any], role: Role) -> None:
    """15. A paired engine server gets the drivetrain worker as a native sidecar (the leader
    only, in a multinode group: the other ranks serve no HTTP)."""
    if view.server is None or role == "worker":
        return
    image = view.table.default_image
    assert image is not None  # the drivetrain profile has one
    worker = view.role_defaults
    container = sidecar.worker_sidecar(
        view.server,
        image,
        service_env(view.graph, view.name, view.k8s_namespace),
        worker.ports,
        worker.readiness,
    )
    spec["initContainers"] = [*spec.get("initContainers", []), container]


def _service_account(view: ServiceView, spec: dict[str, Any]) -> None:
    """16. Pods that name no ServiceAccount run as their graph role's (render/rbac.py)."""
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        return
    account = rbac.service_account(view.graph, view.name)
    if account:
        spec["serviceAccountName"] = account


def _frontend_sidecar(
    graph: GraphDeployment, service_name: str, k8s_namespace: str
) -> dict[str, Any]:
    svc = graph.spec.services[service_name]
    sidecar = svc.frontendSidecar
    assert sidecar is not None
    role = profile_of(graph).roles["frontend"]
    container = _base_container(role)
    container["name"] = "sidecar-frontend"
    container["image"] = sidecar.image
    container["command"] = list(role.command)
    container["args"] = list(sidecar.args) if sidecar.args else list(role.args)
    if not container["args"]:
        container.pop("args")
    injected = service_env(graph, service_name, k8s_namespace, component_type="frontend")
    container["env"] = merge_env(injected, _env_dicts(sidecar.envs))
    if sidecar.envFromSecret:
        container["envFrom"] = [{"secretRef": {"name": sidecar.envFromSecret}}]
    return container
