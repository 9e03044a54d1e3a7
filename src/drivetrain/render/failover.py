"""Failover pods: the main container cloned into an active and a shadow engine (pure).

``engine-0`` and ``engine-1`` replace the main container at its place among the pod's
containers (a user's sidecars keep theirs).  They are cloned from the finished main container,
so they inherit everything earlier steps gave it: the DRA claim, the GMS socket mount and env,
engine flags, env and mounts (docs/gms-failover.md).  Each gets its own port, since the
containers of a pod share its network.

* ``dynamo`` profile (Dynamo's images, vLLM only): the env edits Dynamo's operator makes
  (``ENGINE_ID``, ``CONTAINER_NAME``, ``FAILOVER_LOCK_PATH`` on the GMS volume, a system port
  ``9090+i`` that starts ``notready``), vLLM's shadow mode and staggered side-channel, KV-event
  and rendezvous ports, ``NNODES`` for a multinode group.
* ``drivetrain`` profile (drivetrain's own worker): each engine runs the same
  ``drivetrain worker ...`` argv plus ``--failover-lock /failover/lock`` on a shared emptyDir,
  with ``ENGINE_ID=<i>``, ``DRIVETRAIN_CONTAINER=engine-<i>`` and its request-plane port
  ``DRIVETRAIN_RPC_PORT=9090+i``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from drivetrain import envnames
from drivetrain.cmdline import int_flag
from drivetrain.errors import DrivetrainError
from drivetrain.podcontainers import (
    ENGINE_COUNT,
    FAILOVER_DIR,
    FAILOVER_LOCK_FLAG,
    FAILOVER_LOCK_PATH,
    FAILOVER_VOLUME,
    engine_name,
    main_container_index,
)
from drivetrain.render.engines.inject import arg_tokens, inject_flags, set_env
from drivetrain.render.expr import as_word
from drivetrain.render.gpu import GMS_DIR

#: Each engine's system (dynamo) or request-plane (drivetrain) port is this plus its index.
BASE_PORT = 9090
LOCK_ENV = "FAILOVER_LOCK_PATH"
DYNAMO_LOCK_PATH = f"{GMS_DIR}/failover.lock"
#: Set per engine below; the main container's values would make both engines collide.
DYNAMO_REMOVED_ENV = frozenset(
    {
        envnames.DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS,
        envnames.DYN_SYSTEM_PORT,
        envnames.DYN_SYSTEM_ENABLED,
        envnames.DYN_HEALTH_CHECK_ENABLED,
        "CONTAINER_NAME",
    }
)
#: vLLM's ports that both engines of a pod would otherwise open: base + engine index.
VLLM_SIDE_CHANNEL_BASE = 5600
VLLM_KV_EVENT_BASE = 20080
#: The shadow's torch.distributed rendezvous port is the active's plus this.
MASTER_PORT_SHIFT = 100
DEFAULT_MASTER_PORT = 29500
MASTER_PORT_FLAG = "--master-port"

_PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
_MASTER_PORT_IN_SCRIPT = re.compile(r"(--master-port(?:=|\s+))(\d+)\b")


class FailoverError(DrivetrainError, ValueError):
    """A pod that cannot be made a failover pod; the message says why, ``field`` which field
    of the service it is about."""

    def __init__(self, message: str, field: str = "failover") -> None:
        super().__init__(message)
        self.field = field


def _port(name: str, number: int) -> dict[str, Any]:
    return {"name": name, "containerPort": number, "protocol": "TCP"}


def _retarget_probes(container: dict[str, Any], port_name: str, number: int) -> None:
    """Probes that named a port, or the base port by number, now check this engine's port:
    the clone's only named port is its own, and the base port belongs to engine 0."""
    for key in _PROBES:
        probe = container.get(key)
        if not isinstance(probe, dict):
            continue
        for handler in ("httpGet", "tcpSocket", "grpc"):
            target = probe.get(handler)
            if not isinstance(target, dict) or "port" not in target:
                continue
            port = target["port"]
            if isinstance(port, str) and not port.isdigit():
                target["port"] = port_name
            elif int(port) == BASE_PORT:
                target["port"] = number


def _shift_words(words: list[str]) -> list[str]:
    """Every ``--master-port N`` in ``words`` (separate words, ``=N``, or inside a script)
    becomes ``N + 100``."""
    out = list(words)
    for i, word in enumerate(out):
        if word == MASTER_PORT_FLAG and i + 1 < len(out) and out[i + 1].isdigit():
            out[i + 1] = str(int(out[i + 1]) + MASTER_PORT_SHIFT)
        elif MASTER_PORT_FLAG in word:
            out[i] = _MASTER_PORT_IN_SCRIPT.sub(
                lambda m: f"{m.group(1)}{int(m.group(2)) + MASTER_PORT_SHIFT}", word
            )
    return out


