"""``drivetrain verify``: simulate the kubelet, the workload controllers and the shell, rank by
rank, and check the argv each process would really start with.

Public surface: :func:`verify_manifests`, :class:`VerifyReport` (``.ok``, ``.problems``,
``.processes``, ``.render_table(console)``), and the kubelet's :func:`expand` /
:func:`container_env` for callers that need the same rules.
"""

from drivetrain.verify.checks import verify_manifests
from drivetrain.verify.expansion import ContainerEnv, ControllerEnv, PodFacts, container_env, expand
from drivetrain.verify.report import Problem, Process, VerifyReport

__all__ = [
    "ContainerEnv",
    "ControllerEnv",
    "PodFacts",
    "Problem",
    "Process",
    "VerifyReport",
    "container_env",
    "expand",
    "verify_manifests",
]
