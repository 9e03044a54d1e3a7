"""Turn a graph into the processes ``drivetrain up`` runs: a pure function, no side effects.

The plan consumes the renderer: each runnable service's pod template comes from
``render_graph`` (the same objects ``drivetrain render`` prints), and every container of it that
runs as a local process (``local_containers``: the main container, or a failover pod's engine
containers) becomes ``replicas`` process specs with that container's command, args and env,
built as the kubelet builds them (``drivetrain.cmdline.expand``), then adapted to one machine:

* Downward-API env (POD_NAME, POD_IP...) gets local values; values the kubelet would read from
  a Secret or a ConfigMap come from ``--env-file`` or are refused, naming the graph field.
* ``drivetrain ...`` runs as ``sys.executable -m drivetrain.cli.main ...`` so the processes use
  the same installation as ``up`` itself (no reliance on PATH).
* The frontend gets ``--port`` (replica *i* gets ``port + i``) and ``--host`` (loopback unless
  ``up --host`` says otherwise).
* A worker's request plane listens on 127.0.0.1 and a free port (the pod's fixed 9090 on
  0.0.0.0 would collide between replicas and be reachable from outside).
* The engines of a failover pod share a lock file per replica in ``up``'s state folder (the
  pod's shared emptyDir has no local equivalent), given by ``--failover-lock`` or
  ``FAILOVER_LOCK_PATH``, whichever the container uses.
* Discovery comes from ``up``.

Anything else (``python3 -m dynamo.vllm``, a planner) cannot run here: ``plan_graph`` raises
``UnrunnableGraph`` naming every such service before anything starts.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from drivetrain import envnames, podcontainers
from drivetrain.api.errors import InvalidGraph
from drivetrain.api.models import WORKER_TYPES, GraphDeployment
from drivetrain.cmdline import expand_argv, flag_value, has_flag, replace_flag
from drivetrain.errors import DrivetrainError
from drivetrain.local.podenv import ClusterEnv
from drivetrain.render import render_graph
from drivetrain.render.naming import SELECTOR_LABEL, resource_name
from drivetrain.render.profiles import main_command
from drivetrain.render.sidecar import engine_server_of, is_worker_sidecar

#: How a drivetrain command is started: the interpreter running ``up`` and its package.
DRIVETRAIN_ARGV = [sys.executable, "-m", "drivetrain.cli.main"]
RUNNABLE_TYPES = {"frontend", *WORKER_TYPES}
#: The container of a rendered pod that runs the service's own program.
MAIN_CONTAINER = "main"
#: env every local worker gets last: loopback request plane on a free port.
LOCAL_WORKER_ENV = {
    envnames.RPC_HOST: "127.0.0.1",
    envnames.RPC_PORT: "0",
    envnames.ADVERTISE_HOST: "127.0.0.1",
}
#: the same as flags, where a rendered command line gives them (a flag wins over its variable)
LOCAL_WORKER_FLAGS = {"--rpc-host": "127.0.0.1", "--rpc-port": "0", "--advertise-host": "127.0.0.1"}
#: the folder of ``up``'s state folder holding the failover locks, one per replica
FAILOVER_DIR = "failover"


class UnrunnableGraph(DrivetrainError):
    """A graph (or a service of it) that ``drivetrain up`` cannot run on this machine."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ProcessSpec:
    service: str
    replica: int
    component_type: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    #: the frontend's HTTP port (None for workers)
    port: int | None = None
    #: models a worker serves (its ``--model-name``), for the readiness check
    models: tuple[str, ...] = field(default=())
    #: the rendered container this process stands for
    container: str = MAIN_CONTAINER

    @property
    def name(self) -> str:
        if self.container == MAIN_CONTAINER:
            return f"{self.service}/{self.replica}"
        return f"{self.service}/{self.replica}/{self.container}"


