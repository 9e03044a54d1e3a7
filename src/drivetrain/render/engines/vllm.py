"""vLLM multinode: tensor/pipeline parallelism over mp (default) or Ray, or hybrid data parallelism.

Which path applies follows Dynamo (docs/engines.md): with ``g`` GPUs per pod (``limits.gpu``),
``world = tp × pp``; ``world > g`` needs distributed TP/PP; else ``world × dp > g`` needs
data-parallel ranks across pods; else each pod is independent and nothing is injected.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from drivetrain.cmdline import has_flag, int_flag
from drivetrain.podcontainers import main_container
from drivetrain.render.engines.base import MASTER_PORT, EngineContext
from drivetrain.render.engines.inject import (
    append_env,
    arg_tokens,
    flags,
    inject_flags,
    original_script,
    remove_probes,
)
from drivetrain.render.expr import Context, IntLit, Word
from drivetrain.render.naming import GRAPH_LABEL

RAY_PORT = 6379
DP_RPC_PORT = 13445
WAIT_VOLUME = "wait-leader-script"
WAIT_SCRIPT = "wait-for-leader.py"
WAIT_CONTAINER = "wait-for-leader-mp"

# Every spelling vLLM reads: its FlexibleArgumentParser turns `_` into `-` in long options.
TP_FLAGS = ("--tensor-parallel-size", "--tensor_parallel_size", "-tp")
PP_FLAGS = ("--pipeline-parallel-size", "--pipeline_parallel_size", "-pp")
DP_FLAGS = ("--data-parallel-size", "--data_parallel_size", "-dp")

Mode = Literal["none", "tp", "dp"]
Executor = Literal["mp", "ray"]
EXECUTOR_ANNOTATION = "nvidia.com/vllm-distributed-executor-backend"


def _size(tokens: list[str], names: tuple[str, ...]) -> int:
    """A parallel size as vLLM reads it (the last one given); 1 when absent or not a number."""
    value = int_flag(tokens, *names)
    return value if isinstance(value, int) else 1


def _parallel_sizes(container: dict[str, Any]) -> tuple[int, int]:
    """``(tp × pp, dp)`` from the container's command line."""
    tokens = arg_tokens(container)
    return _size(tokens, TP_FLAGS) * _size(tokens, PP_FLAGS), _size(tokens, DP_FLAGS)


def mode_of(container: dict[str, Any], ctx: EngineContext) -> Mode:
    world, dp = _parallel_sizes(container)
    gpus = ctx.gpus_limit
    if gpus and world > gpus:
        return "tp"
    if gpus and world * dp > gpus:
        return "dp"
    return "none"


def _mp_flags(ctx: EngineContext) -> list[Word]:
    words = flags(
        "--distributed-executor-backend", "mp",
        "--nnodes", str(ctx.node_count),
        "--master-addr", ctx.leader_host,
        "--master-port", str(MASTER_PORT),
        "--node-rank", ctx.rank(),
    )  # fmt: skip
    return words + (flags("--headless") if ctx.role == "worker" else [])


def _dp_flags(container: dict[str, Any], ctx: EngineContext) -> list[Word]:
    world, dp = _parallel_sizes(container)
    local = ctx.gpus_limit // world
    total = dp if dp != 1 else local * ctx.node_count
    words = flags("--data-parallel-hybrid-lb")
    if not has_flag(arg_tokens(container), *DP_FLAGS):
        words += flags("--data-parallel-size", str(total))
    start = IntLit(0) if ctx.role == "leader" else IntLit(local) * ctx.deployer.node_rank()
    return words + flags(
        "--data-parallel-size-local", str(local),
        "--data-parallel-start-rank", start,
        "--data-parallel-address", ctx.leader_host,
        "--data-parallel-rpc-port", str(DP_RPC_PORT),
    )  # fmt: skip


def _ray(container: dict[str, Any], ctx: EngineContext) -> dict[str, Any]:
    """Ray: the leader starts the head then the engine; workers only join the cluster."""
    out = dict(container)
    if ctx.role == "leader":
        with_flag = inject_flags(container, flags("--distributed-executor-backend", "ray"), "vllm")
        script = f"ray start --head --port={RAY_PORT} && {original_script(with_flag)}"
    else:
        leader = ctx.leader_host.render(Context.SHELL)
        script = f"ray start --address={leader}:{RAY_PORT} --block"
    out["command"], out["args"] = ["/bin/sh", "-c"], [script]
    return out


def executor_for(annotations: dict[str, str] | None, default: Executor = "mp") -> Executor:
    """vLLM's multinode executor: Dynamo's annotation (mp|ray, any case) wins, else ``default``.

    Unlike Dynamo, the operator origin version plays no part: drivetrain's default is mp.
    """
    value = (annotations or {}).get(EXECUTOR_ANNOTATION, "").strip().lower()
    if value == "mp":
        return "mp"
    if value == "ray":
        return "ray"
    return default


