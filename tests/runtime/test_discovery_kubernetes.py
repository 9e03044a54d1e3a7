"""kubernetes:// beyond the shared store contract: pod readiness gates records, the garbage
collector removes them with the pod, watches recover (server timeout, 410 Gone, outages), label
values and object names, the written object against its CRD, and where the API server is."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema
import pytest
import yaml
from aiohttp import web
from lightkube.types import PatchType

from drivetrain.runtime.discovery import (
    DiscoveryError,
    StoreUnavailableError,
    default_url,
    in_cluster,
    open_store,
)
from drivetrain.runtime.discovery import kubeapi as kubeapi_module
from drivetrain.runtime.discovery import kubernetes as kubernetes_module
from drivetrain.runtime.discovery.kubeapi import (
    ClusterConfig,
    KubeApi,
    KubeApiError,
    KubeConfigError,
)
from drivetrain.runtime.discovery.kubernetes import KubernetesStore
from drivetrain.runtime.discovery.registration import Registration
from drivetrain.runtime.discovery.watcher import ModelWatcher
from drivetrain.runtime.discovery.workerendpoint import (
    MAX_DURABLE_OWNERS,
    MixedNamespacesError,
    OwnerRef,
    adoption_patch,
    build,
    durable_name,
    label_value,
    labels_for,
    object_name,
    owners_with,
    parse,
    pod_controller,
    pod_readiness,
    same_workload,
    selector_for_prefix,
)
from drivetrain.runtime.records import (
    InstanceRecord,
    ModelCard,
    instance_key,
    model_key,
    weights_key,
)
from drivetrain.runtime.scope import NamespaceScope
from tests.kube.emulator import in_loop
from tests.runtime.conftest import free_port
from tests.runtime.kube_support import (
    CRD,
    FRONTEND_ROLE,
    WORKER_ROLE,
    KubeDiscovery,
    WorkerEndpointResource,
)
from tests.schemas import _strict

WAIT = 10.0

# ---- label values, names, selectors (pure) ------------------------------------------------


@pytest.mark.parametrize("text", ["team-a", "", "Qwen3-0.6B", "a" * 63, "x.y_z"])
def test_a_valid_label_value_is_kept(text: str) -> None:
    assert label_value(text) == text


@pytest.mark.parametrize("text", ["Qwen/Qwen3-0.6B", "a" * 64, "-edge", "edge.", "ümlaut", "a b"])
def test_anything_else_is_hashed_into_a_valid_label_value(text: str) -> None:
    value = label_value(text)
    assert value.startswith("sha256-") and len(value) == 63
    assert label_value(text) == value  # stable: every writer and reader computes the same
    assert label_value(text + "x") != value


def test_object_names_are_the_pod_then_container_then_slot_and_stay_dns_subdomains() -> None:
    assert object_name("agg-backend-0") == "agg-backend-0"
    assert object_name("agg-backend-0", "engine-1") == "agg-backend-0-engine-1"
    assert object_name("agg-backend-0", None, 3) == "agg-backend-0-3"
    long = object_name("p" * 250, "main")
    assert len(long) == 253 and long[:-17] == "p" * 236 and long[-17] == "-"
    assert object_name("p" * 250, "main") == long and object_name("p" * 250, "side") != long


@pytest.mark.parametrize(
    ("scope", "selectors"),
    [
        (NamespaceScope.from_args(namespace="team"), {"drivetrain.dev/namespace=team"}),
        (
            NamespaceScope.from_args(namespace="Team/A"),
            {f"drivetrain.dev/namespace={label_value('Team/A')}"},
        ),
        (NamespaceScope.from_args(namespace_prefix="team"), {None}),
        (
            NamespaceScope.from_args(namespace_prefix="team", strict=True),
            {"drivetrain.dev/namespace=team", None},
        ),
        (NamespaceScope.from_args(), {None}),
    ],
    ids=["exact", "exact-hashed", "prefix", "generation", "global"],
)
def test_only_an_exact_namespace_narrows_the_watch_to_a_label_selector(
    scope: NamespaceScope, selectors: set[str | None]
) -> None:
    prefixes = scope.watch_prefixes("instances") + scope.watch_prefixes("models")
    assert {selector_for_prefix(p) for p in prefixes} == selectors


def test_labels_name_the_namespace_component_and_model_and_refuse_two_namespaces() -> None:
    keys = [instance_key("team", "backend", "i1"), model_key("team", "Qwen/Qwen3-0.6B", "i1")]
    assert labels_for(keys) == {
        "drivetrain.dev/namespace": "team",
        "drivetrain.dev/component": "backend",
        "drivetrain.dev/model": label_value("Qwen/Qwen3-0.6B"),
    }
    assert labels_for(["not/a/record"]) == {}
    with pytest.raises(MixedNamespacesError, match="one runtime namespace"):
        labels_for([instance_key("a", "backend", "i"), instance_key("b", "backend", "i")])


@pytest.mark.parametrize(
    ("pod", "ready"),
    [
        ({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, True),
        ({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, False),
        ({"status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}, False),
        ({}, False),
        (
            {
                "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            },
            False,
        ),
    ],
    ids=["ready", "not-ready", "no-condition", "no-status", "terminating"],
)
def test_a_pod_is_ready_only_with_its_ready_condition_true_and_not_terminating(
    pod: dict[str, Any], ready: bool
) -> None:
    pod.setdefault("metadata", {})["uid"] = "u1"
    assert pod_readiness(pod) == ("u1", ready)


# ---- the store against the emulator --------------------------------------------------------


def records(
    namespace: str, instance_id: str, model: str = "tiny"
) -> list[InstanceRecord | ModelCard]:
    return [
        InstanceRecord(
            instance_id=instance_id,
            namespace=namespace,
            component="backend",
            address=f"10.0.0.1:{9000 + len(instance_id)}",
            transport="tcp",
            model_names=[model],
        ),
        ModelCard(name=model, namespace=namespace, model_types=["chat"], instance_id=instance_id),
    ]


async def worker_store(kube: KubeDiscovery, pod: str, uid: str | None = None) -> KubernetesStore:
    """A handle as the worker in ``pod`` opens it (its own pod env and worker token)."""
    uid = uid or kube.pod(pod)
    config = kube.restricted(f"worker-{pod}", WORKER_ROLE)
    env = {"KUBECONFIG": str(config), **kube.pod_env(pod, uid)}
    return await KubernetesStore.connect(kube.namespace, environ=env)


async def frontend_store(kube: KubeDiscovery) -> KubernetesStore:
    config = kube.restricted("frontend", FRONTEND_ROLE)
    return await KubernetesStore.connect(kube.namespace, environ={"KUBECONFIG": str(config)})


@pytest.fixture
async def frontend(kube_discovery: KubeDiscovery) -> AsyncIterator[KubernetesStore]:
    store = await frontend_store(kube_discovery)
    yield store
    await store.close()


def live(watcher: ModelWatcher) -> set[str]:
    return {i.instance_id for i in watcher.instances.values()}


async def test_records_count_only_while_their_pod_is_ready(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore
) -> None:
    kube = kube_discovery
    worker = await worker_store(kube, "w0")
    kube.set_ready("w0", False)
    async with (
        Registration(worker, 30, records("team", "a")),
        ModelWatcher(frontend, NamespaceScope.from_args(namespace="team")) as watcher,
    ):
        assert kube.endpoint("w0") is not None  # published, but its pod is not Ready
        assert live(watcher) == set() and watcher.models == {}
        kube.set_ready("w0", True)
        await watcher.wait_for(lambda w: live(w) == {"a"} and "tiny" in w.models, WAIT)
        kube.set_ready("w0", False)
        await watcher.wait_for(lambda w: live(w) == set() and not w.models, WAIT)
    await worker.close()


async def test_a_deleted_pod_takes_its_records_and_the_collector_its_object(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore
) -> None:
    kube = kube_discovery
    workers = [await worker_store(kube, name) for name in ("w0", "w1")]
    registrations = [
        Registration(store, 30, records("team", f"i{n}")) for n, store in enumerate(workers)
    ]
    for registration in registrations:
        await registration.start()
    async with ModelWatcher(frontend, NamespaceScope.from_args()) as watcher:
        await watcher.wait_for(lambda w: live(w) == {"i0", "i1"}, WAIT)
        kube.delete_pod("w1")
        await watcher.wait_for(lambda w: live(w) == {"i0"}, WAIT)
        assert set(kube.endpoints()) == {"w0"}
    for registration in registrations:
        await registration.stop()
    for store in workers:
        await store.close()


async def test_a_new_pod_with_the_same_name_does_not_revive_the_old_records(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore
) -> None:
    # A StatefulSet or LeaderWorkerSet pod comes back with its name and a new uid; until its
    # new worker writes, the old object (owned by the old uid) must not count.
    kube = kube_discovery
    old_uid = kube.pod("w0")
    old = await worker_store(kube, "w0", old_uid)
    await old.put(
        instance_key("team", "backend", "old"),
        records("team", "old")[0].encode(),
        await old.grant_lease(30),
    )
    new_uid = in_loop(
        kube.running,
        lambda: kube.emulator.replace_before_collection("", "pods", kube.namespace, "w0"),
    )
    assert new_uid != old_uid and kube.endpoint("w0") is not None
    async with ModelWatcher(frontend, NamespaceScope.from_args()) as watcher:
        assert live(watcher) == set()
        new = await worker_store(kube, "w0", new_uid)
        async with Registration(new, 30, records("team", "new")):
            await watcher.wait_for(lambda w: live(w) == {"new"}, WAIT)
        await new.close()
    await old.close()


async def test_a_clean_stop_deletes_the_object_and_a_deleted_object_is_written_again(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore, caplog: pytest.LogCaptureFixture
) -> None:
    kube = kube_discovery
    worker = await worker_store(kube, "w0")
    registration = Registration(worker, 1.0, records("team", "a"), refresh_every=0.1)
    await registration.start()
    async with ModelWatcher(frontend, NamespaceScope.from_args(namespace="team")) as watcher:
        await watcher.wait_for(lambda w: live(w) == {"a"}, WAIT)
        kube.client.delete(WorkerEndpointResource, "w0")  # behind the worker's back
        await watcher.wait_for(lambda w: live(w) == set(), WAIT)
        await watcher.wait_for(lambda w: live(w) == {"a"}, WAIT)  # the next refresh rewrote it
        async with asyncio.timeout(WAIT):  # counted once the apply has answered
            while registration.registrations < 2:
                await asyncio.sleep(0.01)
        assert any("was deleted while its pod runs" in r.getMessage() for r in caplog.records)
        await registration.stop()
        assert kube.endpoint("w0") is None
        await watcher.wait_for(lambda w: live(w) == set(), WAIT)
    await worker.close()


async def test_a_second_process_writing_the_same_object_is_reported(
    kube_discovery: KubeDiscovery, caplog: pytest.LogCaptureFixture
) -> None:
    kube = kube_discovery
    worker = await worker_store(kube, "w0")
    lease = await worker.grant_lease(30)
    await worker.put(instance_key("team", "backend", "a"), b"{}", lease)
    kube.client.patch(
        WorkerEndpointResource,
        "w0",
        {"spec": {"writer": "someone-else"}},
        patch_type=PatchType.MERGE,
    )
    assert await lease.refresh() is False
    assert any("give each its own DRIVETRAIN_CONTAINER" in r.getMessage() for r in caplog.records)
    await worker.close()


# ---- records put without a lease: the RL API's committed version ---------------------------


def test_a_durable_object_is_owned_by_the_writers_workload_and_never_by_a_pod() -> None:
    key = weights_key("team", "tiny")
    owner = OwnerRef("apps/v1", "ReplicaSet", "fe-7d9f", "rs-uid")
    owned = build(durable_name(key), "disc", None, "writer", {key: b"{}"}, (owner,))
    assert owned["metadata"]["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "fe-7d9f", "uid": "rs-uid"}
    ]
    assert owned["metadata"]["labels"] == {"drivetrain.dev/durable": "true"}
    assert parse(owned).pod is None and parse(owned).records == {key: b"{}"}
    assert parse(owned).owners == (owner,)
    alone = build(durable_name(key), "disc", None, "writer", {key: b"{}"})
    assert "ownerReferences" not in alone["metadata"]
    assert parse(alone).pod is None
    # Without the label, an object that no pod owns is not a record anyone may count.
    del alone["metadata"]["labels"]["drivetrain.dev/durable"]
    with pytest.raises(ValueError, match=r"metadata\.ownerReferences: expected one Pod"):
        parse(alone)
    # One object per key, named as a DNS subdomain.
    assert durable_name(key) != durable_name(weights_key("team", "other"))
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", durable_name(key))


RS = [OwnerRef("apps/v1", "ReplicaSet", f"fe-{i}", f"uid-{i}") for i in range(12)]


def test_a_pods_controller_is_added_first_to_a_durable_objects_owners_once() -> None:
    assert owners_with((), RS[0]) == (RS[0],)
    assert owners_with((RS[0],), RS[1]) == (RS[1], RS[0])  # the newest first
    # Already an owner (matched by uid): nothing changes, so a reader writes nothing.
    assert owners_with((RS[1], RS[0]), RS[0]) == (RS[1], RS[0])
    renamed = OwnerRef("apps/v1", "ReplicaSet", "other-name", "uid-0")
    assert owners_with((RS[1], RS[0]), renamed) == (RS[1], RS[0])
    # A process outside any workload keeps what is there.
    assert owners_with((RS[1], RS[0]), None) == (RS[1], RS[0])
    # At most MAX_DURABLE_OWNERS: the oldest addition leaves.
    full = tuple(reversed(RS[:MAX_DURABLE_OWNERS]))
    assert owners_with(full, RS[11]) == (RS[11], *full[:-1])
    assert len(owners_with(full, RS[11])) == MAX_DURABLE_OWNERS


def test_two_replica_sets_of_one_deployment_are_one_workload() -> None:
    def rs(name: str, uid: str) -> OwnerRef:
        return OwnerRef("apps/v1", "ReplicaSet", name, uid)

    # <deployment>-<pod-template-hash>: the hash holds no "-", the Deployment's name may.
    assert same_workload(rs("fe-7d9f8c", "a"), rs("fe-5b6c4d", "b"))
    assert same_workload(rs("my-fe-7d9f8c", "a"), rs("my-fe-5b6c4d", "b"))
    assert not same_workload(rs("fe-7d9f8c", "a"), rs("my-fe-5b6c4d", "b"))
    assert not same_workload(rs("fe-2-7d9f8c", "a"), rs("fe-5b6c4d", "b"))
    # Anything else is one workload only as one object.
    sts = OwnerRef("apps/v1", "StatefulSet", "fe-0", "s")
    assert same_workload(sts, sts) and not same_workload(sts, rs("fe-0", "x"))
    assert not same_workload(OwnerRef("apps/v1", "StatefulSet", "fe-a", "1"), rs("fe-b", "2"))


def test_adding_an_owner_is_a_merge_patch_conditional_on_the_version_seen() -> None:
    key = weights_key("team", "tiny")
    obj = build(durable_name(key), "disc", None, "writer", {key: b"{}"}, (RS[0],))
    obj["metadata"]["resourceVersion"] = "41"
    seen = parse(obj)
    assert seen.resource_version == "41"
    assert adoption_patch(owners_with(seen.owners, RS[1]), seen.resource_version) == {
        "metadata": {
            "resourceVersion": "41",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "fe-1", "uid": "uid-1"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "fe-0", "uid": "uid-0"},
            ],
        }
    }


def test_a_pods_workload_is_its_owner_reference_marked_controller() -> None:
    refs = [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "n"},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "fe-1", "uid": "u", "controller": True},
    ]  # fmt: skip
    assert pod_controller({"metadata": {"ownerReferences": refs}}) == OwnerRef(
        "apps/v1", "ReplicaSet", "fe-1", "u"
    )
    assert pod_controller({"metadata": {"ownerReferences": refs[:1]}}) is None
    assert pod_controller({"metadata": {}}) is None


async def frontend_in_pod(kube: KubeDiscovery, pod: str, uid: str) -> KubernetesStore:
    """A frontend's handle in ``pod``: the graph's discovery account (frontends and workers
    share it, render/rbac.py) and the pod's downward-API env."""
    config = kube.restricted(f"frontend-{pod}", FRONTEND_ROLE, WORKER_ROLE)
    env = {"KUBECONFIG": str(config), **kube.pod_env(pod, uid)}
    return await KubernetesStore.connect(kube.namespace, environ=env)


