"""Checkpoint/restore: the checkpoint Job's pod and the restore targets (pure).

A service with ``checkpoint.enabled`` is rendered twice over (docs/snapshot.md):

* **the checkpoint Job** (``mode: Auto``): one pod of the service, before failover, whose main
  container the node's snapshot agent checkpoints once it writes ``ready-for-snapshot``;
* **restore targets**: the service's own pods, whose target containers (``main``, or
  ``engine-0,engine-1`` with failover) start in standby and are restored by the agent.

Both follow the target-containers protocol (``drivetrain.snapshot_protocol``): the targets
are named in an annotation, each mounts the control volume with ``subPath: <container>``, and
every target must start without a shell.  The checkpoint id is the hash of the identity.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from drivetrain import snapshot_protocol as sp
from drivetrain.api.models import Checkpoint, CheckpointIdentity
from drivetrain.errors import DrivetrainError
from drivetrain.podcontainers import main_container
from drivetrain.render import gpu
from drivetrain.render.engines.inject import set_env

#: Failure threshold of the restore startup probe: 30 minutes at one probe a second.
RESTORE_PROBE_FAILURES = 1800
GMS_SAVER = "gms-saver"
GMS_LOADER = "gms-loader"
GMS_SAVER_COMMAND = ["python3", "-m", "gpu_memory_service.cli.snapshot.saver"]
GMS_LOADER_COMMAND = ["python3", "-m", "gpu_memory_service.cli.snapshot.loader"]
GMS_CHECKPOINT_DIR_ENV = "GMS_CHECKPOINT_DIR"
#: A checkpoint of more than one GPU's process is taken by NVIDIA's cuda-checkpoint launcher.
CUDA_CHECKPOINT = "cuda-checkpoint"
_PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


class CheckpointError(DrivetrainError, ValueError):
    """A pod that cannot be checkpointed or restored; the message names the container,
    ``field`` the field of the service it is about."""

    def __init__(self, message: str, field: str = "checkpoint") -> None:
        super().__init__(message)
        self.field = field


def canonical_identity(identity: CheckpointIdentity) -> str:
    """The identity as Go's ``json.Marshal`` writes Dynamo's struct: its field order, compact,
    empty optional fields left out, map keys sorted, ``<``, ``>`` and ``&`` escaped."""
    fields: dict[str, Any] = {
        "model": identity.model,
        "backendFramework": identity.backendFramework.value,
    }
    if identity.dynamoVersion:
        fields["dynamoVersion"] = identity.dynamoVersion
    fields["tensorParallelSize"] = max(identity.tensorParallelSize, 1)
    fields["pipelineParallelSize"] = max(identity.pipelineParallelSize, 1)
    if identity.dtype:
        fields["dtype"] = identity.dtype
    if identity.maxModelLen:
        fields["maxModelLen"] = identity.maxModelLen
    if identity.extraParameters:
        fields["extraParameters"] = dict(sorted(identity.extraParameters.items()))
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def identity_hash(identity: CheckpointIdentity) -> str:
    """The checkpoint id: the first 16 hex digits of the sha256 of the canonical identity."""
    return hashlib.sha256(canonical_identity(identity).encode()).hexdigest()[:16]


def job_name(checkpoint_id: str, artifact_version: str) -> str:
    return f"checkpoint-job-{checkpoint_id}-{artifact_version or sp.DEFAULT_ARTIFACT_VERSION}"


def _container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = next((c for c in spec.get("containers") or [] if c.get("name") == name), None)
    if found is None:
        raise CheckpointError(f"the pod has no container named {name}")
    return found  # type: ignore[no-any-return]


def _require_exec_form(container: dict[str, Any]) -> None:
    problem = sp.exec_form_problem(
        str(container.get("name")), container.get("command") or [], container.get("args") or []
    )
    if problem:
        raise CheckpointError(problem, field="extraPodSpec.mainContainer.command")


def _control(container: dict[str, Any]) -> None:
    """The container's own control directory: the volume's ``subPath`` named after it."""
    name = str(container["name"])
    container["volumeMounts"] = [
        *(m for m in container.get("volumeMounts") or [] if m.get("name") != sp.CONTROL_VOLUME),
        {"name": sp.CONTROL_VOLUME, "mountPath": sp.CONTROL_DIR, "subPath": name},
    ]
    set_env(
        container,
        {"name": sp.CONTROL_DIR_ENV, "value": sp.CONTROL_DIR},
        {"name": sp.LEGACY_CONTROL_DIR_ENV, "value": sp.CONTROL_DIR},
    )


def _add_volume(spec: dict[str, Any], volume: dict[str, Any]) -> None:
    spec["volumes"] = [
        *(v for v in spec.get("volumes") or [] if v.get("name") != volume["name"]),
        volume,
    ]


def _pod_level(spec: dict[str, Any], ckpt: Checkpoint, *, storage: bool) -> None:
    """The control volume, the checkpoint PVC (``storage``: when a container mounts it), and
    the seccomp profile CRIU needs."""
    _add_volume(spec, {"name": sp.CONTROL_VOLUME, "emptyDir": {}})
    if storage and ckpt.storage is not None:
        _add_volume(
            spec,
            {
                "name": sp.CHECKPOINT_VOLUME,
                "persistentVolumeClaim": {"claimName": ckpt.storage.pvcName},
            },
        )
    security = dict(spec.get("securityContext") or {})
    security["seccompProfile"] = {"type": "Localhost", "localhostProfile": sp.SECCOMP_PROFILE}
    spec["securityContext"] = security


def _storage_mount(container: dict[str, Any], ckpt: Checkpoint, read_only: bool) -> None:
    if ckpt.storage is None:
        return
    mount: dict[str, Any] = {"name": sp.CHECKPOINT_VOLUME, "mountPath": ckpt.storage.basePath}
    if read_only:
        mount["readOnly"] = True
    container["volumeMounts"] = [*(container.get("volumeMounts") or []), mount]


def _metadata(
    metadata: dict[str, Any], ckpt: Checkpoint, checkpoint_id: str, targets: list[str]
) -> None:
    labels = metadata.setdefault("labels", {})
    labels[sp.CHECKPOINT_ID_LABEL] = checkpoint_id
    annotations = metadata.setdefault("annotations", {})
    annotations[sp.ARTIFACT_VERSION_ANNOTATION] = ckpt.artifactVersion
    annotations[sp.TARGET_CONTAINERS_ANNOTATION] = sp.format_target_containers(targets)
    if ckpt.storage is not None:
        annotations[sp.STORAGE_TYPE_ANNOTATION] = sp.STORAGE_TYPE_PVC
        annotations[sp.STORAGE_BASE_PATH_ANNOTATION] = ckpt.storage.basePath


def _gms_snapshot_sidecar(
    spec: dict[str, Any], name: str, command: list[str], ckpt: Checkpoint, checkpoint_id: str
) -> None:
    """The GMS saver (checkpoint) or loader (restore): the GPU memory the GMS server holds is
    written to, or read back from, the checkpoint storage beside the process checkpoint."""
    assert ckpt.storage is not None  # the API rules require storage with GMS
    main = main_container(spec) or {}
    sidecar = gpu.gms_sidecar(name, str(main.get("image", "")), command)
    location = sp.checkpoint_location(
        f"{ckpt.storage.basePath.rstrip('/')}/gms", checkpoint_id, ckpt.artifactVersion
    )
    sidecar["env"].append({"name": GMS_CHECKPOINT_DIR_ENV, "value": location})
    _storage_mount(sidecar, ckpt, read_only=name == GMS_LOADER)
    spec["initContainers"] = [
        *(c for c in spec.get("initContainers") or [] if c.get("name") != name),
        sidecar,
    ]


def apply_checkpoint_source(
    spec: dict[str, Any],
    metadata: dict[str, Any],
    ckpt: Checkpoint,
    checkpoint_id: str,
    *,
    gms: bool,
) -> None:
    """Make a service's pod the checkpoint Job's pod (in place): one target, the main
    container, which signals readiness through ``ready-for-snapshot`` and is then checkpointed.
    """
    main = main_container(spec)
    if main is None:
        raise CheckpointError("the pod has no container to checkpoint")
    _require_exec_form(main)
    identity = ckpt.identity
    if identity is not None and identity.tensorParallelSize * identity.pipelineParallelSize > 1:
        main["args"] = [
            "--launch-job",
            *(main.get("command") or []),
            *(main.get("args") or []),
        ]
        main["command"] = [CUDA_CHECKPOINT]
    _control(main)
    main.pop("livenessProbe", None)
    main.pop("startupProbe", None)
    main["readinessProbe"] = {
        "exec": {"command": ["cat", f"{sp.CONTROL_DIR}/{sp.READY_FOR_SNAPSHOT}"]},
        "periodSeconds": 1,
    }
    # The agent writes the process checkpoint from the node; only the GMS saver writes here.
    _pod_level(spec, ckpt, storage=gms)
    spec["restartPolicy"] = "Never"
    if gms:
        _gms_snapshot_sidecar(spec, GMS_SAVER, GMS_SAVER_COMMAND, ckpt, checkpoint_id)
    metadata.setdefault("labels", {})[sp.CHECKPOINT_SOURCE_LABEL] = "true"
    _metadata(metadata, ckpt, checkpoint_id, [str(main["name"])])


def restore_startup_probe(container: dict[str, Any]) -> dict[str, Any]:
    """The restore target's startup probe: a copy of its startup (else liveness, else
    readiness) probe checked every second, or, with none, the ``restore-complete`` sentinel."""
    source = next((container[k] for k in _PROBES if isinstance(container.get(k), dict)), None)
    if source is None:
        return {
            "exec": {"command": ["cat", f"{sp.CONTROL_DIR}/{sp.RESTORE_COMPLETE}"]},
            "periodSeconds": 1,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": RESTORE_PROBE_FAILURES,
        }
    probe = copy.deepcopy(source)
    probe.update(
        initialDelaySeconds=0,
        periodSeconds=1,
        successThreshold=1,
        failureThreshold=RESTORE_PROBE_FAILURES,
    )
    return probe  # type: ignore[no-any-return]


def apply_restore_target(
    spec: dict[str, Any],
    metadata: dict[str, Any],
    ckpt: Checkpoint,
    checkpoint_id: str,
    *,
    targets: list[str],
    gms: bool,
) -> None:
    """Make a service's pod a restore target (in place): each of ``targets`` starts in
    standby with its own control directory and is restored by the node's agent."""
    problem = sp.target_containers_problem(targets, exactly_one=False)
    if problem:
        raise CheckpointError(problem)
    for name in targets:
        container = _container(spec, name)
        _require_exec_form(container)
        _control(container)
        set_env(container, {"name": sp.RESTORE_STANDBY_ENV, "value": "1"})
        container["startupProbe"] = restore_startup_probe(container)
        _storage_mount(container, ckpt, read_only=True)
    _pod_level(spec, ckpt, storage=True)
    if gms:
        _gms_snapshot_sidecar(spec, GMS_LOADER, GMS_LOADER_COMMAND, ckpt, checkpoint_id)
    metadata.setdefault("labels", {})[sp.RESTORE_TARGET_LABEL] = "true"
    _metadata(metadata, ckpt, checkpoint_id, targets)


def checkpoint_job(
    metadata: dict[str, Any], template: dict[str, Any], ckpt: Checkpoint, checkpoint_id: str
) -> dict[str, Any]:
    """The batch/v1 Job that runs the checkpoint pod once (no retry: a failed checkpoint is
    reported, and a restore target cold-starts instead of restoring)."""
    meta = copy.deepcopy(metadata)
    meta["name"] = job_name(checkpoint_id, ckpt.artifactVersion)
    meta.setdefault("labels", {})[sp.CHECKPOINT_ID_LABEL] = checkpoint_id
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": ckpt.activeDeadlineSeconds,
            "template": template,
        },
    }
