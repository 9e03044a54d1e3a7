"""The one error type of the derivation: bad cluster input, said in one line."""

from __future__ import annotations

from drivetrain.errors import DrivetrainError


class DistEnvError(DrivetrainError, ValueError):
    """A cluster variable is malformed or the variables contradict each other.

    The message names the variable, its value and what was expected, so the CLI and the
    POSIX script can print it as is (``distenv: <message>``) and exit non-zero.
    """