async def values(store: KubernetesStore, key: str) -> list[bytes]:
    return [kv.value for kv in (await store.get_prefix(key))[0]]


async def until_values(store: KubernetesStore, key: str, wanted: list[bytes]) -> None:
    async with asyncio.timeout(WAIT):
        while await values(store, key) != wanted:
            await asyncio.sleep(0.05)


async def test_a_record_put_without_a_lease_outlives_its_writers_pod_and_goes_with_its_workload(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore
) -> None:
    # The committed weight version (docs/rl.md) is written by the frontend pod that ran the
    # update; a restart, an eviction or a rolling update of that pod must not take it away,
    # deleting the graph (its workloads) must.
    kube = kube_discovery
    workload = kube.deployment("fe")
    writer = await frontend_in_pod(kube, "fe-a", kube.pod("fe-a", controller=workload))
    key = weights_key("team", "tiny")
    await writer.put(key, b'{"version": "v1"}')
    obj = kube.endpoint(durable_name(key))
    assert obj is not None
    assert obj["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "fe",
            "uid": workload["metadata"]["uid"],
        }
    ]
    (crd,) = yaml.safe_load_all(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert [e.message for e in jsonschema.Draft7Validator(_strict(schema)).iter_errors(obj)] == []
    assert await values(frontend, key) == [b'{"version": "v1"}']
    kube.set_ready("fe-a", False)  # the writer's container restarting
    kube.delete_pod("fe-a")  # then its pod evicted
    await writer.close()
    # A frontend in a new pod of the workload finds it, and so does every other reader.
    successor = await frontend_in_pod(kube, "fe-b", kube.pod("fe-b", controller=workload))
    assert await values(successor, key) == [b'{"version": "v1"}']
    await asyncio.sleep(0.2)  # the deletions above reached the watches
    assert await values(frontend, key) == [b'{"version": "v1"}']
    # The successor's next commit replaces it in the same object.
    await successor.put(key, b'{"version": "v2"}')
    await until_values(frontend, key, [b'{"version": "v2"}'])
    await successor.close()
    kube.delete_deployment("fe")  # the graph deleted: the collector takes the record with it
    await until_values(frontend, key, [])
    assert kube.endpoint(durable_name(key)) is None


KEY = weights_key("team", "tiny")
DURABLE = durable_name(KEY)


def durable_object(kube: KubeDiscovery) -> dict[str, Any]:
    obj = kube.endpoint(DURABLE)
    assert obj is not None
    return obj


def owner_names(kube: KubeDiscovery) -> list[str]:
    return [ref["name"] for ref in durable_object(kube)["metadata"].get("ownerReferences") or []]


async def committed_by_revision_one(kube: KubeDiscovery) -> tuple[dict[str, Any], KubernetesStore]:
    """Deployment ``fe`` with revisions ``fe-1`` and ``fe-2``, and version v1 committed by a
    frontend in pod ``fe-1-a`` of the first: (the second revision, that frontend)."""
    workload = kube.deployment("fe")
    first, second = kube.replica_set("fe-1", workload), kube.replica_set("fe-2", workload)
    writer = await frontend_in_pod(kube, "fe-1-a", kube.pod("fe-1-a", controller=first))
    await writer.put(KEY, b'{"version": "v1"}')
    assert owner_names(kube) == ["fe-1"]
    return second, writer


async def test_a_durable_record_outlives_the_replica_sets_a_rollout_retires(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore
) -> None:
    # A Deployment keeps its last ten ReplicaSets (revisionHistoryLimit) and deletes older
    # ones; the garbage collector then deletes what only they own.  Each frontend adds its own
    # ReplicaSet to the record's owners, so a record written ten rollouts ago stays.
    kube = kube_discovery
    second, writer = await committed_by_revision_one(kube)
    # The rollout: a frontend of the new revision reads the record and adds its ReplicaSet.
    successor = await frontend_in_pod(kube, "fe-2-a", kube.pod("fe-2-a", controller=second))
    assert await values(successor, KEY) == [b'{"version": "v1"}']
    async with asyncio.timeout(WAIT):
        while owner_names(kube) != ["fe-2", "fe-1"]:
            await asyncio.sleep(0.05)
    # A reader whose ReplicaSet is already an owner writes nothing.
    version = durable_object(kube)["metadata"]["resourceVersion"]
    replica = await frontend_in_pod(kube, "fe-2-b", kube.pod("fe-2-b", controller=second))
    assert await values(replica, KEY) == [b'{"version": "v1"}']
    await asyncio.sleep(0.3)
    assert durable_object(kube)["metadata"]["resourceVersion"] == version
    # The old revision's pods end, then the Deployment deletes the old ReplicaSet.
    kube.delete_pod("fe-1-a")
    await writer.close()
    kube.delete_replica_set("fe-1")
    await asyncio.sleep(0.2)  # the deletions reached the watches
    assert await values(frontend, KEY) == [b'{"version": "v1"}']
    assert owner_names(kube) == ["fe-2", "fe-1"]  # a stale reference is harmless
    # The next commit keeps the owners it sees, its own first.
    await successor.put(KEY, b'{"version": "v2"}')
    assert owner_names(kube) == ["fe-2", "fe-1"]
    await until_values(frontend, KEY, [b'{"version": "v2"}'])
    for store in (successor, replica):
        await store.close()
    kube.delete_deployment("fe")  # its ReplicaSets go, and with the last one the record
    await until_values(frontend, KEY, [])
    assert kube.endpoint(DURABLE) is None


async def test_a_frontend_of_another_workload_does_not_keep_the_record(
    kube_discovery: KubeDiscovery,
) -> None:
    # Frontends follow every weights record of the namespace (all graphs'); only a revision of
    # the writer's own Deployment adds itself, or a graph's record would outlive the graph.
    kube = kube_discovery
    _, writer = await committed_by_revision_one(kube)
    version = durable_object(kube)["metadata"]["resourceVersion"]
    other = kube.replica_set("other-1", kube.deployment("other"))
    reader = await frontend_in_pod(kube, "other-1-a", kube.pod("other-1-a", controller=other))
    assert await values(reader, KEY) == [b'{"version": "v1"}']
    await asyncio.sleep(0.3)
    assert durable_object(kube)["metadata"]["resourceVersion"] == version
    assert owner_names(kube) == ["fe-1"]
    kube.delete_deployment("fe")  # that graph deleted: its record goes, whoever reads it
    await until_values(reader, KEY, [])
    for store in (reader, writer):
        await store.close()


async def test_an_owner_added_from_a_stale_view_is_refused_and_drops_no_one(
    kube_discovery: KubeDiscovery, caplog: pytest.LogCaptureFixture
) -> None:
    kube = kube_discovery
    second, writer = await committed_by_revision_one(kube)
    stale = durable_object(kube)["metadata"]["resourceVersion"]
    await writer.put(KEY, b'{"version": "v2"}')  # the object changes after that view
    mine = OwnerRef("apps/v1", "ReplicaSet", "fe-2", second["metadata"]["uid"])
    body = adoption_patch(owners_with((), mine), stale)  # a view that saw no owner at all
    await writer._patch_owners(DURABLE, body)  # 409 Conflict: decided again on a fresh view
    assert owner_names(kube) == ["fe-1"]  # the writer's own ReplicaSet already owns it
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    await writer.close()


async def test_a_reader_whose_patch_conflicted_adds_its_owner_from_the_next_view(
    kube_discovery: KubeDiscovery, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = kube_discovery
    second, writer = await committed_by_revision_one(kube)
    stale = durable_object(kube)["metadata"]["resourceVersion"]
    await writer.put(KEY, b'{"version": "v2"}')
    # A reader of the new revision that will not try on its own (its last try "just now", and
    # the interval long): only the conflict below can make it try again.
    monkeypatch.setattr(kubernetes_module, "ADOPT_INTERVAL_S", 1000.0)
    monkeypatch.setattr(kubernetes_module, "CONFLICT_RETRY_S", 0.05)
    reader = await frontend_in_pod(kube, "fe-2-a", kube.pod("fe-2-a", controller=second))
    reader._adopted_at[DURABLE] = asyncio.get_running_loop().time()
    assert await values(reader, KEY) == [b'{"version": "v2"}']
    assert owner_names(kube) == ["fe-1"]
    mine = OwnerRef("apps/v1", "ReplicaSet", "fe-2", second["metadata"]["uid"])
    await reader._patch_owners(DURABLE, adoption_patch(owners_with((), mine), stale))
    async with asyncio.timeout(WAIT):
        while owner_names(kube) != ["fe-2", "fe-1"]:
            await asyncio.sleep(0.05)
    for store in (reader, writer):
        await store.close()


async def test_a_durable_record_is_deleted_by_whoever_deletes_its_key(
    kube_discovery: KubeDiscovery,
) -> None:
    kube = kube_discovery
    first = await frontend_in_pod(kube, "fe-a", kube.pod("fe-a"))
    key = weights_key("team", "tiny")
    await first.put(key, b"{}")
    # No workload controls this pod: nothing owns the object, it stays until deleted.
    obj = kube.endpoint(durable_name(key))
    assert obj is not None and "ownerReferences" not in obj["metadata"]
    kube.delete_pod("fe-a")
    await first.close()
    second = await frontend_in_pod(kube, "fe-b", kube.pod("fe-b"))
    assert await values(second, key) == [b"{}"]
    await second.delete(key)
    assert await values(second, key) == []
    assert kube.endpoint(durable_name(key)) is None
    await second.close()


async def test_the_written_object_is_valid_for_the_crd_and_carries_owner_labels_and_records(
    kube_discovery: KubeDiscovery,
) -> None:
    kube = kube_discovery
    uid = kube.pod("w0")
    worker = await worker_store(kube, "w0", uid)
    written = records("Team/A", "i1", model="Qwen/Qwen3-0.6B")
    async with Registration(worker, 30, written):
        obj = kube.endpoint("w0")
    await worker.close()
    assert obj is not None
    (crd,) = yaml.safe_load_all(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    errors = [e.message for e in jsonschema.Draft7Validator(_strict(schema)).iter_errors(obj)]
    assert errors == []
    meta = obj["metadata"]
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "w0", "uid": uid}
    ]
    assert meta["labels"] == {
        "drivetrain.dev/namespace": label_value("Team/A"),
        "drivetrain.dev/component": "backend",
        "drivetrain.dev/model": label_value("Qwen/Qwen3-0.6B"),
    }
    assert {r["key"]: r["value"].encode() for r in obj["spec"]["records"]} == {
        r.key: r.encode() for r in written
    }
    # The kind, group and plural the backend writes are the CRD's.
    names = crd["spec"]["names"]
    assert (obj["apiVersion"], obj["kind"]) == (f"{crd['spec']['group']}/v1alpha1", names["kind"])


async def test_an_exact_scope_lists_by_label_and_finds_hashed_namespaces(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore
) -> None:
    kube = kube_discovery
    workers = {ns: await worker_store(kube, f"w{i}") for i, ns in enumerate(["Team/A", "other"])}
    for n, (ns, store) in enumerate(workers.items()):
        await Registration(store, 30, records(ns, f"i{n}")).start()
    async with ModelWatcher(frontend, NamespaceScope.from_args(namespace="Team/A")) as watcher:
        assert live(watcher) == {"i0"}
    selector = "labelSelector=drivetrain.dev/namespace=" + label_value("Team/A")
    endpoint_reads = [unquote(p) for _, p, _ in kube.emulator.log if "/workerendpoints?" in p]
    assert endpoint_reads and all(selector in path for path in endpoint_reads)
    for store in workers.values():
        await store.close()


async def test_a_write_the_token_does_not_allow_fails_with_the_api_servers_reason(
    kube_discovery: KubeDiscovery,
) -> None:
    kube = kube_discovery
    uid = kube.pod("w0")
    # A token that may only read WorkerEndpoints (as a Role without the worker's rules).
    read_only = [
        {"apiGroups": ["drivetrain.dev"], "resources": ["workerendpoints"], "verbs": ["list"]}
    ]
    kube.emulator.grant("reader", kube.namespace, read_only)
    config = kube.kubeconfig("reader", "reader")
    store = await KubernetesStore.connect(
        kube.namespace, environ={"KUBECONFIG": str(config), **kube.pod_env("w0", uid)}
    )
    with pytest.raises(KubeApiError, match='cannot patch resource "workerendpoints"') as caught:
        await store.put(instance_key("team", "backend", "a"), b"{}", await store.grant_lease(30))
    assert caught.value.status == 403
    await store.close()


async def test_writes_need_the_pod_identity_and_its_namespace(
    kube_discovery: KubeDiscovery,
) -> None:
    kube = kube_discovery
    config = str(kube.kubeconfig())
    store = await KubernetesStore.connect(kube.namespace, environ={"KUBECONFIG": config})
    with pytest.raises(DiscoveryError, match="needs POD_NAME and POD_UID"):
        await store.grant_lease(10)
    await store.close()
    elsewhere = await KubernetesStore.connect(
        "elsewhere", environ={"KUBECONFIG": config, **kube.pod_env("w0", "u")}
    )
    assert (await elsewhere.get_prefix("drivetrain/"))[0] == []  # reading another one is fine
    with pytest.raises(DiscoveryError, match="must be in the Pod's namespace"):
        await elsewhere.grant_lease(10)
    await elsewhere.close()
    lease_store = await worker_store(kube, "w0")
    lease = await lease_store.grant_lease(10)
    with pytest.raises(DiscoveryError, match="one runtime namespace"):
        await lease_store.put(instance_key("a", "backend", "i"), b"{}", lease)
        await lease_store.put(instance_key("b", "backend", "i"), b"{}", lease)
    await lease_store.close()


async def test_without_the_crd_a_worker_fails_and_a_frontend_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = KubeDiscovery(tmp_path, install_crd=False)
    try:
        worker = await worker_store(kube, "w0")
        with pytest.raises(KubeApiError) as caught:
            await Registration(worker, 10, records("team", "a")).start(timeout=0.5)
        assert caught.value.status == 404
        await worker.close()
        monkeypatch.setattr(kubernetes_module, "SYNC_TIMEOUT_S", 0.5)
        frontend = await frontend_store(kube)
        with pytest.raises(StoreUnavailableError, match=r"404 NotFound: GET \S*/workerendpoints"):
            await frontend.get_prefix("drivetrain/")
        await frontend.close()
    finally:
        kube.stop()


# ---- recovery: server-ended watches, 410 Gone, outages --------------------------------------


async def recovery_setup(
    kube: KubeDiscovery, frontend: KubernetesStore
) -> tuple[KubernetesStore, ModelWatcher, Callable[[str], Any]]:
    worker = await worker_store(kube, "w0")
    watcher = ModelWatcher(frontend, NamespaceScope.from_args())
    await watcher.start()

    async def register(instance_id: str) -> Registration:
        registration = Registration(worker, 30, records("team", instance_id))
        await registration.start()
        return registration

    return worker, watcher, register


async def test_a_watch_the_server_ends_resumes_without_listing_again(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore
) -> None:
    kube = kube_discovery
    worker, watcher, register = await recovery_setup(kube, frontend)
    await register("a")
    await watcher.wait_for(lambda w: live(w) == {"a"}, WAIT)
    for _ in range(3):
        in_loop(kube.running, kube.emulator.end_watches)
        await asyncio.sleep(0.1)
    await register("b")
    await watcher.wait_for(lambda w: live(w) == {"a", "b"}, WAIT)
    assert frontend._endpoints is not None and frontend._endpoints.lists == 1
    assert watcher.resyncs == 0
    await watcher.stop()
    await worker.close()


async def test_410_gone_lists_again_and_catches_up_with_what_changed_meanwhile(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore
) -> None:
    kube = kube_discovery
    worker, watcher, register = await recovery_setup(kube, frontend)
    first = await register("a")
    await watcher.wait_for(lambda w: live(w) == {"a"}, WAIT)
    # The frontend is cut off; meanwhile one worker leaves, another comes, and the history
    # is compacted past the frontend's resourceVersion.
    kube.emulator.unavailable_to.add("frontend")
    in_loop(kube.running, kube.emulator.end_watches)
    await first.stop()
    await register("b")
    kube.emulator.compact()
    await asyncio.sleep(0.2)
    assert live(watcher) == {"a"}  # still the old view: nothing reached the frontend
    kube.emulator.unavailable_to.clear()
    await watcher.wait_for(lambda w: live(w) == {"b"}, WAIT)
    assert frontend._endpoints is not None and frontend._endpoints.lists >= 2
    assert watcher.resyncs == 0  # the store caught up; the watcher never had to
    await watcher.stop()
    await worker.close()


async def test_an_outage_is_retried_with_backoff_and_warned_about_once(
    kube_discovery: KubeDiscovery, frontend: KubernetesStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="drivetrain.runtime.discovery.reflector")
    kube = kube_discovery
    worker, watcher, register = await recovery_setup(kube, frontend)
    kube.emulator.unavailable = True
    in_loop(kube.running, kube.emulator.end_watches)
    await asyncio.sleep(1.5)  # several retries: 50 ms doubling
    kube.emulator.unavailable = False
    await register("a")
    await watcher.wait_for(lambda w: live(w) == {"a"}, WAIT)
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) >= 4
    assert [r.levelno for r in retries].count(logging.WARNING) == 2  # once per reflector
    assert any("answers again" in r.getMessage() for r in caplog.records)
    await watcher.stop()
    await worker.close()


