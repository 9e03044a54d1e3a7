"""Graph objects in a cluster for people (the CLI): apply, read, delete; clear errors.

Synchronous lightkube; every cluster failure becomes a ``KubeError`` with one line a person
can act on (unreachable server, CRD not installed, graph not found).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from lightkube import Client

try:  # lightkube >= 1.0 uses httpx2 (pydantic's httpx fork); its exceptions reach us
    import httpx2
except ImportError:  # pragma: no cover - older lightkube
    import httpx as httpx2  # type: ignore[no-redef]
from lightkube.core.exceptions import ApiError

from drivetrain.kube.client import FIELD_MANAGER, sync_client
from drivetrain.kube.errors import ClusterUnreachable, CrdMissing, KubeError
from drivetrain.kube.resources import graph_resource

T = TypeVar("T")
CRD_NAMES = {
    "GraphDeployment": "graphdeployments.drivetrain.dev",
    "DynamoGraphDeployment": "dynamographdeployments.nvidia.com",
}


@contextmanager
def cluster_errors(kind: str = "GraphDeployment", name: str | None = None) -> Iterator[None]:
    """Turn transport and API failures into one-line ``KubeError``s."""
    try:
        yield
    except httpx2.TransportError as exc:
        raise ClusterUnreachable(f"cannot reach the Kubernetes API server: {exc}") from exc
    except ApiError as exc:
        code = exc.status.code
        message = exc.status.message or str(exc)
        if code == 404 and name is not None and "not found" in message and name in message:
            raise KubeError(f"{kind} {name!r} not found") from exc
        if code == 404:
            raise CrdMissing(
                f"the cluster does not serve {kind} (CRD {CRD_NAMES.get(kind, kind)} is not "
                "installed; install it with `kubectl apply -k deploy/`)"
            ) from exc
        if code in (401, 403):
            raise KubeError(f"not allowed: {message}") from exc
        raise KubeError(f"the API server refused: {message} (HTTP {code})") from exc
    except httpx2.HTTPStatusError as exc:  # an error response that is not a Kubernetes Status
        raise KubeError(f"the API server answered {exc.response.status_code}") from exc


def _call(fn: Callable[[], T], kind: str, name: str | None = None) -> T:
    with cluster_errors(kind, name):
        return fn()


def apply_graph(client: Client, doc: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """Server-side apply of one graph document (already validated)."""
    obj = dict(doc)
    meta = dict(obj.get("metadata") or {})
    meta["namespace"] = meta.get("namespace") or namespace or client.namespace
    obj["metadata"] = meta
    kind = obj["kind"]
    resource = graph_resource(kind)
    applied = _call(
        lambda: client.apply(resource(obj), field_manager=FIELD_MANAGER, force=True),
        kind,
    )
    return applied.to_dict()


def get_graph(client: Client, name: str, namespace: str | None, kind: str) -> dict[str, Any]:
    obj = _call(lambda: client.get(graph_resource(kind), name, namespace=namespace), kind, name)
    return obj.to_dict()


def delete_graph(client: Client, name: str, namespace: str | None, kind: str) -> None:
    _call(lambda: client.delete(graph_resource(kind), name, namespace=namespace), kind, name)


def client_for(namespace: str | None) -> Client:
    with cluster_errors():
        return sync_client(namespace)
