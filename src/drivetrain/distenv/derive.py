"""From a cluster to the variables torch, torchrun, TensorFlow and JAX read.

Precedence follows the Backend.AI script: a variable the user already set to a non-empty
value is kept; an empty one counts as unset. Everything that names the rendezvous point
(torchrun's ``PET_MASTER_*``, JAX's coordinator) follows the *effective* ``MASTER_ADDR`` and
``MASTER_PORT``, so a user override reaches every framework that uses them. ``TF_CONFIG``
lists every node on ``base + position`` from platform values only, as the reference does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from drivetrain.distenv.cluster import Cluster
from drivetrain.distenv.errors import DistEnvError
from drivetrain.distenv.sources import read_cluster

#: Every name the derivation may set, in the order it reports them.
OUTPUT_NAMES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "NNODES",
    "NODE_RANK",
    "PET_NNODES",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
    "PET_NPROC_PER_NODE",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "TF_CONFIG",
    "JAX_COORDINATOR_ADDRESS",
    "JAX_NUM_PROCESSES",
    "JAX_PROCESS_ID",
)

# torchrun's --nproc-per-node accepts these words as well as a number.
_NPROC_WORDS = ("auto", "cpu", "gpu", "xpu")
_NPROC = re.compile(r"[1-9][0-9]{0,8}")


def tf_config(cluster: Cluster) -> str | None:
    """Compact JSON, every node a worker on ``base + position``; None without host names."""
    if cluster.hosts is None:
        return None
    workers = [f"{h}:{cluster.base_port + i}" for i, h in enumerate(cluster.hosts)]
    doc = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": cluster.node_rank}}
    return json.dumps(doc, separators=(",", ":"))


def _nproc(env: Mapping[str, str]) -> str | None:
    value = env.get("DRIVETRAIN_NPROC_PER_NODE", "")
    if not value:
        return None
    if value in _NPROC_WORDS or _NPROC.fullmatch(value):
        return value
    raise DistEnvError(
        f"DRIVETRAIN_NPROC_PER_NODE={value!r} is not a positive whole number "
        f"or one of {', '.join(_NPROC_WORDS)}"
    )


def derive(env: Mapping[str, str]) -> dict[str, str]:
    """The distributed-training variables for this node, as its processes will see them.

    Returns the effective value of every name the derivation covers here: the user's where
    they set one, the derived one otherwise. Empty for a single node. Raises
    :class:`DistEnvError` on malformed input.
    """
    nproc = _nproc(env)
    cluster = read_cluster(env)
    if cluster is None:
        return {}
    out: dict[str, str] = {}

    def put(name: str, value: str) -> str:
        out[name] = env.get(name) or value
        return out[name]

    addr = put("MASTER_ADDR", cluster.master_addr)
    port = put("MASTER_PORT", str(cluster.base_port))
    put("NNODES", str(cluster.nnodes))
    put("NODE_RANK", str(cluster.node_rank))
    put("PET_NNODES", str(cluster.nnodes))
    put("PET_NODE_RANK", str(cluster.node_rank))
    put("PET_MASTER_ADDR", addr)
    put("PET_MASTER_PORT", port)
    if nproc is not None:
        put("PET_NPROC_PER_NODE", nproc)
    if nproc == "1":
        # One process per node: the container's process *is* the rank, so plain
        # `python train.py` can call init_process_group("env://") without a launcher.
        # With more per node only a launcher knows each process's rank (torchrun sets it).
        put("WORLD_SIZE", str(cluster.nnodes))
        put("RANK", str(cluster.node_rank))
        put("LOCAL_RANK", "0")
    tf = tf_config(cluster)
    if tf is not None:
        put("TF_CONFIG", tf)
    put("JAX_COORDINATOR_ADDRESS", f"{addr}:{port}")
    put("JAX_NUM_PROCESSES", str(cluster.nnodes))
    put("JAX_PROCESS_ID", str(cluster.node_rank))
    return out


def apply(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the derived variables set: what the training command starts with."""
    return {**env, **derive(env)}
