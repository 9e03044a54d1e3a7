"""Errors the CLI and the operator turn into one clear line, and the one place that makes them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from drivetrain.api.kinds import GRAPH, GRAPH_KINDS, RLRUN
from drivetrain.errors import DrivetrainError
from drivetrain.kube.lightkube_adapter import ApiError, HTTPStatusError, TransportError


class KubeError(DrivetrainError):
    """A cluster problem a person can act on; ``str()`` is the whole message."""


class ClusterUnreachable(KubeError):
    pass


class CrdMissing(KubeError):
    pass


def crd_missing(kind: str) -> CrdMissing:
    known = {**GRAPH_KINDS, RLRUN.kind: RLRUN}
    crd = known[kind].crd_name if kind in known else kind
    return CrdMissing(
        f"the cluster does not serve {kind} (CRD {crd} is not installed; install it with "
        "`kubectl apply -k deploy/`)"
    )


@contextmanager
def cluster_errors(kind: str = GRAPH.kind, name: str | None = None) -> Iterator[None]:
    """Turn transport and API failures into one-line ``KubeError``s."""
    try:
        yield
    except TransportError as exc:
        raise ClusterUnreachable(f"cannot reach the Kubernetes API server: {exc}") from exc
    except ApiError as exc:
        code = exc.status.code
        message = exc.status.message or str(exc)
        if code == 404 and name is not None and "not found" in message and name in message:
            raise KubeError(f"{kind} {name!r} not found") from exc
        if code == 404:
            raise crd_missing(kind) from exc
        if code in (401, 403):
            raise KubeError(f"not allowed: {message}") from exc
        raise KubeError(f"the API server refused: {message} (HTTP {code})") from exc
    except HTTPStatusError as exc:  # an error response that is not a Kubernetes Status
        raise KubeError(f"the API server answered {exc.response.status_code}") from exc
