"""``drivetrain verify``: simulate the kubelet, the workload controllers and the shell, rank by
rank, and check the argv each process would really start with.

Public surface: :func:`verify_manifests` over Kubernetes objects from any source,
:class:`VerifyReport` (``.ok``, ``.problems``, ``.processes``, ``.not_simulated``,
``.render_table(console)``), :func:`shape_errors` / :class:`InvalidManifests` for objects it
cannot read, and the kubelet's :func:`expand` / :func:`container_env` for callers that need the
same rules.
"""

from drivetrain.verify.checks import verify_manifests
from drivetrain.verify.expansion import ContainerEnv, ControllerEnv, PodFacts, container_env, expand
from drivetrain.verify.report import Problem, Process, ReferenceWarning, Skipped, VerifyReport
from drivetrain.verify.shape import InvalidManifests, ShapeError, shape_errors

__all__ = [
    "ContainerEnv",
    "ControllerEnv",
    "InvalidManifests",
    "PodFacts",
    "Problem",
    "Process",
    "ReferenceWarning",
    "ShapeError",
    "Skipped",
    "VerifyReport",
    "container_env",
    "expand",
    "shape_errors",
    "verify_manifests",
]