def _shift_master_port(container: dict[str, Any]) -> dict[str, Any]:
    """The shadow's vLLM rendezvous port: the active's ``--master-port`` plus 100, or
    ``--master-port 29600`` given to vLLM when the flag is absent (both engines of a pod would
    otherwise bind the same port)."""
    current = int_flag(arg_tokens(container), MASTER_PORT_FLAG)
    if current is None:
        shifted = str(DEFAULT_MASTER_PORT + MASTER_PORT_SHIFT)
        return inject_flags(container, [as_word(MASTER_PORT_FLAG), as_word(shifted)], "vllm")
    if not isinstance(current, int):
        raise FailoverError(
            f"cannot give the shadow engine its own {MASTER_PORT_FLAG}: the value "
            f"{current!r} is not a number",
            field="extraPodSpec.mainContainer.args",
        )
    out = copy.deepcopy(container)
    for key in ("command", "args"):
        if out.get(key):
            out[key] = _shift_words(out[key])
    return out


def dynamo_engine(
    main: dict[str, Any], index: int, *, engine: str, node_count: int
) -> dict[str, Any]:
    """Engine ``index`` of a Dynamo failover pod, cloned from ``main``."""
    out = copy.deepcopy(main)
    name = engine_name(index)
    port = BASE_PORT + index
    out["name"] = name
    out["ports"] = [_port(f"system-{index}", port)]
    out["env"] = [e for e in out.get("env") or [] if e.get("name") not in DYNAMO_REMOVED_ENV]
    added = [
        (envnames.ENGINE_ID, str(index)),
        ("CONTAINER_NAME", name),
        (LOCK_ENV, DYNAMO_LOCK_PATH),
        ("DYN_SYSTEM_STARTING_HEALTH_STATUS", "notready"),
        (envnames.DYN_SYSTEM_PORT, str(port)),
        (envnames.DYN_SYSTEM_ENABLED, "true"),
    ]
    if engine == "vllm":
        added += [
            ("DYN_VLLM_GMS_SHADOW_MODE", "true"),
            ("VLLM_NIXL_SIDE_CHANNEL_PORT", str(VLLM_SIDE_CHANNEL_BASE + index)),
            ("DYN_VLLM_KV_EVENT_PORT", str(VLLM_KV_EVENT_BASE + index)),
        ]
    if node_count > 1:
        added.append(("NNODES", str(node_count)))
    set_env(out, *({"name": n, "value": v} for n, v in added))
    _retarget_probes(out, f"system-{index}", port)
    if engine == "vllm" and index > 0:
        out = _shift_master_port(out)
    return out


def drivetrain_engine(main: dict[str, Any], index: int) -> dict[str, Any]:
    """Engine ``index`` of a drivetrain failover pod: ``drivetrain worker ... --failover-lock``."""
    out = copy.deepcopy(main)
    port = BASE_PORT + index
    out["name"] = engine_name(index)
    out["ports"] = [_port(f"rpc-{index}", port)]
    set_env(
        out,
        {"name": envnames.RPC_PORT, "value": str(port)},
        {"name": envnames.ENGINE_ID, "value": str(index)},
        # Two workers in one pod: each registers under its own name in kubernetes:// discovery.
        {"name": envnames.CONTAINER, "value": out["name"]},
    )
    out["args"] = [*(out.get("args") or []), FAILOVER_LOCK_FLAG, FAILOVER_LOCK_PATH]
    out["volumeMounts"] = [
        *(out.get("volumeMounts") or []),
        {"name": FAILOVER_VOLUME, "mountPath": FAILOVER_DIR},
    ]
    _retarget_probes(out, f"rpc-{index}", port)
    return out


def runs_drivetrain_worker(container: dict[str, Any]) -> bool:
    """Whether the container's argv is ``drivetrain worker ...`` with no shell around it."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    return argv[:2] == ["drivetrain", "worker"]


def apply_failover(
    spec: dict[str, Any], *, profile: str, engine: str | None, node_count: int
) -> None:
    """Replace the main container with ``engine-0`` and ``engine-1`` (in place).

    Run after every step that changes the main container, so both engines carry its result.
    """
    index = main_container_index(spec)
    if index is None:
        raise FailoverError("the pod spec has no container to run as failover engines")
    containers = list(spec["containers"])
    main = containers[index]
    if profile == "dynamo":
        if engine != "vllm":
            detected = engine or "none detected"
            raise FailoverError(
                f"failover is supported only for vLLM (engine: {detected}); SGLang and "
                "TRT-LLM failover are not supported yet"
            )
        engines = [
            dynamo_engine(main, i, engine=engine, node_count=node_count)
            for i in range(ENGINE_COUNT)
        ]
    else:
        if not runs_drivetrain_worker(main):
            argv = " ".join([*(main.get("command") or []), *(main.get("args") or [])])
            raise FailoverError(
                "failover under the drivetrain profile runs `drivetrain worker ... "
                f"{FAILOVER_LOCK_FLAG} PATH` as two engines; the main container runs `{argv}` "
                "(use `drivetrain worker` in exec form, or profile: dynamo for Dynamo's images)",
                field="extraPodSpec.mainContainer",
            )
        engines = [drivetrain_engine(main, i) for i in range(ENGINE_COUNT)]
        spec["volumes"] = [
            *(v for v in spec.get("volumes") or [] if v.get("name") != FAILOVER_VOLUME),
            {"name": FAILOVER_VOLUME, "emptyDir": {}},
        ]
    spec["containers"] = [*containers[:index], *engines, *containers[index + 1 :]]
