"""The ``WorkerEndpoint`` custom resource: what a worker's records look like in Kubernetes.

Pure functions only (names, labels, the object a worker applies, reading one back, pod
readiness, the label selector for a key prefix); ``kubernetes.py`` does the I/O.  The CRD is
``deploy/crd-workerendpoint.yaml``; the layout is documented in docs/discovery.md::

    apiVersion: drivetrain.dev/v1alpha1
    kind: WorkerEndpoint
    metadata:
      name: <pod>[-<container>]          # -2, -3, ... for further live leases of one process
      labels: {drivetrain.dev/namespace: ..., drivetrain.dev/component: ..., drivetrain.dev/model: ...}
      ownerReferences: [{apiVersion: v1, kind: Pod, name: <pod>, uid: <pod uid>}]
    spec:
      writer: <random id of the writing process>
      records: [{key: <store key>, value: <the record's JSON>}, ...]

A record put without a lease (the RL API's committed weight version) has an object of its own,
``durable-<hash of its key>``, labelled ``drivetrain.dev/durable: "true"``, owned by no pod
but by the controllers (ReplicaSets, a StatefulSet, ...) of the pods that wrote it, and of
the later revisions of their workload that read it, newest first and at most
``MAX_DURABLE_OWNERS``, so that it outlives the frontend pod that wrote it and the ReplicaSets
that rollouts retire, and goes with the workload; its record counts as long as the object
exists.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drivetrain.errors import DrivetrainError
from drivetrain.runtime.records import (
    INSTANCES_PREFIX,
    MODELS_PREFIX,
    RecordError,
    decode_segment,
    parse_key,
)

GROUP = "drivetrain.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "WorkerEndpoint"
PLURAL = "workerendpoints"
FIELD_MANAGER = "drivetrain-worker"

NAMESPACE_LABEL = "drivetrain.dev/namespace"  # the runtime namespace (as on drivetrain's pods)
DURABLE_LABEL = "drivetrain.dev/durable"  # "true": no pod owns it, its record outlives the writer
COMPONENT_LABEL = "drivetrain.dev/component"
MODEL_LABEL = "drivetrain.dev/model"

# How many owners a durable object keeps.  The garbage collector deletes an object once *all*
# its owners are gone, and a Deployment deletes its oldest ReplicaSets beyond its
# revisionHistoryLimit (10 by default): every frontend adds its own ReplicaSet, so the object
# lives while any recent one does.  The cap keeps the list short; it is larger than the number
# of ReplicaSets with live pods in any rollout, so two never take each other's place in turn.
MAX_DURABLE_OWNERS = 8
MAX_LABEL_VALUE = 63
MAX_NAME = 253  # a DNS subdomain
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
HASHED_PREFIX = "sha256-"


def label_value(text: str) -> str:
    """``text`` when it is a valid label value, else ``sha256-`` + 56 hex digits of its hash.

    Served names (``Qwen/Qwen3-0.6B``) and namespaces may hold characters or lengths a label
    value cannot.  The hashed form is itself a valid value, so a name that happens to spell one
    could share a label with another; readers check every record's namespace again anyway.
    """
    if len(text) <= MAX_LABEL_VALUE and _LABEL_VALUE.fullmatch(text):
        return text
    return HASHED_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:56]


def object_name(pod: str, container: str | None = None, slot: int = 1) -> str:
    """``<pod>[-<container>][-<slot>]``, shortened with a hash when longer than 253."""
    name = pod if not container else f"{pod}-{container}"
    if slot > 1:
        name = f"{name}-{slot}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return name[: MAX_NAME - len(digest) - 1].rstrip("-.") + "-" + digest


def durable_name(key: str) -> str:
    """The object of a record put without a lease: one per key, named after its hash."""
    return "durable-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def collection_path(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"


def object_path(namespace: str, name: str) -> str:
    return f"{collection_path(namespace)}/{name}"


def pods_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods"


def runtime_namespace(key: str) -> str | None:
    """The runtime namespace a record key belongs to; None for a key that is not a record."""
    try:
        return parse_key(key).namespace
    except RecordError:
        return None


class MixedNamespacesError(DrivetrainError, ValueError):
    """One WorkerEndpoint would hold records of several runtime namespaces."""


def labels_for(keys: Iterable[str]) -> dict[str, str]:
    """The labels of an object holding ``keys``: its runtime namespace, and the component and
    model when there is exactly one of each (for ``kubectl get -l`` and future selectors)."""
    namespaces: set[str | None] = set()
    components: set[str] = set()
    models: set[str] = set()
    for key in keys:
        try:
            parsed = parse_key(key)
        except RecordError:
            namespaces.add(None)
            continue
        namespaces.add(parsed.namespace)
        (components if parsed.kind == "instances" else models).add(parsed.name)
    if len(namespaces) > 1:
        shown = ", ".join(
            sorted(repr(n) if n is not None else "<not a record>" for n in namespaces)
        )
        raise MixedNamespacesError(
            f"one WorkerEndpoint holds the records of one runtime namespace, got {shown}"
        )
    labels: dict[str, str] = {}
    namespace = next(iter(namespaces), None)
    if namespace is not None:
        labels[NAMESPACE_LABEL] = label_value(namespace)
    if len(components) == 1:
        labels[COMPONENT_LABEL] = label_value(next(iter(components)))
    if len(models) == 1:
        labels[MODEL_LABEL] = label_value(next(iter(models)))
    return labels


@dataclass(frozen=True)
class PodRef:
    name: str
    uid: str


@dataclass(frozen=True)
class OwnerRef:
    """An object that owns another (``metadata.ownerReferences``): a pod's controller."""

    api_version: str
    kind: str
    name: str
    uid: str

    def as_reference(self) -> dict[str, str]:
        # No ``controller`` or ``blockOwnerDeletion``: setting the latter needs ``update`` on
        # the owner's ``finalizers``, which no runtime process is granted.
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
        }


