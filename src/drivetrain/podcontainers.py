"""Which containers of a pod run the workload: ``main``, or the two failover engines.

A leaf module (it imports nothing of drivetrain), because the renderer, ``drivetrain up``, the
snapshot agent and verify all need the same answer:

* **the main container** is the one named ``main``, else the first container.  Every feature
  that changes "the workload container" (engine flags, probes, the DRA claim, the GPU memory
  service, failover, checkpoint/restore) resolves it here, once.  Dynamo's operator wires
  ``Containers[0]`` for GMS, DRA and failover, which is a user sidecar whenever
  ``extraPodSpec.containers`` is set (the main container is appended after them); drivetrain
  looks it up by name (docs/gms-failover.md).
* **the failover engines** ``engine-0`` (starts active) and ``engine-1`` (starts as the shadow)
  replace the main container of a service with ``failover.enabled``.

The contract between the renderer and drivetrain's own runtime for failover (the ``drivetrain``
profile, docs/gms-failover.md) is written here too: each engine runs the main container's
``drivetrain worker ...`` argv plus ``--failover-lock <LOCK_PATH>``, with ``ENGINE_ID=<i>``,
``DRIVETRAIN_CONTAINER=engine-<i>`` and its own request-plane port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

MAIN_CONTAINER = "main"

#: How many engines a failover pod runs: one active, one shadow (Dynamo's ``numShadows: 1``).
ENGINE_COUNT = 2

#: The flag that makes ``drivetrain worker`` one of a failover pair sharing a lock file.
FAILOVER_LOCK_FLAG = "--failover-lock"
#: Dynamo's operator gives each engine the lock's path in this variable; the flag reads it too.
FAILOVER_LOCK_ENV = "FAILOVER_LOCK_PATH"
#: The emptyDir both engines of a drivetrain-profile failover pod mount, and the lock in it.
FAILOVER_VOLUME = "failover"
FAILOVER_DIR = "/failover"
FAILOVER_LOCK_PATH = f"{FAILOVER_DIR}/lock"


def engine_name(index: int) -> str:
    """``engine-<index>``: the container name of failover engine ``index``."""
    return f"engine-{index}"


ENGINE_NAMES: tuple[str, ...] = tuple(engine_name(i) for i in range(ENGINE_COUNT))
_ENGINE_NAME = re.compile(r"engine-(0|[1-9][0-9]*)")


def is_engine_container(name: str) -> bool:
    """Whether ``name`` is a failover engine's container name (``engine-<i>``)."""
    return _ENGINE_NAME.fullmatch(name) is not None


def _containers(pod_spec: Mapping[str, Any]) -> Sequence[Any]:
    containers = pod_spec.get("containers")
    return containers if isinstance(containers, list) else []


def main_container_index(pod_spec: Mapping[str, Any]) -> int | None:
    """The index of the main container: the one named ``main``, else 0; None when there is
    no container at all."""
    containers = _containers(pod_spec)
    for i, container in enumerate(containers):
        if isinstance(container, Mapping) and container.get("name") == MAIN_CONTAINER:
            return i
    return 0 if containers else None


def main_container(pod_spec: Mapping[str, Any]) -> Any:
    """The main container itself (the same object, for in-place changes), or None."""
    index = main_container_index(pod_spec)
    return None if index is None else _containers(pod_spec)[index]


def main_container_name(pod_spec: Mapping[str, Any]) -> str | None:
    """The main container's name, or None when the pod has no container."""
    container = main_container(pod_spec)
    return None if container is None else str(container.get("name", ""))


def engine_containers(pod_spec: Mapping[str, Any]) -> list[Any]:
    """The failover engines of a pod, in engine order (empty when it has none)."""
    by_name = {
        c.get("name"): c
        for c in _containers(pod_spec)
        if isinstance(c, Mapping) and c.get("name") in ENGINE_NAMES
    }
    return [by_name[n] for n in ENGINE_NAMES if n in by_name]


def workload_containers(pod_spec: Mapping[str, Any]) -> list[Any]:
    """The containers that run the workload: the failover engines if the pod has them, else
    the main container (none for a pod without containers)."""
    engines = engine_containers(pod_spec)
    if engines:
        return engines
    main = main_container(pod_spec)
    return [] if main is None else [main]
