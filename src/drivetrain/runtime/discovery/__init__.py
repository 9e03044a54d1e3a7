"""Discovery stores, selected by URL: ``etcd://host:port``, ``file:///dir``, ``memory://[name]``.

``open_store(url)`` returns a connected ``DiscoveryStore``; ``default_url()`` reads
``DRIVETRAIN_DISCOVERY``.  Backends are imported on demand so that ``memory://`` costs nothing.
"""

from __future__ import annotations

import os
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
SCHEMES = ("etcd", "file", "memory")

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
    "open_store",
    "validate_url",
]


class DiscoveryURLError(DrivetrainError, ValueError):
    """A discovery URL that names no known backend or lacks a part it needs."""


def default_url(environ: dict[str, str] | None = None) -> str | None:
    """The URL in ``DRIVETRAIN_DISCOVERY``, or None when unset or empty."""
    value = (environ if environ is not None else os.environ).get(ENV_VAR, "").strip()
    return value or None


def validate_url(url: str) -> tuple[str, str]:
    """Check a discovery URL; returns (scheme, location): host:port, a directory or a name."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise DiscoveryURLError(
            f"discovery URL {url!r}: expected etcd://host:port, file:///dir or memory://[name]"
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
    from drivetrain.runtime.discovery.etcd import EtcdStore

    host, port = location.rsplit(":", 1)
    return await EtcdStore.connect(host, int(port), **options)  # type: ignore[arg-type]
