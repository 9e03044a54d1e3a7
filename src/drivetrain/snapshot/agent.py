"""The two operations, in the order the protocol needs them (docs/snapshot.md).

**Checkpoint** (one container): wait for the workload's ``ready-for-snapshot``, run the
checkpoint step into ``<storage>/<checkpoint id>/versions/<artifact version>``, record
``nvidia.com/snapshot-checkpoint-status`` (``completed`` or ``failed``), and only then write
``snapshot-complete``, so that whoever sees the sentinel also finds the status recorded.

**Restore** (one or more containers, the same checkpoint into each): clear the legacy unscoped
keys and mark every target ``in_progress``, then per container remove a stale
``restore-complete``, run the restore step, record its container id and ``completed`` (or
``failed``, and go on with the next), and write ``restore-complete``, which releases the
restored process and passes the container's startup probe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from drivetrain import snapshot_protocol as pc
from drivetrain.snapshot.annotations import AnnotationSink
from drivetrain.snapshot.control import ControlDir
from drivetrain.snapshot.errors import SnapshotError
from drivetrain.snapshot.manifest import Pod, Target
from drivetrain.snapshot.tools import Step, Tools

GENERATED_ID_PREFIX = "manual-snapshot"  # snapshotctl's prefix for an id nobody gave


@dataclass(frozen=True)
class Options:
    control_root: Path
    storage: Path | None = None
    checkpoint_id: str | None = None
    timeout: float = 2700.0  # snapshotctl's 45 minutes: a large model loads for a long time
    pid: int | None = None


@dataclass
class Outcome:
    """The ``key=value`` summary (snapshotctl's keys) and what went wrong, if anything."""

    summary: dict[str, str]
    errors: list[str] = field(default_factory=list)


def _storage(pod: Pod, opts: Options) -> Path:
    if opts.storage is not None:
        return opts.storage
    base = pod.annotations.get(pc.STORAGE_BASE_PATH_ANNOTATION)
    if not base:
        raise SnapshotError(
            f"no checkpoint storage: give --storage DIR or set "
            f"{pc.STORAGE_BASE_PATH_ANNOTATION} on the pod ({pod.source})"
        )
    return Path(base)


def checkpoint_location(pod: Pod, opts: Options, checkpoint_id: str) -> Path:
    """``<storage>/<checkpoint id>/versions/<artifact version>`` (Dynamo's layout)."""
    version = pod.annotations.get(pc.ARTIFACT_VERSION_ANNOTATION) or pc.DEFAULT_ARTIFACT_VERSION
    return _storage(pod, opts) / checkpoint_id / "versions" / version


def _summary(pod: Pod, namespace: str | None, **facts: str) -> dict[str, str]:
    return {"namespace": namespace or "", "name": pod.name or "", **facts}


def _pid(ready: str, given: int | None) -> int | None:
    """The process to save: ``--pid``, else a PID the workload wrote into ``ready-for-snapshot``
    (this agent's convention); None for a workload that writes something else (Dynamo's write
    ``ready``), which only a command without ``{pid}`` can checkpoint."""
    if given is not None:
        return given
    text = ready.strip()
    return int(text) if text.isdigit() else None


async def checkpoint(
    pod: Pod,
    target: Target,
    opts: Options,
    tools: Tools,
    sink: AnnotationSink,
    namespace: str | None = None,
) -> Outcome:
    checkpoint_id = (
        opts.checkpoint_id
        or pod.labels.get(pc.CHECKPOINT_ID_LABEL)
        or f"{GENERATED_ID_PREFIX}-{time.time_ns()}"
    )
    where = checkpoint_location(pod, opts, checkpoint_id)
    if where.is_dir() and any(where.iterdir()):
        raise SnapshotError(
            f"checkpoint location {where} already holds a checkpoint; give another "
            "--checkpoint-id (or remove it)"
        )
    control = ControlDir(opts.control_root, target.subpath)
    control.remove(pc.SNAPSHOT_COMPLETE)  # a sentinel from an earlier run means nothing now
    summary = _summary(
        pod,
        namespace,
        container=target.name,
        checkpoint_id=checkpoint_id,
        checkpoint_location=str(where),
    )
    try:
        ready = await control.wait_for(pc.READY_FOR_SNAPSHOT, opts.timeout)
        step = Step(target.name, where, control.path, checkpoint_id, _pid(ready, opts.pid))
        where.mkdir(parents=True, exist_ok=True)
        await tools.checkpoint(step)
    except (SnapshotError, OSError) as exc:
        await sink.apply({pc.CHECKPOINT_STATUS_ANNOTATION: pc.STATUS_FAILED})
        return Outcome({"status": pc.STATUS_FAILED, **summary}, [str(exc)])
    await sink.apply({pc.CHECKPOINT_STATUS_ANNOTATION: pc.STATUS_COMPLETED})
    control.write(pc.SNAPSHOT_COMPLETE, checkpoint_id + "\n")
    return Outcome({"status": pc.STATUS_COMPLETED, **summary})


async def restore(
    pod: Pod,
    targets: list[Target],
    opts: Options,
    tools: Tools,
    sink: AnnotationSink,
    namespace: str | None = None,
) -> Outcome:
    checkpoint_id = opts.checkpoint_id or pod.labels.get(pc.CHECKPOINT_ID_LABEL)
    if not checkpoint_id:
        raise SnapshotError(
            f"no checkpoint to restore: give --checkpoint-id or set the {pc.CHECKPOINT_ID_LABEL} "
            f"label on the pod ({pod.source})"
        )
    where = checkpoint_location(pod, opts, checkpoint_id)
    if not where.is_dir() or not any(where.iterdir()):
        raise SnapshotError(f"checkpoint location {where}: no checkpoint there")
    summary = _summary(
        pod,
        namespace,
        containers=",".join(t.name for t in targets),
        checkpoint_id=checkpoint_id,
        checkpoint_location=str(where),
    )
    starting: dict[str, str | None] = {
        pc.LEGACY_RESTORE_STATUS: None,
        pc.LEGACY_RESTORE_CONTAINER_ID: None,
    }
    for target in targets:
        starting[pc.restore_status_key(target.name)] = pc.STATUS_IN_PROGRESS
        starting[pc.restore_container_id_key(target.name)] = None
    await sink.apply(starting)
    errors = []
    for target in targets:
        control = ControlDir(opts.control_root, target.subpath)
        control.remove(pc.RESTORE_COMPLETE)
        try:
            control.path.mkdir(parents=True, exist_ok=True)  # the kubelet's job in a pod
            reported = await tools.restore(Step(target.name, where, control.path, checkpoint_id))
        except (SnapshotError, OSError) as exc:
            errors.append(str(exc))
            await sink.apply({pc.restore_status_key(target.name): pc.STATUS_FAILED})
            continue
        changes: dict[str, str | None] = {pc.restore_status_key(target.name): pc.STATUS_COMPLETED}
        container_id = target.container_id or reported
        if container_id:
            changes[pc.restore_container_id_key(target.name)] = container_id
        await sink.apply(changes)
        control.write(pc.RESTORE_COMPLETE, checkpoint_id + "\n")
    status = pc.STATUS_FAILED if errors else pc.STATUS_COMPLETED
    return Outcome({"status": status, **summary}, errors)
