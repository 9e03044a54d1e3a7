"""Graphs and RLRuns in a cluster for people (the CLI): apply, read, delete; clear errors.

Synchronous lightkube; every cluster failure becomes a ``KubeError`` with one line a person
can act on (unreachable server, CRD not installed, graph not found).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from lightkube import Client

from drivetrain.kube.client import FIELD_MANAGER, sync_client
from drivetrain.kube.errors import cluster_errors
from drivetrain.kube.resources import PRIMARY

T = TypeVar("T")


def _call(fn: Callable[[], T], kind: str, name: str | None = None) -> T:
    with cluster_errors(kind, name):
        return fn()


def apply_graph(client: Client, doc: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """Server-side apply of one graph or RLRun document (already validated)."""
    obj = dict(doc)
    meta = dict(obj.get("metadata") or {})
    meta["namespace"] = meta.get("namespace") or namespace or client.namespace
    obj["metadata"] = meta
    kind = obj["kind"]
    resource = PRIMARY[kind]
    applied = _call(
        lambda: client.apply(resource(obj), field_manager=FIELD_MANAGER, force=True),
        kind,
    )
    return applied.to_dict()


def get_graph(client: Client, name: str, namespace: str | None, kind: str) -> dict[str, Any]:
    obj = _call(lambda: client.get(PRIMARY[kind], name, namespace=namespace), kind, name)
    return obj.to_dict()


def delete_graph(client: Client, name: str, namespace: str | None, kind: str) -> None:
    _call(lambda: client.delete(PRIMARY[kind], name, namespace=namespace), kind, name)


def client_for(namespace: str | None) -> Client:
    with cluster_errors():
        return sync_client(namespace)
