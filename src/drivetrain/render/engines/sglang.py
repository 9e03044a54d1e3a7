"""SGLang multinode: ``--dist-init-addr <leader>:29500 --nnodes <n> --node-rank <rank>``."""

from __future__ import annotations

import copy
from typing import Any

from drivetrain.render.engines.base import MASTER_PORT, EngineContext
from drivetrain.render.engines.inject import flags, inject_flags, remove_probes
from drivetrain.render.expr import Word


def multinode_flags(ctx: EngineContext) -> list[Word]:
    return flags(
        "--dist-init-addr", ctx.leader_host + f":{MASTER_PORT}",
        "--nnodes", str(ctx.node_count),
        "--node-rank", ctx.rank(),
    )  # fmt: skip


def update_container(container: dict[str, Any], ctx: EngineContext) -> dict[str, Any]:
    if not ctx.multinode:
        return copy.deepcopy(container)
    out = inject_flags(container, multinode_flags(ctx), "sglang")
    if ctx.role == "worker":
        # Workers serve no HTTP; the leader's probes speak for the group.
        out = remove_probes(out, "livenessProbe", "readinessProbe", "startupProbe")
    return out


def update_pod_spec(
    pod_spec: dict[str, Any], ctx: EngineContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return copy.deepcopy(pod_spec), []
