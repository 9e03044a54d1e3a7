"""The one error type of the snapshot agent: bad input or a failed step, said in one line."""

from __future__ import annotations

from drivetrain.errors import DrivetrainError


class SnapshotError(DrivetrainError):
    """A refused input (naming the flag, file or field) or a step that failed (naming it)."""
