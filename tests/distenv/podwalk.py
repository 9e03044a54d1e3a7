"""Walk pod specs: whatever a container runs from a mounted directory must be mounted in that
container, by a volume the pod has, from a ConfigMap that holds the file.

Backend.AI sourced its script from a path no container mounted; this is the check that would
have caught it. The lead reuses it over fully rendered graphs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from drivetrain.render.training import DISTENV_MOUNT_DIR

_PATH = re.compile(r"/[A-Za-z0-9._/-]+")


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec in rendered objects: Deployments, LWS leader/worker, Grove cliques."""
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = obj.get("spec", {})
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield name, spec["template"]["spec"]
        elif obj["kind"] == "LeaderWorkerSet":
            lwt = spec["leaderWorkerTemplate"]
            if "leaderTemplate" in lwt:
                yield f"{name} leader", lwt["leaderTemplate"]["spec"]
            yield f"{name} worker", lwt["workerTemplate"]["spec"]
        elif obj["kind"] == "PodCliqueSet":
            for clique in spec["template"]["cliques"]:
                yield f"{name} clique {clique['name']}", clique["spec"]["podSpec"]


def _configmap_has(objects: list[dict[str, Any]], volume: dict[str, Any], rel: str) -> bool:
    source = volume["configMap"]
    found = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == source.get("name")
    ]
    if not found:
        return False
    data = found[0].get("data", {})
    if "items" in source:
        return any(i["path"] == rel and i["key"] in data for i in source["items"])
    return rel in data


def unmounted_runs(pod_spec: dict[str, Any], objects: list[dict[str, Any]]) -> list[str]:
    """One line per path a container names but cannot reach; [] when all is mounted."""
    containers = [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]
    dirs = {DISTENV_MOUNT_DIR} | {
        m["mountPath"] for c in containers for m in c.get("volumeMounts", [])
    }
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    problems = []
    for c in containers:
        words = [*c.get("command", []), *c.get("args", [])]
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        for path in (p for w in words for p in _PATH.findall(str(w))):
            under = [d for d in dirs if path.startswith(d.rstrip("/") + "/")]
            if not under:
                continue
            d = max(under, key=len)
            where = f"container {c['name']} runs {path}"
            if d not in mounts:
                problems.append(f"{where} but does not mount {d}")
            elif mounts[d] not in volumes:
                problems.append(f"{where} from volume {mounts[d]}, which the pod lacks")
            elif "configMap" in volumes[mounts[d]] and not _configmap_has(
                objects, volumes[mounts[d]], path[len(d.rstrip("/")) + 1 :]
            ):
                problems.append(f"{where} but its ConfigMap does not hold that file")
    return problems
