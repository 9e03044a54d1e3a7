"""The two calls the agent makes to the Kubernetes API: read a pod, patch its annotations.

On the runtime's own small client (``runtime/discovery/kubeapi.py``: KUBECONFIG, else the pod's
service account, else ~/.kube/config), so the agent needs nothing a worker image lacks.  The
Role it needs is in docs/snapshot.md (``get`` and ``patch`` on pods).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from drivetrain.runtime.discovery.base import DiscoveryError, StoreUnavailableError
from drivetrain.runtime.discovery.kubeapi import ClusterConfig, KubeApi, KubeApiError
from drivetrain.snapshot.errors import SnapshotError

#: an API server that is briefly unreachable (5xx, a dropped connection) is asked again
ATTEMPTS = 3
RETRY_S = 1.0


class PodApi:
    def __init__(self) -> None:
        try:
            config = ClusterConfig.load()
        except DiscoveryError as exc:
            raise SnapshotError(str(exc)) from None
        self.default_namespace = config.namespace
        self.api = KubeApi(config, user_agent="drivetrain-snapshot")

    async def _call(self, what: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self.api.request(method, path, **kwargs)
            except KubeApiError as exc:
                raise SnapshotError(f"{what}: {exc}") from None
            except StoreUnavailableError as exc:
                if attempt == ATTEMPTS:
                    raise SnapshotError(f"{what}: {exc}") from None
                await asyncio.sleep(RETRY_S)
        raise AssertionError("unreachable")

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        return await self._call(f"pod {namespace}/{name}", "GET", path)

    async def annotate(self, namespace: str, name: str, changes: Mapping[str, str | None]) -> None:
        """A JSON merge patch of the pod's annotations (``None`` removes a key)."""
        await self._call(
            f"pod {namespace}/{name}: annotating",
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            body={"metadata": {"annotations": dict(changes)}},
            content_type="application/merge-patch+json",
        )

    async def close(self) -> None:
        await self.api.close()
