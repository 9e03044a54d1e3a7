"""What a rendered worker pod and the programs in it agree on: failover engines, snapshot control.

A leaf module (it imports nothing of drivetrain), so the renderer, ``drivetrain up``, the
runtime and the snapshot agent read one set of names.  The values follow Dynamo's operator and
its snapshot protocol (docs/gms-failover.md, docs/snapshot.md), so a pod rendered for either
runtime profile means the same thing to every program in it.
"""

from __future__ import annotations

import re

# ---- engine failover (docs/gms-failover.md) ---------------------------------------------------

#: the engine containers of a failover pod: ``engine-0``, ``engine-1`` (cloned from ``main``)
ENGINE_CONTAINER_PREFIX = "engine-"
ENGINE_CONTAINER_RE = re.compile(r"engine-(0|[1-9][0-9]*)")
#: the worker flag naming the lock both engines of a pod share
FAILOVER_LOCK_FLAG = "--failover-lock"
#: Dynamo's operator sets the lock path in this variable on each engine; the flag reads it too
FAILOVER_LOCK_ENV = "FAILOVER_LOCK_PATH"
#: the engine's index in its pod (``0`` for ``engine-0``)
ENGINE_ID_ENV = "ENGINE_ID"


def engine_container(index: int) -> str:
    """The name of a failover pod's engine container ``index``."""
    return f"{ENGINE_CONTAINER_PREFIX}{index}"


def is_engine_container(name: str) -> bool:
    return ENGINE_CONTAINER_RE.fullmatch(name) is not None


# ---- snapshot (checkpoint/restore), the target-containers protocol (docs/snapshot.md) ---------

#: comma-separated list of the containers a checkpoint (exactly one) or a restore acts on
TARGET_CONTAINERS_ANNOTATION = "nvidia.com/snapshot-target-containers"
CHECKPOINT_ID_LABEL = "nvidia.com/snapshot-checkpoint-id"
CHECKPOINT_SOURCE_LABEL = "nvidia.com/snapshot-is-checkpoint-source"
ARTIFACT_VERSION_ANNOTATION = "nvidia.com/snapshot-artifact-version"
DEFAULT_ARTIFACT_VERSION = "1"
STORAGE_BASE_PATH_ANNOTATION = "nvidia.com/snapshot-storage-base-path"
CHECKPOINT_STATUS_ANNOTATION = "nvidia.com/snapshot-checkpoint-status"
#: per container: ``<prefix><container>``
RESTORE_STATUS_PREFIX = "nvidia.com/snapshot-restore-status."
RESTORE_CONTAINER_ID_PREFIX = "nvidia.com/snapshot-restore-container-id."
#: the unscoped keys of the protocol before per-container targets; cleared on every restore
LEGACY_RESTORE_STATUS = "nvidia.com/snapshot-restore-status"
LEGACY_RESTORE_CONTAINER_ID = "nvidia.com/snapshot-restore-container-id"

STATUS_IN_PROGRESS = "in_progress"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"

#: the control emptyDir, mounted in each target container with ``subPath: <container>``
CONTROL_VOLUME = "snapshot-control"
CONTROL_MOUNT_PATH = "/snapshot-control"
CONTROL_DIR_ENV = "SNAPSHOT_CONTROL_DIR"
#: sentinel files under each container's control directory
READY_FOR_SNAPSHOT = "ready-for-snapshot"  # written by the workload: ready to be checkpointed
SNAPSHOT_COMPLETE = "snapshot-complete"  # written by the agent: the checkpoint is taken
RESTORE_COMPLETE = "restore-complete"  # written by the agent: the restored process may run


def restore_status_key(container: str) -> str:
    return RESTORE_STATUS_PREFIX + container


def restore_container_id_key(container: str) -> str:
    return RESTORE_CONTAINER_ID_PREFIX + container