def owner_refs(meta: Mapping[str, Any]) -> tuple[OwnerRef, ...]:
    """The well-formed owner references of an object's ``metadata``, in order."""
    return tuple(
        OwnerRef(str(ref.get("apiVersion", "")), str(ref.get("kind", "")), ref["name"], ref["uid"])
        for ref in meta.get("ownerReferences") or []
        if isinstance(ref, dict) and ref.get("name") and ref.get("uid")
    )


def owners_with(
    current: Sequence[OwnerRef], mine: OwnerRef | None, keep: int = MAX_DURABLE_OWNERS
) -> tuple[OwnerRef, ...]:
    """A durable object's owners once ``mine`` (the pod's controller of a process that writes
    or reads it) is among them: ``mine`` first, then the others in their order, each uid once,
    at most ``keep``.  ``current`` itself when it already holds ``mine`` (or ``mine`` is None,
    a process outside any workload), so that a reader writes nothing."""
    if mine is None or any(ref.uid == mine.uid for ref in current):
        return tuple(current)
    return (mine, *current)[:keep]


def same_workload(a: OwnerRef, b: OwnerRef) -> bool:
    """Whether two pods' controllers are the same workload: the same object, or two revisions
    of one Deployment (ReplicaSets named ``<deployment>-<pod-template-hash>``, a hash that
    holds no ``-``).  A reader adds its owner only beside a sibling, so that the frontends of
    another graph in the namespace, which watch every weights record, never keep this graph's."""
    if a.uid == b.uid:
        return True
    replica_sets = a.kind == b.kind == "ReplicaSet" and a.api_version == b.api_version == "apps/v1"
    return replica_sets and "-" in a.name and a.name.rsplit("-", 1)[0] == b.name.rsplit("-", 1)[0]


def adoption_patch(owners: Sequence[OwnerRef], resource_version: str) -> dict[str, Any]:
    """The JSON merge patch that sets a durable object's owners, refused (409 Conflict) when
    the object changed since ``resource_version``: then the reader decides again on what it
    sees next, and no one's owner is dropped by a patch that did not see it."""
    return {
        "metadata": {
            "resourceVersion": resource_version,
            "ownerReferences": [ref.as_reference() for ref in owners],
        }
    }