async def test_a_first_read_with_no_api_server_fails_as_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setattr(kubernetes_module, "SYNC_TIMEOUT_S", 0.5)
    store = await open_store("kubernetes://", environ={"KUBECONFIG": str(path)})
    try:
        with pytest.raises(StoreUnavailableError, match=r"no list from the API server in 0\.5s"):
            await store.get_prefix("drivetrain/")
    finally:
        await store.close()


# ---- where the API server is ----------------------------------------------------------------


def kubeconfig(tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://k8s.example:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ml"}}],
        "current-context": "x",
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_kubeconfig_gives_server_namespace_and_credentials_relative_to_its_folder(
    tmp_path: Path,
) -> None:
    path = kubeconfig(
        tmp_path,
        {"tokenFile": "token"},
        {"server": "https://k:6443/", "certificate-authority": "ca.crt"},
    )
    config = ClusterConfig.from_kubeconfig([str(tmp_path / "missing"), str(path)])
    assert (config.server, config.namespace) == ("https://k:6443", "ml")
    assert config.token_file == str(tmp_path / "token")
    assert config.ca_file == str(tmp_path / "ca.crt")


@pytest.mark.parametrize(
    ("user", "message"),
    [
        (
            {"exec": {"command": "gke-gcloud-auth-plugin"}},
            r"users\[u\]\.exec: .* credential plugins",
        ),
        ({"auth-provider": {"name": "oidc"}}, r"users\[u\]\.auth-provider"),
        (
            {"client-certificate-data": "%%%"},
            r"users\[u\]\.client-certificate-data: expected base64",
        ),
    ],
)
def test_a_kubeconfig_the_client_cannot_use_is_refused_naming_file_and_field(
    tmp_path: Path, user: dict[str, Any], message: str
) -> None:
    path = kubeconfig(tmp_path, user)
    with pytest.raises(KubeConfigError, match=str(path) + ".*" + message):
        ClusterConfig.from_kubeconfig([str(path)])


def test_unreadable_tls_material_is_a_configuration_error_naming_the_kubeconfig(
    tmp_path: Path,
) -> None:
    path = kubeconfig(
        tmp_path,
        {"token": "t"},
        {"server": "https://k:6443", "certificate-authority": "missing-ca.crt"},
    )
    with pytest.raises(KubeConfigError, match=f"{path}.*TLS certificates"):
        KubeApi(ClusterConfig.from_kubeconfig([str(path)]))


def test_without_any_configuration_the_error_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeConfigError, match="no API server configured"):
        ClusterConfig.load({}, sa_dir=str(tmp_path / "no-sa"))


