"""The rules of a service's ``gpuMemoryService``, ``failover`` and ``checkpoint`` blocks.

Dynamo's webhook rules for these blocks, plus drivetrain's own where it renders differently
(docs/gms-failover.md, docs/snapshot.md).  Rules that need the service's engine or its final
command are checked by the renderer, which knows them (``render/failover.py``,
``render/checkpoint.py``).
"""

from __future__ import annotations

from drivetrain.api.enums import Profile
from drivetrain.api.errors import FieldError
from drivetrain.api.models import GraphDeployment, Service

DISCOVERY_MODE_ANNOTATION = "nvidia.com/dynamo-kube-discovery-mode"


def _merged_annotations(graph: GraphDeployment, svc: Service) -> dict[str, str]:
    # The same view the renderer injects the discovery env from (a service's own wins).
    return {**graph.annotations, **(graph.spec.annotations or {}), **(svc.annotations or {})}


def _worker_only(svc: Service, path: str, what: str) -> list[FieldError]:
    if svc.is_worker:
        return []
    return [
        FieldError(
            path,
            f"{what} is for worker, prefill and decode services "
            f"(this one is componentType {svc.componentType})",
        )
    ]


def _inter_pod(mode: str | None, path: str) -> list[FieldError]:
    if mode != "interPod":
        return []
    return [FieldError(path, "interPod is not supported yet (only intraPod)")]


def gms_rules(svc: Service, base: str) -> list[FieldError]:
    gms = svc.gpuMemoryService
    if gms is None or not gms.enabled:
        return []
    path = f"{base}.gpuMemoryService"
    errors = _inter_pod(gms.mode, f"{path}.mode")
    errors += _worker_only(svc, path, "the GPU memory service")
    if svc.gpu_count < 1:
        errors.append(
            FieldError(
                f"{base}.resources.limits.gpu",
                "gpuMemoryService requires DRA, and DRA a GPU count: set resources.limits.gpu "
                "(else requests.gpu) to at least 1 for the ResourceClaimTemplate that the "
                "GMS server and the engine share",
            )
        )
    return errors


def failover_rules(graph: GraphDeployment, svc: Service, base: str) -> list[FieldError]:
    failover = svc.failover
    if failover is None or not failover.enabled:
        return []
    path = f"{base}.failover"
    errors = _inter_pod(failover.mode, f"{path}.mode")
    errors += _worker_only(svc, path, "failover")
    if graph.profile is not Profile.dynamo:
        # drivetrain's own runtime shares a lock file, not GPU memory: no GMS, no DRA and no
        # container-mode discovery needed (docs/gms-failover.md).
        return errors
    gms = svc.gpuMemoryService
    if gms is None or not gms.enabled:
        errors.append(
            FieldError(
                path,
                "failover requires gpuMemoryService.enabled: true under the dynamo profile "
                "(the shadow engine takes over the GPU memory the GMS server holds)",
            )
        )
    elif failover.mode is not None and failover.mode != gms.mode:
        errors.append(FieldError(f"{path}.mode", f"must equal gpuMemoryService.mode ({gms.mode})"))
    if _merged_annotations(graph, svc).get(DISCOVERY_MODE_ANNOTATION) != "container":
        errors.append(
            FieldError(
                f"metadata.annotations[{DISCOVERY_MODE_ANNOTATION}]",
                "failover requires per-container K8s discovery; set annotation "
                f'"{DISCOVERY_MODE_ANNOTATION}" to "container" on the {graph.kind}',
            )
        )
    return errors


def checkpoint_rules(svc: Service, base: str) -> list[FieldError]:
    ckpt = svc.checkpoint
    if ckpt is None or not ckpt.enabled:
        return []
    path = f"{base}.checkpoint"
    errors = _worker_only(svc, path, "checkpoint/restore")
    if ckpt.checkpointRef:
        errors.append(
            FieldError(
                f"{path}.checkpointRef",
                "names a DynamoCheckpoint in the cluster, which drivetrain's pure render cannot "
                "read; set checkpoint.identity instead (its hash is the checkpoint id)",
            )
        )
    elif ckpt.identity is None:
        errors.append(FieldError(f"{path}.identity", "required when checkpoint is enabled"))
    if svc.node_count > 1:
        errors.append(
            FieldError(
                path,
                "checkpoint/restore is for single-node services (a checkpoint is one pod's "
                f"process); this service has multinode.nodeCount {svc.node_count}",
            )
        )
    if svc.gms_enabled and ckpt.storage is None:
        errors.append(
            FieldError(
                f"{path}.storage",
                "required with gpuMemoryService: the GMS saver writes the GPU memory under "
                "storage.basePath, and the loader reads it back from there",
            )
        )
    return errors


def feature_rules(graph: GraphDeployment, name: str, svc: Service) -> list[FieldError]:
    """Every problem of one service's GMS, failover and checkpoint blocks."""
    base = f"spec.services.{name}"
    return [
        *gms_rules(svc, base),
        *failover_rules(graph, svc, base),
        *checkpoint_rules(svc, base),
    ]