def update_container(container: dict[str, Any], ctx: EngineContext) -> dict[str, Any]:
    out = copy.deepcopy(container)
    if ctx.compilation_cache_mount:
        out = append_env(out, {"name": "VLLM_CACHE_ROOT", "value": ctx.compilation_cache_mount})
    if not ctx.multinode:
        return out
    mode = mode_of(out, ctx)
    if mode == "tp" and ctx.executor == "ray":
        out = _ray(out, ctx)
    elif mode == "tp":
        out = inject_flags(out, _mp_flags(ctx), "vllm")
        # NIXL's side channel must advertise this pod's own address, not localhost.
        out = append_env(
            out,
            {
                "name": "VLLM_NIXL_SIDE_CHANNEL_HOST",
                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
            },
        )
    elif mode == "dp":
        out = inject_flags(out, _dp_flags(out, ctx), "vllm")
    if ctx.role == "worker":
        out = remove_probes(out, "livenessProbe", "readinessProbe", "startupProbe")
    return out


def wait_leader_configmap_name(graph_name: str) -> str:
    return f"{graph_name}-wait-leader-script"


def needs_wait_for_leader(pod_spec: dict[str, Any], ctx: EngineContext) -> bool:
    """An mp worker joins the leader's torch.distributed rendezvous and must not start first.

    Only the TP/PP-across-nodes path has that rendezvous (``--master-addr``); a
    data-parallel or independent pod has nothing to wait for.  Dynamo adds the wait to
    every mp worker.
    """
    if not (ctx.node_count > 1 and ctx.role == "worker" and ctx.executor == "mp"):
        return False
    main = main_container(pod_spec)
    return main is not None and mode_of(main, ctx) == "tp"


def update_pod_spec(
    pod_spec: dict[str, Any], ctx: EngineContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """mp workers wait for the leader's rendezvous port before the engine starts.

    Returns the new pod spec and the objects it needs (the wait script's ConfigMap).
    """
    spec = copy.deepcopy(pod_spec)
    if not needs_wait_for_leader(spec, ctx):
        return spec, []
    main = main_container(spec)
    assert main is not None
    # Rendered for the shell that runs the init container's script: ${VAR}, which reads
    # the env the deployer's controller injects whatever its order.
    host = ctx.leader_host.render(Context.SHELL)
    init: dict[str, Any] = {
        "name": WAIT_CONTAINER,
        "image": main.get("image", ""),
        "command": [
            "sh",
            "-c",
            f'export LEADER_HOST="{host}" LEADER_PORT="{MASTER_PORT}" '
            f"&& exec python3 /scripts/{WAIT_SCRIPT}",
        ],
        "volumeMounts": [{"name": WAIT_VOLUME, "mountPath": "/scripts", "readOnly": True}],
    }
    spec["initContainers"] = [
        *(c for c in spec.get("initContainers", []) if c.get("name") != WAIT_CONTAINER),
        init,
    ]
    spec["volumes"] = [
        *(v for v in spec.get("volumes", []) if v.get("name") != WAIT_VOLUME),
        {"name": WAIT_VOLUME, "configMap": {"name": wait_leader_configmap_name(ctx.graph_name)}},
    ]
    return spec, [wait_leader_configmap(ctx.graph_name)]


# Drivetrain's own wait: resolve the leader and connect to its port, retrying.  Unlike
# Dynamo's script it reads no Kubernetes API, so the pod needs no service account rights;
# a leader that is not up yet refuses the connection or does not resolve, and we retry.
WAIT_FOR_LEADER_PY = '''\
"""Wait until the multinode leader accepts TCP connections on its rendezvous port."""
import os
import socket
import sys
import time

host = os.environ["LEADER_HOST"]
port = int(os.environ["LEADER_PORT"])
interval = float(os.environ.get("WAIT_INTERVAL_SECONDS", "5"))
deadline = time.monotonic() + float(os.environ.get("WAIT_TIMEOUT_SECONDS", "3600"))
while True:
    try:
        with socket.create_connection((host, port), timeout=3):
            print(f"leader {host}:{port} accepts connections", flush=True)
            sys.exit(0)
    except OSError as exc:
        if time.monotonic() >= deadline:
            print(f"gave up waiting for leader {host}:{port}: {exc}", file=sys.stderr)
            sys.exit(1)
        print(f"waiting for leader {host}:{port}: {exc}", flush=True)
        time.sleep(interval)
'''


def wait_leader_configmap(graph_name: str, namespace: str | None = None) -> dict[str, Any]:
    """The ConfigMap with the wait script that mp workers' init containers run."""
    metadata: dict[str, Any] = {
        "name": wait_leader_configmap_name(graph_name),
        "labels": {GRAPH_LABEL: graph_name},
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {WAIT_SCRIPT: WAIT_FOR_LEADER_PY},
    }
