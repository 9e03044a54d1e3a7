"""Errors the CLI and the operator turn into one clear line."""

from __future__ import annotations

from drivetrain.errors import DrivetrainError


class KubeError(DrivetrainError):
    """A cluster problem a person can act on; ``str()`` is the whole message."""


class ClusterUnreachable(KubeError):
    pass


class CrdMissing(KubeError):
    pass
