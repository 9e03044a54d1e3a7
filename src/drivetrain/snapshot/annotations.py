"""Where the per-container status annotations go: the pod, through the API, or ``key=value`` lines.

In a pod the agent patches its pod's annotations (a JSON merge patch: ``null`` removes a key),
which is what the operator and people read (``kubectl get pod -o yaml``).  Outside a cluster, or
when asked, it prints each change as ``key=value`` (``key=`` for a removed key), the form
Dynamo's ``snapshotctl`` prints its results in, to stdout or appended to a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from drivetrain.snapshot.errors import SnapshotError

if TYPE_CHECKING:
    from drivetrain.snapshot.podapi import PodApi


class AnnotationSink(Protocol):
    async def apply(self, changes: Mapping[str, str | None]) -> None: ...


def as_lines(changes: Mapping[str, str | None]) -> str:
    return "".join(f"{key}={'' if value is None else value}\n" for key, value in changes.items())


class PrintedAnnotations:
    """``key=value`` lines on a stream (stdout)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    async def apply(self, changes: Mapping[str, str | None]) -> None:
        self.stream.write(as_lines(changes))
        self.stream.flush()


class FileAnnotations:
    """``key=value`` lines appended to a file (the last line of a key is its value)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def apply(self, changes: Mapping[str, str | None]) -> None:
        try:
            with self.path.open("a") as handle:
                handle.write(as_lines(changes))
        except OSError as exc:
            raise SnapshotError(
                f"{self.path}: cannot write annotations: {exc.strerror or exc}"
            ) from None


class PodAnnotations:
    """The annotations of pod ``namespace/name``, patched through the Kubernetes API (the
    client is the caller's to close)."""

    def __init__(self, api: PodApi, namespace: str, name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name

    async def apply(self, changes: Mapping[str, str | None]) -> None:
        await self.api.annotate(self.namespace, self.name, changes)
