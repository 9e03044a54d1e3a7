"""The checkpoint/restore protocol between the renderer and the in-pod snapshot agent.

A leaf module (it imports nothing of drivetrain): the renderer stamps these labels, annotations,
volumes and env on checkpoint Jobs and restore pods, and ``drivetrain snapshot`` (the agent)
reads and writes the same names, so each is spelled once.  It follows Dynamo's snapshot
protocol in its *target-containers* form (docs/snapshot.md):

* a pod names the containers the agent acts on in ``nvidia.com/snapshot-target-containers``
  (comma-separated; exactly one for a checkpoint, at least one for a restore);
* each target container mounts the control volume with ``subPath: <container>``, so every
  container sees only its own sentinel files under ``/snapshot-control``;
* the agent reports per container in ``nvidia.com/snapshot-restore-status.<container>`` and
  ``nvidia.com/snapshot-restore-container-id.<container>``.

Problems are returned as messages, not raised: each caller raises its own error type.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

# Labels.
CHECKPOINT_SOURCE_LABEL = "nvidia.com/snapshot-is-checkpoint-source"
CHECKPOINT_ID_LABEL = "nvidia.com/snapshot-checkpoint-id"
RESTORE_TARGET_LABEL = "nvidia.com/snapshot-is-restore-target"

# Annotations.
TARGET_CONTAINERS_ANNOTATION = "nvidia.com/snapshot-target-containers"
ARTIFACT_VERSION_ANNOTATION = "nvidia.com/snapshot-artifact-version"
DEFAULT_ARTIFACT_VERSION = "1"
STORAGE_TYPE_ANNOTATION = "nvidia.com/snapshot-storage-type"
STORAGE_BASE_PATH_ANNOTATION = "nvidia.com/snapshot-storage-base-path"
STORAGE_TYPE_PVC = "pvc"
#: On the checkpoint Job: ``completed`` or ``failed`` (one target container, so unscoped).
CHECKPOINT_STATUS_ANNOTATION = "nvidia.com/snapshot-checkpoint-status"
#: Per restore target container: ``<prefix>.<container>``.
RESTORE_STATUS_PREFIX = "nvidia.com/snapshot-restore-status"
RESTORE_CONTAINER_ID_PREFIX = "nvidia.com/snapshot-restore-container-id"
#: The unscoped keys of the protocol before per-container targets: cleared at every restore.
LEGACY_RESTORE_STATUS = RESTORE_STATUS_PREFIX
LEGACY_RESTORE_CONTAINER_ID = RESTORE_CONTAINER_ID_PREFIX
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_IN_PROGRESS = "in_progress"

# The control volume: an emptyDir, each target container mounting its own subPath.
CONTROL_VOLUME = "snapshot-control"
CONTROL_DIR = "/snapshot-control"
#: The env that tells the workload where its control directory is (the newer name, and the
#: name Dynamo 1.x images read).
CONTROL_DIR_ENV = "SNAPSHOT_CONTROL_DIR"
LEGACY_CONTROL_DIR_ENV = "DYN_SNAPSHOT_CONTROL_DIR"
#: Set on restore targets: start in standby and wait to be restored.
RESTORE_STANDBY_ENV = "DYN_SNAPSHOT_RESTORE_STANDBY"

# Sentinel files in a container's control directory.
READY_FOR_SNAPSHOT = "ready-for-snapshot"  # the workload: "checkpoint me now"
SNAPSHOT_COMPLETE = "snapshot-complete"  # the agent: the checkpoint is written
RESTORE_COMPLETE = "restore-complete"  # the agent: the restore is done

# Where checkpoints live, and how checkpointed pods are confined.
CHECKPOINT_VOLUME = "checkpoint-storage"
DEFAULT_BASE_PATH = "/checkpoints"
#: The seccomp profile (installed on the nodes with the agent) that blocks io_uring, which
#: CRIU cannot checkpoint.
SECCOMP_PROFILE = "profiles/block-iouring.json"

#: Programs that run their argument as a script when given ``-c``.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh", "busybox"})


def restore_status_key(container: str) -> str:
    """``nvidia.com/snapshot-restore-status.<container>``."""
    return f"{RESTORE_STATUS_PREFIX}.{container}"


def restore_container_id_key(container: str) -> str:
    """``nvidia.com/snapshot-restore-container-id.<container>``."""
    return f"{RESTORE_CONTAINER_ID_PREFIX}.{container}"


def checkpoint_location(base_path: str, checkpoint_id: str, artifact_version: str) -> str:
    """``<base>/<checkpoint id>/versions/<artifact version>``: where one checkpoint lives."""
    return f"{base_path.rstrip('/')}/{checkpoint_id}/versions/{artifact_version}"


def format_target_containers(names: Sequence[str]) -> str:
    return ",".join(names)


def split_target_containers(value: str) -> list[str]:
    """The names of a ``snapshot-target-containers`` value, trimmed, in order (empty names
    kept, so that ``target_containers_problem`` can refuse them)."""
    return [part.strip() for part in value.split(",")]


def target_containers_problem(names: Sequence[str], *, exactly_one: bool) -> str | None:
    """What is wrong with a target-container list, or None.  A checkpoint names exactly one
    container; a restore at least one; no name may be empty or repeated."""
    if not names or any(not n for n in names):
        return "target containers must be non-empty names separated by commas"
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return f"target containers name {', '.join(repeated)} more than once"
    if exactly_one and len(names) != 1:
        return f"a checkpoint targets exactly one container (got {len(names)}: {', '.join(names)})"
    return None


def shell_entrypoint(argv: Sequence[str]) -> str | None:
    """The shell of a ``sh -c SCRIPT`` entrypoint (``bash -lc``, ``busybox sh -c`` ...), or
    None for an exec-form argv."""
    words = list(argv)
    if words and os.path.basename(words[0]) == "busybox":
        words = words[1:]
    if not words or os.path.basename(words[0]) not in SHELLS:
        return None
    for word in words[1:]:
        if not word.startswith("-") or word == "--":
            return None
        if not word.startswith("--") and "c" in word[1:]:
            return os.path.basename(words[0])
    return None


def exec_form_problem(container: str, command: Sequence[str], args: Sequence[str]) -> str | None:
    """Why a container cannot be checkpointed or restored because a shell starts it, or None.

    The agent checkpoints the container's first process; behind ``sh -c`` that is the shell,
    not the engine, and a restored shell does not resume the engine it started.
    """
    argv = [*command, *args] if command else list(args)
    shell = shell_entrypoint(argv)
    if shell is None:
        return None
    return (
        f"container {container} starts through a shell ({shell} -c): checkpoint/restore needs "
        "an exec-form command (the program itself in command, its flags in args)"
    )