def local_containers(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The containers of a rendered pod that ``up`` runs as processes of the service.

    One rule for every service: the main container, or, in a failover pod, its engine
    containers (``engine-0``, ``engine-1``: clones of main that share a failover lock;
    docs/gms-failover.md), in pod order; and the drivetrain worker paired with an engine server
    as a native sidecar (render/sidecar.py), which starts first. User sidecars and init
    containers (GMS's server among them) are not run: they need their images. A paired service
    is refused before this is asked (``_service_problems``): its main container is the engine
    itself.
    """
    sidecars = [c for c in pod_spec.get("initContainers") or [] if is_worker_sidecar(c)]
    mains = [
        c
        for c in pod_spec.get("containers") or []
        if c.get("name") == MAIN_CONTAINER or podcontainers.is_engine_container(str(c.get("name")))
    ]
    return [*sidecars, *mains]


def pod_templates(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The pod templates of the rendered Deployments by selector label (``<graph>-<service>``).

    Deployments only: multinode services (LeaderWorkerSets, Grove cliques) are refused before
    rendering, and every other runnable service renders as a Deployment.
    """
    return {
        obj["spec"]["selector"]["matchLabels"][SELECTOR_LABEL]: obj["spec"]["template"]
        for obj in objects
        if obj.get("kind") == "Deployment"
    }


def drivetrain_argv(words: list[str]) -> list[str] | None:
    """The local argv of a drivetrain command, or None when the words run another program."""
    if words[:1] == ["drivetrain"]:
        return [*DRIVETRAIN_ARGV, *words[1:]]
    return None


def _foreign_command(name: str, words: list[str], image: str | None) -> str:
    needs = f" (it needs the image {image})" if image else ""
    return (
        f"service {name}: command `{' '.join(words)}` is not a drivetrain command{needs}; "
        "`drivetrain up` runs drivetrain's own frontend and workers only"
    )


def _service_problems(graph: GraphDeployment) -> dict[str, str]:
    """What rules a service out whatever it renders to: its type, multinode, another program."""
    problems = {}
    for name, svc in graph.spec.services.items():
        if svc.componentType not in RUNNABLE_TYPES:
            problems[name] = (
                f"service {name}: componentType {svc.componentType!r} is not run by "
                f"`drivetrain up` (only frontend and worker/prefill/decode services are)"
            )
        elif svc.multinode is not None:
            problems[name] = (
                f"service {name}: multinode services need a cluster; `drivetrain up` runs "
                "single-process services only"
            )
        else:
            command, args = main_command(graph, name)
            paired = _engine_server_problem(graph, name, command, args)
            if paired:
                problems[name] = paired
            elif drivetrain_argv([*command, *args]) is None:
                image = svc.main_container.get("image")
                problems[name] = _foreign_command(name, [*command, *args], image)
    return problems


def _engine_server_problem(
    graph: GraphDeployment, name: str, command: list[str], args: list[str]
) -> str | None:
    """Why a worker whose main container is an engine's own server cannot run here."""
    try:
        server = engine_server_of(graph, name, command, args)
    except InvalidGraph:
        return None  # the render reports it
    if server is None:
        return None
    what = f"`{' '.join([*command, *args])}`" if command or args else "an engine server"
    return (
        f"service {name}: runs the engine server {what}, which a cluster pairs with a "
        "drivetrain worker sidecar; `drivetrain up` does not run engines here (they need their "
        "image and accelerators): run the engine yourself with `drivetrain worker --engine http "
        "--upstream <its URL>` beside it (docs/runtime.md)"
    )


def _render(
    graph: GraphDeployment, namespace: str, refused: dict[str, str]
) -> list[dict[str, Any]]:
    """The graph's objects. A graph that does not render because of a service ``up`` refuses
    anyway (a Dynamo image named nowhere) reports the refusals, which say what to do."""
    try:
        return render_graph(graph, namespace=namespace)
    except InvalidGraph:
        if refused:
            raise UnrunnableGraph(list(refused.values())) from None
        raise


def plan_graph(
    graph: GraphDeployment,
    *,
    port: int,
    discovery: str,
    cwd: Path,
    host: str = "127.0.0.1",
    k8s_namespace: str | None = None,
    env_file: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> list[ProcessSpec]:
    """Every process of ``graph``, frontends first; raises ``UnrunnableGraph`` listing all
    problems (nothing has started when it does), or ``InvalidGraph`` when it does not render.

    ``env_file`` holds the values ``--env-file`` gives for what the kubelet would read from
    Secrets and ConfigMaps; ``state_dir`` is the folder of this run's local state (the failover
    locks go in its ``failover/`` folder, which the caller creates).
    """
    k8s_ns = k8s_namespace or graph.metadata.namespace or "default"
    objects = _render(graph, k8s_ns, _service_problems(graph))
    return plan_objects(
        graph,
        objects,
        port=port,
        discovery=discovery,
        cwd=cwd,
        host=host,
        k8s_namespace=k8s_ns,
        env_file=env_file,
        state_dir=state_dir,
    )


def plan_objects(
    graph: GraphDeployment,
    objects: list[dict[str, Any]],
    *,
    port: int,
    discovery: str,
    cwd: Path,
    host: str = "127.0.0.1",
    k8s_namespace: str | None = None,
    env_file: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> list[ProcessSpec]:
    """``plan_graph`` from objects already rendered for ``graph`` (``render_graph``'s)."""
    k8s_ns = k8s_namespace or graph.metadata.namespace or "default"
    refused = _service_problems(graph)
    templates = pod_templates(objects)
    cluster = ClusterEnv.of(objects, env_file)
    problems = list(refused.values())
    specs: list[ProcessSpec] = []
    frontends = 0
    services = sorted(
        graph.spec.services.items(), key=lambda kv: (kv[1].componentType != "frontend", kv[0])
    )
    for name, svc in services:
        if name in refused:
            continue
        template = templates[resource_name(graph, name)]
        containers = []
        for container in local_containers(template["spec"]):
            words = [*(container.get("command") or []), *(container.get("args") or [])]
            if drivetrain_argv(words) is None:
                problems.append(_foreign_command(name, words, container.get("image")))
            else:
                containers.append(container)
        failover = [c["name"] for c in containers if c["name"] != MAIN_CONTAINER]
        for replica in range(svc.replica_count):
            pod_name = f"{graph.name}-{name.lower()}-{replica}"
            pod = {
                "metadata.name": pod_name,
                "metadata.namespace": k8s_ns,
                "metadata.uid": str(uuid.uuid4()),
                "status.podIP": "127.0.0.1",
            }
            for container in containers:
                env, env_problems = cluster.container_env(container, pod, graph, name)
                if env_problems:
                    # The same for every replica: listed once (duplicates are dropped below).
                    problems += [f"service {name}: {p}" for p in env_problems]
                    continue
                # The embedded (or --discovery) store wins over spec.discovery, a cluster address.
                env["DRIVETRAIN_DISCOVERY"] = discovery
                argv = drivetrain_argv(expand_argv(container, env))
                assert argv is not None  # the words were checked before expansion
                spec = ProcessSpec(
                    name,
                    replica,
                    svc.componentType,
                    argv,
                    env,
                    str(cwd),
                    container=container["name"],
                )
                if svc.componentType == "frontend":
                    specs.append(_frontend(spec, port + frontends, host))
                    frontends += 1
                    continue
                if failover:
                    lock_problem, spec = _failover_engine(spec, failover, state_dir, pod_name)
                    if lock_problem:
                        problems.append(lock_problem)
                        continue
                specs.append(_worker(spec))
    if problems:
        raise UnrunnableGraph(list(dict.fromkeys(problems)))
    if not specs:
        raise UnrunnableGraph([f"graph {graph.name}: no frontend or worker service to run"])
    if frontends == 0:
        raise UnrunnableGraph([f"graph {graph.name}: no frontend service; nothing would serve"])
    return specs


def _failover_engine(
    spec: ProcessSpec, engines: list[str], state_dir: Path | None, pod_name: str
) -> tuple[str | None, ProcessSpec]:
    """One engine of a failover pod, its lock moved from the pod's shared volume to a file of
    this replica in ``up``'s state folder (every engine of the replica gets the same one)."""
    flag = podcontainers.FAILOVER_LOCK_FLAG
    variable = podcontainers.FAILOVER_LOCK_ENV
    if not has_flag(spec.argv, flag) and variable not in spec.env:
        return (
            f"service {spec.service}: its failover engines ({', '.join(engines)}) share no "
            f"lock ({flag} or {variable}), so every one of them would serve",
            spec,
        )
    if state_dir is None:
        raise ValueError("plan_graph: a graph with failover engines needs a state_dir")
    lock = str(state_dir / FAILOVER_DIR / f"{pod_name}.lock")
    argv = replace_flag(spec.argv, flag, lock) if has_flag(spec.argv, flag) else spec.argv
    env = {**spec.env, variable: lock} if variable in spec.env else spec.env
    return None, replace(spec, argv=argv, env=env)


def _frontend(spec: ProcessSpec, port: int, host: str) -> ProcessSpec:
    argv = replace_flag(spec.argv, "--port", str(port), add=True)
    argv = replace_flag(argv, "--host", host, add=True)
    return replace(spec, argv=argv, port=port)


def _worker(spec: ProcessSpec) -> ProcessSpec:
    model = flag_value(spec.argv, "--model-name")
    argv = spec.argv
    for flag, value in LOCAL_WORKER_FLAGS.items():
        argv = replace_flag(argv, flag, value)
    return replace(
        spec,
        argv=argv,
        env={**spec.env, **LOCAL_WORKER_ENV},
        models=(model,) if model is not None else (),
    )
