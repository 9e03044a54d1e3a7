"""Which containers a checkpoint or restore acts on: the flag and the pod's annotation, agreed.

``nvidia.com/snapshot-target-containers`` is a comma-separated list; names are trimmed, and an
empty name or a name given twice is an error (as in Dynamo's snapshot protocol).  A checkpoint
targets exactly one container, a restore at least one.  The flag (``--container`` or
``--containers``) and the annotation may both be given only when they list the same names in
the same order: the agent refuses to pick one silently.
"""

from __future__ import annotations

from collections.abc import Mapping

from drivetrain.snapshot.errors import SnapshotError
from drivetrain.snapshot_protocol import (
    TARGET_CONTAINERS_ANNOTATION,
    split_target_containers,
    target_containers_problem,
)


def parse_targets(raw: str | None, where: str) -> list[str]:
    """The names in ``raw`` (``a,b``); [] for nothing given.  ``where`` names the source.
    The list's rules (trimmed names, none empty, none twice) are the protocol's own
    (``snapshot_protocol.target_containers_problem``)."""
    if raw is None or not raw.strip():
        return []
    names = split_target_containers(raw)
    problem = target_containers_problem(names, exactly_one=False)
    if problem is not None:
        raise SnapshotError(f"{where}: {problem} (got {raw!r})")
    return names


def resolve_targets(
    flag: str | None,
    flag_name: str,
    annotations: Mapping[str, str],
    manifest: str,
    *,
    at_least: int,
    at_most: int | None,
) -> list[str]:
    """The target containers from the flag and the annotation (see the module docstring)."""
    given = parse_targets(flag, flag_name)
    where = f"{manifest}: metadata.annotations[{TARGET_CONTAINERS_ANNOTATION}]"
    stamped = parse_targets(annotations.get(TARGET_CONTAINERS_ANNOTATION), where)
    if given and stamped and given != stamped:
        raise SnapshotError(
            f"{flag_name} {','.join(given)!r} does not match {where} {','.join(stamped)!r}; "
            "give one or the other"
        )
    chosen = given or stamped
    if not chosen:
        raise SnapshotError(
            f"no target container: give {flag_name} or set {TARGET_CONTAINERS_ANNOTATION} "
            f"on the pod ({manifest})"
        )
    if len(chosen) < at_least or (at_most is not None and len(chosen) > at_most):
        expected = f"exactly {at_least}" if at_most == at_least else f"at least {at_least}"
        raise SnapshotError(
            f"{flag_name if given else where}: expected {expected} target container(s), "
            f"got {len(chosen)} ({','.join(chosen)})"
        )
    return chosen