def service_account(tmp_path: Path, token: str = "sa-token") -> Path:
    sa = tmp_path / "serviceaccount"
    sa.mkdir(exist_ok=True)
    (sa / "token").write_text(token)
    (sa / "namespace").write_text("team-ns\n")
    return sa


def test_inside_a_pod_discovery_defaults_to_kubernetes_and_reads_the_service_account(
    tmp_path: Path,
) -> None:
    sa = service_account(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster(str(sa), env) and not in_cluster(str(sa), {})
    assert default_url(env, str(sa)) == "kubernetes://"
    assert default_url({**env, "DRIVETRAIN_DISCOVERY": "etcd://e:2379"}, str(sa)) == "etcd://e:2379"
    assert default_url({}, str(sa)) is None
    config = ClusterConfig.load(env, str(sa))
    assert (config.server, config.namespace) == ("https://10.96.0.1:443", "team-ns")
    assert config.token_file == str(sa / "token")
    # KUBECONFIG wins over the mount (as controller-runtime orders them).
    path = kubeconfig(tmp_path, {"token": "t"})
    assert ClusterConfig.load({**env, "KUBECONFIG": str(path)}, str(sa)).namespace == "ml"
    ipv6 = ClusterConfig.in_cluster(str(sa), {"KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert ipv6.server == "https://[fd00::1]:443"


async def test_a_rotated_service_account_token_is_read_again(
    kube_discovery: KubeDiscovery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = kube_discovery
    kube.restricted("old-token", FRONTEND_ROLE)
    kube.restricted("new-token", FRONTEND_ROLE)
    token = tmp_path / "token"
    token.write_text("old-token")
    config = ClusterConfig(
        server=kube.running.url, namespace=kube.namespace, source="test", token_file=str(token)
    )
    monkeypatch.setattr(kubeapi_module, "TOKEN_REREAD_S", 0.0)
    api = KubeApi(config)
    path = f"/api/v1/namespaces/{kube.namespace}/pods"
    await api.request("GET", path)
    token.write_text("new-token\n")
    await api.request("GET", path)
    await api.close()
    assert "old-token" in kube.emulator.used and "new-token" in kube.emulator.used


# ---- TLS: in-cluster and client certificates, against a real TLS server ----------------------


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (made once)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=ca",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
        )
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.crt"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(d / f"{name}.ext"),
            "-out",
            str(d / f"{name}.crt"),
        )
    return d


@pytest.fixture
async def tls_server(pki: Path) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTPS server that requires a client certificate or a bearer token, and records who."""
    seen: list[dict[str, Any]] = []

    async def pods(request: web.Request) -> web.Response:
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append({"auth": request.headers.get("Authorization"), "cert": cert})
        return web.json_response(
            {"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": []}
        )

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "server.crt"), str(pki / "server.key"))
    context.verify_mode = ssl.CERT_OPTIONAL
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/pods", pods)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"https://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_in_cluster_config_verifies_the_server_with_the_mounted_ca_and_sends_the_token(
    tmp_path: Path, pki: Path, tls_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = tls_server
    sa = service_account(tmp_path)
    (sa / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    port = url.rsplit(":", 1)[1]
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
    api = KubeApi(ClusterConfig.in_cluster(str(sa), env))
    assert (await api.request("GET", "/api/v1/namespaces/team-ns/pods"))["kind"] == "PodList"
    await api.close()
    assert seen[-1]["auth"] == "Bearer sa-token"
    # Without the CA the server is not trusted.
    (sa / "ca.crt").unlink()  # the system CAs do not know this one
    untrusting = KubeApi(ClusterConfig.in_cluster(str(sa), env))
    with pytest.raises(DiscoveryError, match="certificate verify failed"):
        await untrusting.request("GET", "/api/v1/namespaces/team-ns/pods")
    await untrusting.close()


async def test_a_kubeconfig_client_certificate_given_as_data_authenticates(
    tmp_path: Path, pki: Path, tls_server: tuple[str, list[dict[str, Any]]]
) -> None:
    import base64

    url, seen = tls_server

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    path = kubeconfig(
        tmp_path,
        {"client-certificate-data": b64("client.crt"), "client-key-data": b64("client.key")},
        {"server": url, "certificate-authority-data": b64("ca.crt")},
    )
    api = KubeApi(ClusterConfig.from_kubeconfig([str(path)]))
    await api.request("GET", "/api/v1/namespaces/ml/pods")
    await api.close()
    assert seen[-1]["auth"] is None
    assert dict(x[0] for x in seen[-1]["cert"]["subject"])["commonName"] == "client"


def test_the_crd_serves_what_the_backend_writes_and_deploy_installs_it() -> None:
    from drivetrain.runtime.discovery import workerendpoint
    from tests.kube.test_deploy_manifests import DEPLOY, kustomize

    (crd,) = yaml.safe_load_all(CRD.read_text())
    spec = crd["spec"]
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"], spec["scope"]) == (
        workerendpoint.GROUP,
        workerendpoint.KIND,
        workerendpoint.PLURAL,
        "Namespaced",
    )
    assert [v["name"] for v in spec["versions"] if v["served"]] == [workerendpoint.VERSION]
    installed = [o for o in kustomize(DEPLOY) if o["kind"] == "CustomResourceDefinition"]
    assert crd in installed


async def test_lists_follow_continue_tokens_and_a_410_answer_to_a_watch_lists_again() -> None:
    # The emulator serves neither pagination nor a 410 status: a small real HTTP server does.
    from drivetrain.runtime.discovery.reflector import Reflector

    requests: list[dict[str, str]] = []
    watches = 0
    finished = asyncio.Event()

    async def pods(request: web.Request) -> web.StreamResponse:
        nonlocal watches
        params = dict(request.query)
        requests.append(params)
        if params.get("watch") == "1":
            watches += 1
            if watches == 1:  # the version the list gave is already compacted away
                body = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
                return web.json_response(body, status=410)
            response = web.StreamResponse()
            await response.prepare(request)
            event = {"type": "ADDED", "object": {"metadata": {"name": "c", "resourceVersion": "7"}}}
            await response.write(json.dumps(event).encode() + b"\n")
            await finished.wait()  # held open until the test ends
            return response
        if params.get("continue") == "t1":
            return web.json_response(
                {"metadata": {"resourceVersion": "5"}, "items": [{"metadata": {"name": "b"}}]}
            )
        return web.json_response(
            {"metadata": {"continue": "t1"}, "items": [{"metadata": {"name": "a"}}]}
        )

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/pods", pods)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api = KubeApi(ClusterConfig(server=f"http://127.0.0.1:{port}", namespace="ns", source="test"))
    changed = asyncio.Event()
    reflector: Reflector[str] = Reflector(
        api, "/api/v1/namespaces/ns/pods", None, lambda o: o["metadata"]["name"], changed.set
    )
    reflector.start()
    try:
        async with asyncio.timeout(WAIT):
            while set(reflector.objects) != {"a", "b", "c"}:
                changed.clear()
                await changed.wait()
        assert reflector.lists == 2 and reflector.resource_version == "7"
        lists = [r for r in requests if "watch" not in r]
        assert [r.get("continue") for r in lists] == [None, "t1", None, "t1"]
        assert all(r["limit"] == "500" for r in lists)
        watch = [r for r in requests if "watch" in r][-1]
        assert (watch["resourceVersion"], watch["allowWatchBookmarks"]) == ("5", "true")
    finally:
        finished.set()
        await reflector.stop()
        await api.close()
        await runner.cleanup()


def test_the_kubernetes_store_stays_inside_the_runtime_layer() -> None:
    # The runtime imports no other drivetrain package, only the leaf modules every layer may
    # use (docs/architecture.md), and worker images without lightkube must still run it.
    code = (
        "import sys, drivetrain.runtime.discovery.kubernetes\n"
        "leaves = ('drivetrain.errors', 'drivetrain.envnames', 'drivetrain.lazy')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('lightkube', 'kopf', 'kmock')\n"
        "       or (m.startswith('drivetrain.') and not m.startswith('drivetrain.runtime')\n"
        "           and m not in leaves)]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
