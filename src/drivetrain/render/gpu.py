"""A worker's GPUs through DRA, and the GPU memory service (GMS) sidecar that holds them (pure).

With ``gpuMemoryService.enabled`` the pod asks for its GPUs with a dynamic resource allocation
claim instead of ``nvidia.com/gpu``, so that several of its containers can share them: the
``gms-server`` native sidecar (an init container with ``restartPolicy: Always``) holds the GPU
memory, and the engine (or both failover engines) maps it through a socket in the
``gms-intrapod-control`` emptyDir.  Both act on the main container resolved by name
(``drivetrain.podcontainers``), not on the first container as Dynamo's operator does.
See docs/gms-failover.md.
"""

from __future__ import annotations

import copy
from typing import Any

from drivetrain.errors import DrivetrainError
from drivetrain.podcontainers import main_container
from drivetrain.render.naming import GRAPH_LABEL, service_slug

RESOURCE_API_VERSION = "resource.k8s.io/v1"
#: The pod-level claim every GPU container of the pod names.
CLAIM_NAME = "intrapod-shared-gpu"
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_DEVICE_CLASS = "gpu.nvidia.com"
#: GPU nodes are tainted; a pod asking for ``nvidia.com/gpu`` gets this toleration from the
#: device plugin's admission, a pod with a DRA claim must carry it itself.
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}

GMS_CONTAINER = "gms-server"
GMS_VOLUME = "gms-intrapod-control"
GMS_DIR = "/gms-intrapod-control"
GMS_SOCKET_DIR_ENV = "GMS_SOCKET_DIR"
GMS_SERVER_COMMAND = ["python3", "-m", "gpu_memory_service.cli.server"]
#: The server writes this file once it serves; its startup probe waits for it (5 minutes).
GMS_READY_FILE = f"{GMS_DIR}/gms-ready"


class NoMainContainer(DrivetrainError, ValueError):
    """A pod spec without containers: there is nothing to give the GPUs to."""


def claim_template_name(graph_name: str, service_name: str) -> str:
    """``<graph>-<service, lowercased>-gpu``: the ResourceClaimTemplate of a service."""
    return f"{graph_name}-{service_slug(service_name)}-gpu"


def resource_claim_template(
    name: str, *, namespace: str, gpus: int, device_class: str | None, graph_name: str
) -> dict[str, Any] | None:
    """The ResourceClaimTemplate asking for ``gpus`` devices of ``device_class`` (default
    ``gpu.nvidia.com``); None for no GPUs, where there is nothing to claim."""
    if gpus <= 0:
        return None
    return {
        "apiVersion": RESOURCE_API_VERSION,
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": namespace, "labels": {GRAPH_LABEL: graph_name}},
        "spec": {
            "spec": {
                "devices": {
                    "requests": [
                        {
                            "name": "gpus",
                            "exactly": {
                                "deviceClassName": device_class or DEFAULT_DEVICE_CLASS,
                                "allocationMode": "ExactCount",
                                "count": gpus,
                            },
                        }
                    ]
                }
            }
        },
    }


def _main(spec: dict[str, Any]) -> dict[str, Any]:
    main = main_container(spec)
    if main is None:
        raise NoMainContainer("the pod spec has no container to give the GPUs to")
    return main  # type: ignore[no-any-return]


def _append_unique(items: list[Any], item: dict[str, Any], key: str = "name") -> list[Any]:
    if any(isinstance(i, dict) and i.get(key) == item.get(key) for i in items):
        return items
    return [*items, copy.deepcopy(item)]


def apply_claim(
    spec: dict[str, Any], template_name: str, gpu_resources: tuple[str, ...] = (GPU_RESOURCE,)
) -> None:
    """Give the main container the pod's GPUs through the claim ``intrapod-shared-gpu`` from
    ``template_name`` (in place).

    The GPU resources (``nvidia.com/gpu`` and a service's ``gpuType``) leave the main
    container's requests and limits: the claim replaces them.  Idempotent: a pod that already
    has the pod-level claim is left as it is.
    """
    claims = spec.get("resourceClaims") or []
    if any(isinstance(c, dict) and c.get("name") == CLAIM_NAME for c in claims):
        return
    main = _main(spec)
    resources = dict(main.get("resources") or {})
    for side in ("limits", "requests"):
        values = {k: v for k, v in (resources.get(side) or {}).items() if k not in gpu_resources}
        if values:
            resources[side] = values
        else:
            resources.pop(side, None)
    resources["claims"] = _append_unique(list(resources.get("claims") or []), {"name": CLAIM_NAME})
    main["resources"] = resources
    spec["tolerations"] = [
        *(t for t in spec.get("tolerations") or [] if t != GPU_TOLERATION),
        dict(GPU_TOLERATION),
    ]
    spec["resourceClaims"] = [
        *claims,
        {"name": CLAIM_NAME, "resourceClaimTemplateName": template_name},
    ]


def gms_mount() -> dict[str, Any]:
    return {"name": GMS_VOLUME, "mountPath": GMS_DIR}


def gms_env() -> dict[str, Any]:
    return {"name": GMS_SOCKET_DIR_ENV, "value": GMS_DIR}


def gms_sidecar(name: str, image: str, command: list[str]) -> dict[str, Any]:
    """A GMS process beside the engine: a native sidecar with the claim and the socket dir."""
    return {
        "name": name,
        "image": image,
        "command": list(command),
        "restartPolicy": "Always",
        "env": [gms_env()],
        "volumeMounts": [gms_mount()],
        "resources": {"claims": [{"name": CLAIM_NAME}]},
    }


def ensure_gms_server(spec: dict[str, Any]) -> None:
    """The ``gms-server`` native sidecar, its control volume, and the main container's mount
    and ``GMS_SOCKET_DIR`` (in place; idempotent).  Needs the claim of ``apply_claim``."""
    main = _main(spec)
    server = gms_sidecar(GMS_CONTAINER, str(main.get("image", "")), GMS_SERVER_COMMAND)
    server["startupProbe"] = {
        "exec": {"command": ["test", "-f", GMS_READY_FILE]},
        "periodSeconds": 1,
        "failureThreshold": 300,
    }
    spec["initContainers"] = _append_unique(list(spec.get("initContainers") or []), server)
    spec["volumes"] = _append_unique(
        list(spec.get("volumes") or []), {"name": GMS_VOLUME, "emptyDir": {}}
    )
    main["volumeMounts"] = _append_unique(list(main.get("volumeMounts") or []), gms_mount())
    main["env"] = _append_unique(list(main.get("env") or []), gms_env())
