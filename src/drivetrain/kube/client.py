"""Connecting to a cluster the usual way: ``KUBECONFIG`` / ~/.kube/config, or in-cluster."""

from __future__ import annotations

from lightkube import AsyncClient, Client, KubeConfig
from lightkube.core.exceptions import ConfigError

from drivetrain.kube.errors import ClusterUnreachable

#: The one field manager every server-side apply uses, so ownership never splits.
FIELD_MANAGER = "drivetrain"


def load_config() -> KubeConfig:
    """In-cluster service account when running in a pod, else the kubeconfig."""
    try:
        return KubeConfig.from_env()
    except ConfigError as exc:
        raise ClusterUnreachable(f"no cluster configuration: {exc}") from exc
    except FileNotFoundError as exc:
        raise ClusterUnreachable(f"no cluster configuration: {exc}") from exc


def sync_client(namespace: str | None = None) -> Client:
    return Client(load_config(), namespace=namespace, field_manager=FIELD_MANAGER)


def async_client() -> AsyncClient:
    return AsyncClient(load_config(), field_manager=FIELD_MANAGER)
