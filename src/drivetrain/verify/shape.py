"""The fields verify reads, checked before it reads them.

Manifests from any source may be malformed; the API server would refuse them, and verify must
say where rather than fail inside the simulation. Only what the simulation reads is checked:
counts (replicas, size, completions), pod templates, and each container's image, command, args,
env and envFrom. ``kubernetes-validate`` and the API server check the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from drivetrain.errors import DrivetrainError


@dataclass(frozen=True)
class ShapeError:
    index: int  # the object's position in the list given to verify
    path: str  # dotted field path inside the object
    message: str


class InvalidManifests(DrivetrainError, ValueError):
    """Objects verify cannot read; ``errors`` names every field."""

    def __init__(self, errors: list[ShapeError]) -> None:
        super().__init__("\n".join(f"object {e.index + 1}: {e.path}: {e.message}" for e in errors))
        self.errors = errors


#: Where each kind keeps its pod templates and counts (``*`` walks a list).
_TEMPLATES = {
    "Deployment": ["spec.template"],
    "ReplicaSet": ["spec.template"],
    "DaemonSet": ["spec.template"],
    "StatefulSet": ["spec.template"],
    "Job": ["spec.template"],
    "CronJob": ["spec.jobTemplate.spec.template"],
    "Pod": [""],
    "LeaderWorkerSet": [
        "spec.leaderWorkerTemplate.leaderTemplate",
        "spec.leaderWorkerTemplate.workerTemplate",
    ],
    "PodCliqueSet": ["spec.template.cliques.*.spec.podSpec#"],
}
_COUNTS = {
    "Deployment": ["spec.replicas"],
    "StatefulSet": ["spec.replicas"],
    "Job": ["spec.completions"],
    "CronJob": ["spec.jobTemplate.spec.completions"],
    "LeaderWorkerSet": ["spec.replicas", "spec.leaderWorkerTemplate.size"],
    "PodCliqueSet": [
        "spec.replicas",
        "spec.template.cliques.*.spec.replicas",
        "spec.template.podCliqueScalingGroups.*.replicas",
    ],
}


def _type(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _walk(value: Any, parts: list[str], path: str) -> Iterator[tuple[str, Any, str | None]]:
    """``(path, value, error)`` for every value at ``parts`` below ``value``; a missing field
    is skipped, a field of the wrong type on the way is an error."""
    if not parts:
        yield path, value, None
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if not isinstance(value, list):
            yield path, value, f"expected a list, got {_type(value)}"
            return
        for i, item in enumerate(value):
            yield from _walk(item, rest, f"{path}[{i}]")
        return
    if not isinstance(value, Mapping):
        yield path, value, f"expected a mapping, got {_type(value)}"
        return
    if value.get(head) is not None:
        yield from _walk(value[head], rest, f"{path}.{head}" if path else head)


def _at(obj: Any, dotted: str) -> Iterator[tuple[str, Any, str | None]]:
    return _walk(obj, [p for p in dotted.split(".") if p], "")


def _container_errors(container: Any, path: str) -> Iterator[tuple[str, str]]:
    if not isinstance(container, Mapping):
        yield path, f"expected a container (a mapping), got {_type(container)}"
        return
    for key in ("name", "image"):
        if container.get(key) is not None and not isinstance(container[key], str):
            yield f"{path}.{key}", f"expected a string, got {container[key]!r}"
    for key in ("command", "args"):
        for where, word, error in _walk(container, [key, "*"], path):
            if error or not isinstance(word, str):
                yield where, error or f"expected a string, got {word!r} (quote it)"
    for key in ("env", "envFrom"):
        for where, entry, error in _walk(container, [key, "*"], path):
            if error or not isinstance(entry, Mapping):
                yield where, error or f"expected a mapping, got {_type(entry)}"
            elif key == "env" and not isinstance(entry.get("name"), str):
                yield f"{where}.name", "required: the variable's name (a string)"
            elif key == "env" and not isinstance(entry.get("value", ""), str):
                yield f"{where}.value", f"expected a string, got {entry['value']!r} (quote it)"


def _pod_spec_errors(spec: Any, path: str) -> Iterator[tuple[str, str]]:
    if not isinstance(spec, Mapping):
        yield path, f"expected a pod spec (a mapping), got {_type(spec)}"
        return
    for key in ("initContainers", "containers"):
        for where, container, error in _walk(spec, [key, "*"], path):
            if error:
                yield where, error
            else:
                yield from _container_errors(container, where)


#: Other fields the simulation reads: a ConfigMap's data (env values, scripts), a Service's
#: ports (service-link env).
_MAPPINGS = {"ConfigMap": ["data"], "Service": ["spec"]}
_LISTS = {"Service": ["spec.ports"]}


def _object_errors(obj: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    kind = str(obj.get("kind"))
    if obj.get("metadata") is not None and not isinstance(obj["metadata"], Mapping):
        yield "metadata", f"expected a mapping, got {_type(obj['metadata'])}"
    for dotted in _MAPPINGS.get(kind, []):
        for path, value, error in _at(obj, dotted):
            if error or not isinstance(value, Mapping):
                yield path, error or f"expected a mapping, got {_type(value)}"
    for dotted in _LISTS.get(kind, []):
        for path, value, error in _at(obj, dotted + ".*"):
            if error or not isinstance(value, Mapping):
                yield path, error or f"expected a mapping, got {_type(value)}"
    for dotted in _COUNTS.get(kind, []):
        for path, value, error in _at(obj, dotted):
            if error:
                yield path, error
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                yield path, f"expected a whole number, got {value!r}"
    for dotted in _TEMPLATES.get(kind, []):
        # `#` marks a path that is the pod spec itself (Grove); otherwise it is a template.
        is_spec = dotted.endswith("#")
        for path, value, error in _at(obj, dotted.rstrip("#")):
            if error:
                yield path, error
                continue
            if is_spec:
                yield from _pod_spec_errors(value, path)
            elif not isinstance(value, Mapping):
                yield path, f"expected a pod template (a mapping), got {_type(value)}"
            elif value.get("spec") is not None:
                yield from _pod_spec_errors(value["spec"], f"{path}.spec" if path else "spec")


def shape_errors(objects: list[Any]) -> list[ShapeError]:
    """Every field verify would read from ``objects`` that does not have the type it needs."""
    errors = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, Mapping) or not isinstance(obj.get("kind"), str):
            errors.append(
                ShapeError(index, "", "expected a Kubernetes object (a mapping with kind)")
            )
            continue
        errors += [ShapeError(index, path, message) for path, message in _object_errors(obj)]
    return errors