def build(
    name: str,
    namespace: str,
    pod: PodRef | None,
    writer: str,
    records: Mapping[str, bytes],
    owners: Sequence[OwnerRef] = (),
) -> dict[str, Any]:
    """The object a process applies (server-side apply, field manager ``drivetrain-worker``):
    owned by ``pod`` (a lease's object), or with ``pod`` None a durable object, owned by
    ``owners`` (from ``owners_with``; none for a process outside any workload).

    Values must be UTF-8 (records are JSON): ``UnicodeDecodeError`` otherwise.
    """
    labels = labels_for(records)
    if pod is not None:
        references = [{"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid}]
    else:
        labels[DURABLE_LABEL] = "true"
        references = [ref.as_reference() for ref in owners]
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if references:
        metadata["ownerReferences"] = references
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "writer": writer,
            "records": [{"key": k, "value": records[k].decode("utf-8")} for k in sorted(records)],
        },
    }


@dataclass(frozen=True)
class Endpoint:
    """One WorkerEndpoint as a reader sees it; ``pod`` None for a durable object."""

    name: str
    pod: PodRef | None
    writer: str
    records: dict[str, bytes]
    labels: dict[str, str]
    owners: tuple[OwnerRef, ...] = ()  # a durable object's: the controllers that keep it
    resource_version: str = ""


def parse(obj: Mapping[str, Any]) -> Endpoint:
    """Read one object; ``ValueError`` naming the field when it is not a usable WorkerEndpoint."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", "?"))
    owners = [
        ref
        for ref in meta.get("ownerReferences") or []
        if isinstance(ref, dict) and ref.get("kind") == "Pod" and ref.get("apiVersion") == "v1"
    ]
    labels = dict(meta.get("labels") or {})
    durable = labels.get(DURABLE_LABEL) == "true"
    if not durable and (len(owners) != 1 or not owners[0].get("name") or not owners[0].get("uid")):
        raise ValueError(
            f"WorkerEndpoint {name}: metadata.ownerReferences: expected one Pod "
            f'(or the label {DURABLE_LABEL}: "true")'
        )
    spec = obj.get("spec") or {}
    records: dict[str, bytes] = {}
    for i, item in enumerate(spec.get("records") or []):
        if not (isinstance(item, dict) and isinstance(item.get("key"), str)):
            raise ValueError(f"WorkerEndpoint {name}: spec.records[{i}].key: expected a string")
        if not isinstance(item.get("value"), str):
            raise ValueError(f"WorkerEndpoint {name}: spec.records[{i}].value: expected a string")
        records[item["key"]] = item["value"].encode()
    return Endpoint(
        name=name,
        pod=None if durable else PodRef(str(owners[0]["name"]), str(owners[0]["uid"])),
        writer=str(spec.get("writer", "")),
        records=records,
        labels=labels,
        owners=owner_refs(meta) if durable else (),
        resource_version=str(meta.get("resourceVersion", "")),
    )


def pod_readiness(obj: Mapping[str, Any]) -> tuple[str, bool]:
    """(uid, ready): Ready is the pod's Ready condition, and false once deletion has begun.

    A terminating pod counts as not ready (as EndpointSlices mark it), so its instances leave
    when termination starts, not when the grace period ends.
    """
    meta = obj.get("metadata") or {}
    uid = str(meta.get("uid", ""))
    if meta.get("deletionTimestamp"):
        return uid, False
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return uid, condition.get("status") == "True"
    return uid, False


def pod_controller(obj: Mapping[str, Any]) -> OwnerRef | None:
    """The owner reference marked ``controller`` of a pod (its ReplicaSet, StatefulSet, Job,
    ...); None for a pod that nothing controls."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("uid") and ref.get("name"):
            return OwnerRef(
                str(ref.get("apiVersion", "")), str(ref.get("kind", "")), ref["name"], ref["uid"]
            )
    return None


def selector_for_prefix(prefix: str) -> str | None:
    """The label selector whose objects hold every key under ``prefix``; None for all objects.

    Only an exact-namespace prefix (``drivetrain/v1/<kind>/<namespace>/``) narrows: Kubernetes
    selects labels by equality, not by prefix, so literal and generation prefixes read every
    WorkerEndpoint of the Kubernetes namespace and filter the keys here.
    """
    for root in (INSTANCES_PREFIX, MODELS_PREFIX):
        if prefix.startswith(root):
            rest = prefix[len(root) :]
            if rest.endswith("/") and rest.count("/") == 1:
                return f"{NAMESPACE_LABEL}={label_value(decode_segment(rest[:-1]))}"
    return None


def selector_covers(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Whether an object with ``labels`` is among those ``selector`` (from above) selects."""
    if selector is None:
        return True
    key, _, value = selector.partition("=")
    return labels.get(key) == value
