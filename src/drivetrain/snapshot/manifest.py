"""The pod a checkpoint or restore acts on: a Pod manifest file, or a pod read from the API.

Each target container must be in ``spec.containers`` and mount the control volume
(``snapshot-control``) with ``subPath: <its name>``: that is how every target container of one
pod sees its own sentinel files at the same path (docs/snapshot.md).  A pod with a single target
may mount the volume's root instead (the protocol before per-container targets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivetrain.snapshot.errors import SnapshotError
from drivetrain.snapshot_protocol import CONTROL_VOLUME


@dataclass(frozen=True)
class Pod:
    """A pod as the agent needs it; ``source`` names where it came from, for messages."""

    body: Mapping[str, Any]
    source: str

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    @property
    def name(self) -> str | None:
        name = self.metadata.get("name")
        return name if isinstance(name, str) and name else None

    @property
    def namespace(self) -> str | None:
        namespace = self.metadata.get("namespace")
        return namespace if isinstance(namespace, str) and namespace else None

    def _strings(self, field: str) -> dict[str, str]:
        values = self.metadata.get(field) or {}
        if not isinstance(values, Mapping):
            raise SnapshotError(f"{self.source}: metadata.{field}: expected a map")
        return {str(k): str(v) for k, v in values.items()}

    @property
    def annotations(self) -> dict[str, str]:
        return self._strings("annotations")

    @property
    def labels(self) -> dict[str, str]:
        return self._strings("labels")


@dataclass(frozen=True)
class Target:
    """One target container: its name, its folder under the control volume, its runtime id."""

    name: str
    subpath: str  # "" for the volume's root
    container_id: str | None  # from the pod's status, when the pod has one


def load_manifest(path: Path) -> Pod:
    """A Pod manifest (YAML or JSON, one document); an error names the file and field."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SnapshotError(f"{path}: not YAML: {exc}") from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise SnapshotError(f"{path}: expected one Pod document, found {len(docs)} document(s)")
    body = docs[0]
    kind = body.get("kind")
    if kind not in (None, "", "Pod"):
        raise SnapshotError(f"{path}: kind: expected Pod, got {kind!r}")
    return Pod(body, str(path))


def resolve(pod: Pod, names: list[str]) -> list[Target]:
    """The target containers ``names`` of ``pod``, each checked against the protocol."""
    spec = pod.body.get("spec")
    containers = spec.get("containers") if isinstance(spec, Mapping) else None
    if not isinstance(containers, list) or not containers:
        raise SnapshotError(f"{pod.source}: spec.containers: expected a list of containers")
    index = {c.get("name"): i for i, c in enumerate(containers) if isinstance(c, Mapping)}
    statuses = {
        s.get("name"): s.get("containerID")
        for s in (pod.body.get("status") or {}).get("containerStatuses") or []
        if isinstance(s, Mapping)
    }
    targets = []
    for name in names:
        if name not in index:
            known = ", ".join(str(n) for n in index)
            raise SnapshotError(
                f"{pod.source}: spec.containers: no container named {name!r} (it has {known})"
            )
        i = index[name]
        where = f"{pod.source}: spec.containers[{i}] ({name}).volumeMounts"
        mounts = [
            m
            for m in containers[i].get("volumeMounts") or []
            if isinstance(m, Mapping) and m.get("name") == CONTROL_VOLUME
        ]
        if not mounts:
            raise SnapshotError(
                f"{where}: the {CONTROL_VOLUME} volume is not mounted (expected a mount with "
                f"subPath {name!r})"
            )
        subpath = str(mounts[0].get("subPath") or "")
        if subpath != name and not (subpath == "" and len(names) == 1):
            raise SnapshotError(
                f"{where}[{CONTROL_VOLUME}].subPath: expected {name!r}, got {subpath!r} "
                "(each target container needs its own control folder)"
            )
        container_id = statuses.get(name)
        targets.append(Target(name, subpath, str(container_id) if container_id else None))
    return targets
