"""JAX's rendezvous from the derived variables: :func:`init_jax`.

``jax.distributed.initialize()`` reads only ``JAX_COORDINATOR_ADDRESS`` from the environment
(``State.initialize`` in jax/_src/distributed.py). The process count and id it takes as
arguments, or from one of its cluster detectors (``ClusterEnv.auto_detect_unset_distributed_params``
in jax/_src/clusters/cluster.py: Slurm, Open MPI, mpi4py, Cloud TPU, Kubernetes Jobs), and none
of them knows LeaderWorkerSet, Grove or Backend.AI. So the three values are passed here, from
the same derivation every other framework's variables come from, on every source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from drivetrain.distenv.cluster import parse_natural, parse_port
from drivetrain.distenv.derive import apply
from drivetrain.distenv.errors import DistEnvError

COORDINATOR = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES = "JAX_NUM_PROCESSES"
PROCESS_ID = "JAX_PROCESS_ID"
_NAMES = (COORDINATOR, NUM_PROCESSES, PROCESS_ID)
_ARGUMENTS = ("coordinator_address", "num_processes", "process_id")


def _check_address(value: str) -> str:
    """``host:port``; the host as JAX takes it (a name, an IPv4 or a bracketed IPv6 literal)."""
    host, colon, port = value.rpartition(":")
    try:
        parse_port(COORDINATOR, port)
    except DistEnvError:
        colon = ""
    if not (colon and host):
        raise DistEnvError(
            f"{COORDINATOR}={value!r} is not host:port (e.g. trainer-0.trainer:29500)"
        )
    return value


def jax_arguments(env: Mapping[str, str]) -> dict[str, Any]:
    """``coordinator_address``, ``num_processes`` and ``process_id`` for
    ``jax.distributed.initialize``, or ``{}`` on one node.

    They come from ``env`` with the derived variables applied, so the result is the same
    under ``drivetrain distenv --``/``distenv.sh`` (which exported them) and without it (the
    platform's variables are still there), and a user's own ``JAX_*`` values (as Kubeflow
    Trainer's JAX plugin sets) are taken as they are. Raises :class:`DistEnvError` when only
    some of the three are set or one is malformed.
    """
    full = apply(env)
    values = {name: full.get(name, "") for name in _NAMES}
    if not any(values.values()):
        return {}
    missing = [name for name, value in values.items() if not value]
    if missing:
        present = ", ".join(name for name, value in values.items() if value)
        raise DistEnvError(
            f"{missing[0]} is not set but {present} is: JAX needs the coordinator address, "
            "the process count and this process's id together"
        )
    address = _check_address(values[COORDINATOR])
    count = parse_natural(NUM_PROCESSES, values[NUM_PROCESSES])
    if count < 1:
        raise DistEnvError(f"{NUM_PROCESSES}='0' is not a positive whole number")
    process_id = parse_natural(PROCESS_ID, values[PROCESS_ID])
    if process_id >= count:
        raise DistEnvError(f"{PROCESS_ID}={process_id} is not below {NUM_PROCESSES}={count}")
    return dict(zip(_ARGUMENTS, (address, count, process_id), strict=True))


def init_jax(**kwargs: Any) -> dict[str, Any] | None:
    """Call ``jax.distributed.initialize(coordinator_address, num_processes, process_id,
    **kwargs)`` with the values derived for this process; keyword arguments given here win.

    Needs no argument inside a drivetrain trainer pod or under ``drivetrain distenv --``.
    On one node (nothing derived, none of the three given) it calls nothing and returns None:
    a single JAX process needs no distributed runtime. Otherwise returns the arguments it
    passed.
    """
    arguments = {**jax_arguments(os.environ), **kwargs}
    if not set(_ARGUMENTS) & arguments.keys():
        return None
    import jax  # only here: jax is the caller's dependency, not drivetrain's

    jax.distributed.initialize(**arguments)
    return arguments
