"""Turn a graph into the processes ``drivetrain up`` runs: a pure function, no side effects.

Every frontend and worker service becomes ``replicas`` process specs with the command and env
the renderer would give its pod (``render.profiles``), adapted to one machine:

* ``drivetrain ...`` runs as ``sys.executable -m drivetrain.cli.main ...`` so the processes use
  the same installation as ``up`` itself (no reliance on PATH).
* The frontend gets ``--port`` (replica *i* gets ``port + i``) and ``--host`` (loopback unless
  ``up --host`` says otherwise).
* A worker's request plane listens on 127.0.0.1 and a free port (the pod's fixed 9090 on
  0.0.0.0 would collide between replicas and be reachable from outside).
* Downward-API env (POD_NAME, POD_IP...) gets local values and ``$(VAR)`` references are
  expanded as the kubelet does; discovery comes from ``up``.

Anything else (``python3 -m dynamo.vllm``, a planner) cannot run here: ``plan_graph`` raises
``UnrunnableGraph`` naming every such service before anything starts.
"""

from __future__ import annotations

import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivetrain.api.models import WORKER_TYPES, GraphDeployment
from drivetrain.errors import DrivetrainError
from drivetrain.render.profiles import main_command, service_env

#: How a drivetrain command is started: the interpreter running ``up`` and its package.
DRIVETRAIN_ARGV = [sys.executable, "-m", "drivetrain.cli.main"]
RUNNABLE_TYPES = {"frontend", *WORKER_TYPES}
#: env every local worker gets last: loopback request plane on a free port.
LOCAL_WORKER_ENV = {
    "DRIVETRAIN_RPC_HOST": "127.0.0.1",
    "DRIVETRAIN_RPC_PORT": "0",
    "DRIVETRAIN_ADVERTISE_HOST": "127.0.0.1",
}
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


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

    @property
    def name(self) -> str:
        return f"{self.service}/{self.replica}"


def _replace_flag(args: list[str], flag: str, value: str, add: bool) -> list[str]:
    """``args`` with ``flag``'s value set to ``value`` (``--flag v`` or ``--flag=v``)."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg == flag and i + 1 < len(out):
            out[i + 1] = value
            return out
        if arg.startswith(flag + "="):
            out[i] = f"{flag}={value}"
            return out
    return [*out, flag, value] if add else out


def flag_values(args: list[str], flag: str) -> list[str]:
    """Every value given to ``flag`` in ``args``."""
    values = []
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
    return values


def expand_refs(value: str, env: dict[str, str]) -> str:
    """Kubelet ``$(VAR)`` expansion: a defined VAR is replaced, an undefined one stays as
    written, ``$$`` is a literal ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, value)


def _local_env(
    rendered: list[dict[str, Any]], service: str, replica: int, graph: str, k8s_ns: str
) -> tuple[dict[str, str], list[str]]:
    """Rendered env entries as plain values; downward-API fields get this machine's values."""
    downward = {
        "metadata.name": f"{graph}-{service.lower()}-{replica}",
        "metadata.namespace": k8s_ns,
        "metadata.uid": str(uuid.uuid4()),
        "status.podIP": "127.0.0.1",
    }
    env: dict[str, str] = {}
    problems: list[str] = []
    for entry in rendered:
        name = entry["name"]
        if entry.get("value") is not None:
            env[name] = expand_refs(str(entry["value"]), env)
            continue
        field_path = ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if field_path in downward:
            env[name] = downward[field_path]
        else:
            problems.append(
                f"service {service}: env {name} takes its value from the cluster "
                f"({entry.get('valueFrom')}), which `drivetrain up` cannot provide"
            )
    return env, problems


def _argv(command: list[str], args: list[str]) -> list[str] | None:
    """The local argv, or None when the command is not drivetrain's own."""
    if command[:1] == ["drivetrain"]:
        return [*DRIVETRAIN_ARGV, *command[1:], *args]
    return None


def plan_graph(
    graph: GraphDeployment,
    *,
    port: int,
    discovery: str,
    cwd: Path,
    host: str = "127.0.0.1",
    k8s_namespace: str | None = None,
) -> list[ProcessSpec]:
    """Every process of ``graph``, frontends first; raises ``UnrunnableGraph`` listing all
    problems (nothing has started when it does)."""
    k8s_ns = k8s_namespace or graph.metadata.namespace or "default"
    problems: list[str] = []
    specs: list[ProcessSpec] = []
    frontends = 0
    services = sorted(
        graph.spec.services.items(), key=lambda kv: (kv[1].componentType != "frontend", kv[0])
    )
    for name, svc in services:
        if svc.componentType not in RUNNABLE_TYPES:
            problems.append(
                f"service {name}: componentType {svc.componentType!r} is not run by "
                f"`drivetrain up` (only frontend and worker/prefill/decode services are)"
            )
            continue
        if svc.multinode is not None:
            problems.append(
                f"service {name}: multinode services need a cluster; `drivetrain up` runs "
                "single-process services only"
            )
            continue
        command, args = main_command(graph, name)
        argv = _argv(command, args)
        if argv is None:
            image = svc.main_container.get("image")
            needs = f" (it needs the image {image})" if image else ""
            problems.append(
                f"service {name}: command `{' '.join([*command, *args])}` is not a drivetrain "
                f"command{needs}; `drivetrain up` runs drivetrain's own frontend and workers only"
            )
            continue
        rendered = service_env(graph, name, k8s_ns)
        extra = [e.model_dump(exclude_none=True) for e in (graph.spec.envs or [])]
        extra += [e.model_dump(exclude_none=True) for e in (svc.envs or [])]
        for replica in range(svc.replica_count):
            env, env_problems = _local_env([*rendered, *extra], name, replica, graph.name, k8s_ns)
            if env_problems:
                problems += env_problems
                break
            # The embedded (or --discovery) store wins over spec.discovery, a cluster address.
            env["DRIVETRAIN_DISCOVERY"] = discovery
            if svc.componentType == "frontend":
                replica_port = port + frontends
                frontends += 1
                local_argv = _replace_flag(argv, "--port", str(replica_port), add=True)
                local_argv = _replace_flag(local_argv, "--host", host, add=True)
                specs.append(
                    ProcessSpec(
                        name,
                        replica,
                        svc.componentType,
                        local_argv,
                        env,
                        str(cwd),
                        port=replica_port,
                    )
                )
            else:
                env.update(LOCAL_WORKER_ENV)
                local_argv = [*argv]
                models = tuple(flag_values(local_argv, "--model-name"))
                specs.append(
                    ProcessSpec(
                        name, replica, svc.componentType, local_argv, env, str(cwd), models=models
                    )
                )
    if problems:
        raise UnrunnableGraph(problems)
    if not specs:
        raise UnrunnableGraph([f"graph {graph.name}: no frontend or worker service to run"])
    if frontends == 0:
        raise UnrunnableGraph([f"graph {graph.name}: no frontend service; nothing would serve"])
    return specs
