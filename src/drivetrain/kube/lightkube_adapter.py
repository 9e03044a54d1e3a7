"""Every use of lightkube beyond its documented API, in one place.

lightkube (>= 1.0) has no API discovery call and raises its HTTP client's own exceptions for
transport failures; that client is ``httpx2`` (pydantic's fork of httpx) in 1.x and ``httpx``
before.  Nothing else in drivetrain reaches into lightkube's internals or names its HTTP
client: when lightkube changes, this module is the one to change (docs/operator.md).
"""

from __future__ import annotations

from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource

from drivetrain.api.kinds import ResourceType

try:  # lightkube >= 1.0
    import httpx2 as _http
except ImportError:  # pragma: no cover - older lightkube
    import httpx as _http  # type: ignore[no-redef]

#: The HTTP client's "could not talk to the server" error (connect, read, timeout...).
TransportError = _http.TransportError
#: An error response that is not a Kubernetes ``Status`` object.
HTTPStatusError = _http.HTTPStatusError

__all__ = [
    "ApiError",
    "HTTPStatusError",
    "TransportError",
    "api_groups",
    "custom_resource",
    "service_proxy_get",
]


def custom_resource(rt: ResourceType) -> Any:
    """The lightkube class for a namespaced resource lightkube does not model."""
    return create_namespaced_resource(rt.group, rt.version, rt.kind, rt.plural)


async def api_groups(client: AsyncClient) -> set[str]:
    """API discovery: the groups the server serves (``GET /apis``), through lightkube's own
    HTTP client (same server, same credentials)."""
    http = client._client._client  # lightkube.GenericAsyncClient -> the HTTP client
    response = await http.get("/apis")
    response.raise_for_status()
    return {g["name"] for g in response.json().get("groups", [])}


async def service_proxy_get(
    client: AsyncClient, namespace: str, service: str, port: int, path: str, timeout: float
) -> int:
    """``GET`` ``path`` of a Service through the API server's service proxy
    (``/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/<path>``); the HTTP status.

    Raises ``TransportError`` when the API server itself cannot be reached.  lightkube has no
    call for subresources like this one, hence its HTTP client (same server, same credentials).
    """
    http = client._client._client
    url = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}"
    response = await http.get(url, timeout=timeout)
    return int(response.status_code)
