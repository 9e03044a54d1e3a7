"""How ``up`` stops a graph: the drain each process gets, and the grace before SIGKILL.

On SIGTERM a frontend and a worker drain: they stop admitting, let requests in flight finish for
up to their ``--drain-timeout``, then end the rest with a 503 (docs/runtime.md).  ``up`` sends
SIGTERM to every process at once and SIGKILL after ``--grace`` seconds, so the grace must
outlast every drain, or the normal stop would SIGKILL processes mid-drain.  The rule
(docs/local.md): ``up --drain-timeout`` (default 5 s) reaches every process as
``DRIVETRAIN_DRAIN_TIMEOUT`` unless the graph sets that variable or the process's own command
line sets ``--drain-timeout``; ``--grace`` defaults to the longest drain plus ``GRACE_MARGIN_S``;
a ``--grace`` that is not at least ``MIN_MARGIN_S`` longer than the longest drain is refused.
Pure functions: nothing here starts or signals anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from drivetrain import envnames
from drivetrain.cmdline import flag_value
from drivetrain.errors import DrivetrainError
from drivetrain.local.plan import ProcessSpec

DRAIN_TIMEOUT_S = 5.0  # the frontend's and the worker's own default
GRACE_MARGIN_S = 5.0  # after the drain: ending what is left, deregistering, exiting
MIN_MARGIN_S = 1.0


class StopTimingError(DrivetrainError, ValueError):
    """``--grace`` and the drains do not fit together (a usage error)."""


def with_drain(specs: Sequence[ProcessSpec], drain: float) -> list[ProcessSpec]:
    """Every process gets ``DRIVETRAIN_DRAIN_TIMEOUT`` = ``drain`` unless its env has one."""
    if drain < 0:
        raise StopTimingError(f"--drain-timeout: expected seconds >= 0, got {drain:g}")
    out = []
    for spec in specs:
        if envnames.DRAIN_TIMEOUT in spec.env:
            out.append(spec)
        else:
            env = {**spec.env, envnames.DRAIN_TIMEOUT: f"{drain:g}"}
            out.append(dataclasses.replace(spec, env=env))
    return out


def effective_drain(spec: ProcessSpec) -> float:
    """The drain the process will use: its ``--drain-timeout`` flag, else its env, else the
    default (as the frontend and worker commands read them)."""
    raw = flag_value(spec.argv, "--drain-timeout")
    where = f"{spec.name}: --drain-timeout"
    if raw is None:
        raw = spec.env.get(envnames.DRAIN_TIMEOUT)
        where = f"{spec.name}: {envnames.DRAIN_TIMEOUT}"
    if raw is None:
        return DRAIN_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise StopTimingError(f"{where}: expected seconds, got {raw!r}") from None
    if value < 0:
        raise StopTimingError(f"{where}: expected seconds >= 0, got {raw!r}")
    return value


def grace_for(specs: Sequence[ProcessSpec], grace: float | None) -> float:
    """The seconds between SIGTERM and SIGKILL: ``grace`` checked against the longest drain,
    or derived from it when not given."""
    if not specs:
        return grace if grace is not None else DRAIN_TIMEOUT_S + GRACE_MARGIN_S
    drains = [(effective_drain(s), s.name) for s in specs]
    longest, name = max(drains)
    if grace is None:
        return longest + GRACE_MARGIN_S
    if grace < longest + MIN_MARGIN_S:
        raise StopTimingError(
            f"--grace {grace:g}: processes get SIGKILL after it, so it must be at least "
            f"{MIN_MARGIN_S:g} s longer than the longest drain ({longest:g} s, {name}); "
            f"give --grace {longest + MIN_MARGIN_S:g} or more, or a shorter --drain-timeout"
        )
    return grace
