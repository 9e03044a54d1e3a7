"""Distributed-training environment: MASTER_ADDR/PORT, torchrun, TF_CONFIG and JAX variables
derived from LeaderWorkerSet, Grove, Backend.AI, an Indexed Job or explicit ``DRIVETRAIN_*``
values.

The same rules live in ``distenv.sh`` (POSIX sh, shipped as package data) for images without
drivetrain; the tests run both on every case and require the same result.
"""

from __future__ import annotations

from drivetrain.distenv.cluster import DEFAULT_PORT, Cluster
from drivetrain.distenv.derive import OUTPUT_NAMES, apply, derive, tf_config
from drivetrain.distenv.errors import DistEnvError
from drivetrain.distenv.jax_init import init_jax, jax_arguments
from drivetrain.distenv.shell import export_lines, script_path, script_text, sh_quote
from drivetrain.distenv.sources import indexed_job_env, read_cluster

__all__ = [
    "DEFAULT_PORT",
    "OUTPUT_NAMES",
    "Cluster",
    "DistEnvError",
    "apply",
    "derive",
    "export_lines",
    "indexed_job_env",
    "init_jax",
    "jax_arguments",
    "read_cluster",
    "script_path",
    "script_text",
    "sh_quote",
    "tf_config",
]
