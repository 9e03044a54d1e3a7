"""Discovery stores, selected by URL: ``etcd://host:port``, ``file:///dir``, ``memory://[name]``,
``kubernetes://[namespace]``.

``open_store(url)`` returns a connected ``DiscoveryStore``; ``default_url()`` reads
``DRIVETRAIN_DISCOVERY``, else chooses ``kubernetes://`` inside a pod (the service-account
mount is there).  Backends are imported on demand so that ``memory://`` costs nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from drivetrain import envnames
from drivetrain.errors import DrivetrainError
from drivetrain.runtime.discovery.base import (
    DiscoveryError,
    DiscoveryStore,
    KeyValue,
    Lease,
    LeaseNotFoundError,
    RevisionCompactedError,
    StoreUnavailableError,
    WatchEvent,
)

ENV_VAR = envnames.DISCOVERY
DEFAULT_ETCD_PORT = 2379
SCHEMES = ("etcd", "file", "memory", "kubernetes")
IN_CLUSTER_URL = "kubernetes://"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

__all__ = [
    "ENV_VAR",
    "DiscoveryError",
    "DiscoveryStore",
    "DiscoveryURLError",
    "KeyValue",
    "Lease",
    "LeaseNotFoundError",
    "RevisionCompactedError",
    "StoreUnavailableError",
    "WatchEvent",
    "default_url",
    "in_cluster",
    "open_store",
    "validate_url",
]


class DiscoveryURLError(DrivetrainError, ValueError):
    """A discovery URL that names no known backend or lacks a part it needs."""


def in_cluster(sa_dir: str = SERVICE_ACCOUNT_DIR, environ: Mapping[str, str] | None = None) -> bool:
    """Inside a pod: the service-account token is mounted and the API server is announced."""
    env = os.environ if environ is None else environ
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and os.path.isfile(
        os.path.join(sa_dir, "token")
    )


def default_url(
    environ: Mapping[str, str] | None = None, sa_dir: str = SERVICE_ACCOUNT_DIR
) -> str | None:
    """``DRIVETRAIN_DISCOVERY`` when set; else ``kubernetes://`` inside a pod; else None."""
    env = environ if environ is not None else os.environ
    value = env.get(ENV_VAR, "").strip()
    if value:
        return value
    return IN_CLUSTER_URL if in_cluster(sa_dir, env) else None


def validate_url(url: str) -> tuple[str, str]:
    """Check a discovery URL; returns (scheme, location): host:port, a directory or a name."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise DiscoveryURLError(
            f"discovery URL {url!r}: expected etcd://host:port, file:///dir, memory://[name] "
            "or kubernetes://[namespace]"
        )
    if scheme == "etcd":
        if not parts.hostname:
            raise DiscoveryURLError(
                f"discovery URL {url!r}: etcd:// needs a host (etcd://host:port)"
            )
        try:
            port = parts.port or DEFAULT_ETCD_PORT
        except ValueError:
            raise DiscoveryURLError(f"discovery URL {url!r}: the port is not a number") from None
        return scheme, f"{parts.hostname}:{port}"
    if scheme == "file":
        # file:///abs/dir (or file://localhost/abs/dir); file://rel/dir is taken as relative.
        netloc = "" if parts.netloc == "localhost" else parts.netloc
        path = netloc + parts.path
        if not path:
            raise DiscoveryURLError(
                f"discovery URL {url!r}: file:// needs a directory (file:///dir)"
            )
        return scheme, path
    if scheme == "kubernetes":
        namespace = parts.netloc
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise DiscoveryURLError(
                f"discovery URL {url!r}: expected kubernetes:// or kubernetes://NAMESPACE"
            )
        if namespace and not _DNS_LABEL.fullmatch(namespace):
            raise DiscoveryURLError(
                f"discovery URL {url!r}: {namespace!r} is not a Kubernetes namespace "
                "(lowercase letters, digits and '-', at most 63)"
            )
        return scheme, namespace
    return scheme, parts.netloc + parts.path


async def open_store(url: str, **options: object) -> DiscoveryStore:
    """Connect to the store named by ``url``; ``options`` go to the backend (e.g. timeouts)."""
    scheme, location = validate_url(url)
    if scheme == "memory":
        from drivetrain.runtime.discovery.memory import MemoryStore

        return MemoryStore(location or None)
    if scheme == "file":
        from drivetrain.runtime.discovery.filestore import FileStore

        return await FileStore.open(location, **options)  # type: ignore[arg-type]
    if scheme == "kubernetes":
        from drivetrain.runtime.discovery.kubernetes import KubernetesStore

        return await KubernetesStore.connect(location or None, **options)  # type: ignore[arg-type]
    from drivetrain.runtime.discovery.etcd import EtcdStore

    host, port = location.rsplit(":", 1)
    return await EtcdStore.connect(host, int(port), **options)  # type: ignore[arg-type]
