"""``kubernetes://[NAMESPACE]``: discovery through the Kubernetes API, with no etcd to run.

**Writing (workers).**  A lease is one ``WorkerEndpoint`` object (``workerendpoint.py``), named
after the pod (``<pod>-<container>`` when ``DRIVETRAIN_CONTAINER`` is set, for several workers
in one pod), owned by the Pod (``POD_NAME``/``POD_UID`` from the downward API), so the garbage
collector removes it with the pod.  Every put applies the lease's whole record set by
server-side apply (field manager ``drivetrain-worker``); ``revoke`` deletes the object;
``refresh`` reads it back (False once it is gone, or rewritten by another process).  There is no
TTL: the object lives as long as the pod, and its records count only while the pod is Ready.
A put without a lease (the RL API's committed weight version, docs/rl.md) goes into a durable
object of its own, one per key, owned by the writing pod's controller (its ReplicaSet, ...) or
by nothing: it outlives the writer's pod and counts whatever the readiness of any pod.  Every
reader in a pod adds its own pod's controller to the owners of a durable object that another
revision of its workload owns (a merge patch, conditional on the object's resourceVersion), so
after a rollout the new ReplicaSet keeps the record alive when the Deployment deletes the old
ones.

**Reading (frontends).**  The first read starts two reflectors (``reflector.py``): the
WorkerEndpoints that can hold the keys asked for (by the runtime-namespace label when the
prefix is one exact namespace, else all of them in the Kubernetes namespace), and the Pods of
the namespace (kept as uid, readiness and controller).  Their product, the records of every
WorkerEndpoint whose owning pod exists with that uid and is Ready, and of every durable one, is
mirrored into a local ``StoreState`` (the memory store's), whose revisions and events serve
``get_prefix`` and ``watch_prefix``.  A re-list after 410 Gone or a reconnect only changes the
mirror where the cluster changed, so a ``ModelWatcher`` on this store never needs to re-read.

**Read your own writes.**  A handle that both reads and writes waits, after each write, until
its reflector has seen it (at most ``VISIBLE_TIMEOUT_S``), so that a snapshot taken after a
write contains it, as with the other stores.  Every write moves the handle's revision forward.

Differences from the KV stores are listed in docs/discovery.md ("kubernetes://").
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drivetrain import envnames
from drivetrain.runtime.discovery.base import (
    DiscoveryError,
    DiscoveryStore,
    KeyValue,
    Lease,
    LeaseNotFoundError,
    StoreUnavailableError,
    WatchEvent,
)
from drivetrain.runtime.discovery.kubeapi import ClusterConfig, KubeApi, KubeApiError
from drivetrain.runtime.discovery.memory import StoreState
from drivetrain.runtime.discovery.reflector import Reflector
from drivetrain.runtime.discovery.workerendpoint import (
    FIELD_MANAGER,
    Endpoint,
    MixedNamespacesError,
    OwnerRef,
    PodRef,
    adoption_patch,
    build,
    collection_path,
    durable_name,
    labels_for,
    object_name,
    object_path,
    owners_with,
    parse,
    pod_controller,
    pod_readiness,
    pods_path,
    same_workload,
    selector_covers,
    selector_for_prefix,
)

log = logging.getLogger(__name__)

ENV_POD_NAME = envnames.POD_NAME
ENV_POD_UID = envnames.POD_UID
ENV_POD_NAMESPACE = envnames.POD_NAMESPACE
ENV_CONTAINER = envnames.CONTAINER

SYNC_TIMEOUT_S = 10.0  # a first read waits this long for the API server before failing
VISIBLE_TIMEOUT_S = 5.0  # a write waits this long to see itself in this handle's reflector
# A reader patches one durable object's owners at most this often, so that a conflict it cannot
# settle (more live ReplicaSets than MAX_DURABLE_OWNERS) costs a request per interval, not a loop.
ADOPT_INTERVAL_S = 10.0
CONFLICT_RETRY_S = 1.0  # after a 409, the watch has the new version well within this

_ALL = object()  # "no reflector yet" (None is a selector: every object)


@dataclass(frozen=True)
class PodIdentity:
    """The pod (and container) a writing process runs in: it names and owns its objects."""

    pod: PodRef
    namespace: str | None
    container: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PodIdentity | None:
        env = os.environ if environ is None else environ
        name, uid = env.get(ENV_POD_NAME, "").strip(), env.get(ENV_POD_UID, "").strip()
        if not name or not uid:
            return None
        return cls(
            PodRef(name, uid),
            env.get(ENV_POD_NAMESPACE, "").strip() or None,
            env.get(ENV_CONTAINER, "").strip() or None,
        )


@dataclass(frozen=True)
class PodState:
    """What a frontend keeps of each pod of its namespace."""

    uid: str
    ready: bool
    controller: OwnerRef | None  # whoever owns a durable object this pod's process writes


class KubernetesLease(Lease):
    """One WorkerEndpoint object: the records put under this lease, applied together.  A
    ``durable`` one holds the record of one key put without a lease (never handed out)."""

    def __init__(
        self, store: KubernetesStore, lease_id: int, ttl: float, name: str, durable: bool = False
    ) -> None:
        self._store = store
        self.id = lease_id
        self.ttl = ttl  # unused by the API server: the pod's lifetime is the lease's
        self.name = name
        self.durable = durable
        self.records: dict[str, bytes] = {}
        self.applied = False  # the object exists (as far as this handle knows)
        self.gone = False  # revoked here, or found deleted or taken over

    async def refresh(self) -> bool:
        return await self._store._refresh(self)

    async def revoke(self) -> None:
        await self._store._revoke(self)


class KubernetesStore(DiscoveryStore):
    # A worker's Role may write its WorkerEndpoints only (docs/discovery.md, "RBAC"), and a
    # read would start reflectors its writes then wait for: it never reads.
    workers_read = False

    def __init__(self, api: KubeApi, namespace: str, identity: PodIdentity | None = None) -> None:
        self.api = api
        self.namespace = namespace
        self.identity = identity
        self.writer = uuid.uuid4().hex  # tells this process's writes from another's
        self._lease_ids = itertools.count(1)
        self._leases: list[KubernetesLease] = []  # live leases, in grant order
        self._durable: dict[str, KubernetesLease] = {}  # records put without a lease, by key
        # The read side: the mirror and the reflectors feeding it.
        self._state = StoreState()
        self._watches: set[Any] = set()
        self._selector: object = _ALL
        self._endpoints: Reflector[Endpoint] | None = None
        self._pods: Reflector[PodState] | None = None
        self._view_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._adopted_at: dict[str, float] = {}  # durable object -> when this reader last patched
        self._adopting: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    async def connect(
        cls,
        namespace: str | None = None,
        *,
        config: ClusterConfig | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> KubernetesStore:
        """A handle on ``namespace`` (default: the pod's, then the configuration's)."""
        env = os.environ if environ is None else environ
        config = config or ClusterConfig.load(env)
        identity = PodIdentity.from_env(env)
        chosen = namespace or (identity.namespace if identity else None) or config.namespace
        return cls(KubeApi(config), chosen, identity)

    def describe(self) -> str:
        return f"kubernetes://{self.namespace} ({self.api.config.source})"

    # ---- writing ------------------------------------------------------------------------

    def _require_identity(self) -> PodIdentity:
        if self._closed:
            raise StoreUnavailableError("kubernetes store handle is closed")
        if self.identity is None:
            raise DiscoveryError(
                "kubernetes:// discovery: a worker publishes a WorkerEndpoint owned by its Pod, "
                f"and needs {ENV_POD_NAME} and {ENV_POD_UID} (downward API fields metadata.name "
                "and metadata.uid); they are not set"
            )
        if self.identity.namespace and self.identity.namespace != self.namespace:
            # A frontend may read another namespace; a writer's owner must be beside it.
            raise DiscoveryError(
                f"kubernetes://{self.namespace}: this process runs in namespace "
                f"{self.identity.namespace!r} ({ENV_POD_NAMESPACE}); a WorkerEndpoint is owned by "
                "its Pod and must be in the Pod's namespace"
            )
        return self.identity

    def _new_lease(self, ttl: float) -> KubernetesLease:
        identity = self._require_identity()
        taken = {lease.name for lease in self._leases}
        slot = next(
            i
            for i in itertools.count(1)
            if object_name(identity.pod.name, identity.container, i) not in taken
        )
        name = object_name(identity.pod.name, identity.container, slot)
        lease = KubernetesLease(self, next(self._lease_ids), ttl, name)
        self._leases.append(lease)
        return lease

    def _release(self, lease: KubernetesLease) -> None:
        lease.gone = True
        lease.applied = False
        if lease in self._leases:
            self._leases.remove(lease)
        for key, durable in list(self._durable.items()):
            if durable is lease:
                del self._durable[key]

    def _durable_lease(self, key: str) -> KubernetesLease:
        lease = self._durable.get(key)
        if lease is None:
            lease = KubernetesLease(self, next(self._lease_ids), 0.0, durable_name(key), True)
            self._durable[key] = lease
            self._leases.append(lease)
        return lease

    async def grant_lease(self, ttl: float) -> Lease:
        return self._new_lease(ttl)

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        if self._closed:
            raise StoreUnavailableError("kubernetes store handle is closed")
        if lease is None:
            target = self._durable_lease(key)  # owned by no pod: needs no pod identity
        elif isinstance(lease, KubernetesLease) and lease._store is self:
            self._require_identity()
            target = lease
        else:
            raise LeaseNotFoundError(f"lease {lease.id} is not a lease of {self.describe()}")
        if target.gone:
            raise LeaseNotFoundError(f"lease {target.id} ({target.name}) was revoked or lost")
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise DiscoveryError(f"put {key}: kubernetes:// stores UTF-8 values only") from None
        records = {**target.records, key: value}
        try:
            labels_for(records)
        except MixedNamespacesError as exc:
            raise DiscoveryError(f"put {key} under lease {target.id}: {exc}") from None
        # A key belongs to one object: a put under another lease moves it (as etcd does).
        for other in list(self._leases):
            if other is not target and key in other.records:
                del other.records[key]
                await self._write(other)
        target.records = records
        await self._write(target)
        return self._state.advance()

    async def delete(self, key: str) -> None:
        """Remove a key this handle wrote, or a durable record whoever wrote it; keys other
        processes put under a lease go with their pods."""
        if self._closed:
            raise StoreUnavailableError("kubernetes store handle is closed")
        held = False
        for lease in list(self._leases):
            if key in lease.records:
                held = True
                del lease.records[key]
                await self._write(lease)
        name = durable_name(key)
        if not held and self._endpoints is not None and name in self._endpoints.objects:
            durable = self._durable_lease(key)
            durable.applied = True  # written by another process: delete it all the same
            await self._delete_object(durable)

    async def _write(self, lease: KubernetesLease) -> None:
        """Make the object match ``lease.records``: apply them, or delete it when empty."""
        if not lease.records:
            await self._delete_object(lease)
            return
        if lease.durable:
            seen = self._endpoints.objects.get(lease.name) if self._endpoints else None
            owners = owners_with(seen.owners if seen else (), await self._owner())
            body = build(lease.name, self.namespace, None, self.writer, lease.records, owners)
        else:
            pod = self._require_identity().pod
            body = build(lease.name, self.namespace, pod, self.writer, lease.records)
        await self.api.request(
            "PATCH",
            object_path(self.namespace, lease.name),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=body,
            content_type="application/apply-patch+yaml",
        )
        lease.applied = True
        expected = dict(lease.records)
        await self._until_seen(
            body["metadata"]["labels"],
            lambda: _holds(self._endpoints, lease.name, self.writer, expected),
        )

    async def _delete_object(self, lease: KubernetesLease) -> None:
        if not lease.applied:
            return
        try:
            await self.api.request("DELETE", object_path(self.namespace, lease.name))
        except KubeApiError as exc:
            if exc.status != 404:
                raise
        lease.applied = False
        await self._until_seen(
            None,
            lambda: self._endpoints is None or lease.name not in self._endpoints.objects,
        )

    async def _owner(self) -> OwnerRef | None:
        """The owner of this process's durable objects: its pod's controller (found in the
        pods' watch), so that they live as long as the workload, not the pod; None outside a
        pod, for a pod that nothing controls, or one in another namespace than the objects (an
        owner must be beside its dependents): then nothing owns them."""
        if self.identity is None or self.identity.namespace not in (None, self.namespace):
            return None
        await self._watch_pods()
        return self._controller_seen()

    def _controller_seen(self) -> OwnerRef | None:
        """This process's pod's controller as the pods' watch shows it (None until it does)."""
        identity, pods = self.identity, self._pods
        if identity is None or identity.namespace not in (None, self.namespace) or pods is None:
            return None
        state = pods.objects.get(identity.pod.name)
        if state is None or state.uid != identity.pod.uid:
            return None
        return state.controller

    async def _refresh(self, lease: KubernetesLease) -> bool:
        if lease.gone:
            return False
        if not lease.applied:
            return True
        try:
            obj = await self.api.request("GET", object_path(self.namespace, lease.name))
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            log.warning("WorkerEndpoint %s was deleted while its pod runs", lease.name)
            self._release(lease)
            return False
        writer = (obj.get("spec") or {}).get("writer")
        if writer != self.writer:
            log.warning(
                "WorkerEndpoint %s is now written by another process (writer %s): two workers "
                "share one pod and container name; give each its own %s",
                lease.name,
                writer,
                ENV_CONTAINER,
            )
            self._release(lease)
            return False
        return True

    async def _revoke(self, lease: KubernetesLease) -> None:
        if lease.gone:
            return
        await self._delete_object(lease)
        self._release(lease)

    # ---- reading ------------------------------------------------------------------------

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        await self._view(prefix)
        return self._state.items(prefix), self._state.revision

    async def watch_prefix(
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncIterator[WatchEvent]:
        await self._view(prefix)
        async for event in self._state.watch(prefix, start_revision, self._watches):
            yield event

    async def _view(self, prefix: str) -> None:
        """Start (or widen) the reflectors so that they cover ``prefix``; wait for their lists."""
        if self._closed:
            raise StoreUnavailableError("kubernetes store handle is closed")
        wanted = selector_for_prefix(prefix)
        async with self._view_lock:
            self._start_pods()
            if self._selector is _ALL or (self._selector is not None and wanted != self._selector):
                # A second, different namespace widens the view to every object (never
                # narrows it: revisions and events of the mirror stay one sequence).
                selector = wanted if self._selector is _ALL else None
                if self._endpoints is not None:
                    await self._endpoints.stop()
                self._endpoints = Reflector(
                    self.api,
                    collection_path(self.namespace),
                    selector,
                    _endpoint_summary,
                    self._rebuild,
                )
                self._selector = selector
                self._endpoints.start()
            assert self._pods is not None and self._endpoints is not None
            reflectors: tuple[Reflector[Any], ...] = (self._pods, self._endpoints)
        await self._synced(reflectors)

    def _start_pods(self) -> None:
        if self._pods is None:
            self._pods = Reflector(
                self.api, pods_path(self.namespace), None, _pod_summary, self._rebuild
            )
            self._pods.start()

    async def _watch_pods(self) -> None:
        """Start the pods' watch (if no read did) and wait for its list."""
        if self._closed:
            raise StoreUnavailableError("kubernetes store handle is closed")
        async with self._view_lock:
            self._start_pods()
        assert self._pods is not None
        await self._synced((self._pods,))

    async def _synced(self, reflectors: tuple[Reflector[Any], ...]) -> None:
        try:
            async with asyncio.timeout(SYNC_TIMEOUT_S):
                for reflector in reflectors:
                    await reflector.synced.wait()
        except TimeoutError:
            reasons = "; ".join(str(r.last_error) for r in reflectors if r.last_error)
            raise StoreUnavailableError(
                f"{self.describe()}: no list from the API server in {SYNC_TIMEOUT_S:g}s"
                + (f" ({reasons})" if reasons else "")
            ) from None

    def _rebuild(self) -> None:
        """Mirror the records of every WorkerEndpoint whose pod is Ready, and of every durable
        one (a full diff: the mirror holds a few records per worker, and pods that change
        nothing skip this)."""
        endpoints, pods = self._endpoints, self._pods
        if endpoints is None or pods is None:
            return
        if endpoints.synced.is_set() and pods.synced.is_set():
            wanted: dict[str, bytes] = {}
            for name in sorted(endpoints.objects):
                endpoint = endpoints.objects[name]
                pod = endpoint.pod
                if pod is None:
                    wanted.update(endpoint.records)  # durable: it counts while it exists
                    continue
                seen = pods.objects.get(pod.name)
                if seen is not None and seen.uid == pod.uid and seen.ready:
                    wanted.update(endpoint.records)
            state = self._state
            for key in sorted(state.data.keys() - wanted.keys()):
                state.delete(key)
            for key in sorted(wanted):
                entry = state.data.get(key)
                if entry is None or entry.value != wanted[key]:
                    state.put(key, wanted[key], None)
            self._adopt_durable()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _adopt_durable(self) -> None:
        """Add this pod's controller to the owners of every durable object that another
        revision of its workload owns and it does not (one patch per object per
        ``ADOPT_INTERVAL_S``, in the background)."""
        mine, endpoints = self._controller_seen(), self._endpoints
        if mine is None or endpoints is None or self._closed:
            return
        now = asyncio.get_running_loop().time()
        for name, endpoint in endpoints.objects.items():
            if endpoint.pod is not None or any(ref.uid == mine.uid for ref in endpoint.owners):
                continue
            if not any(same_workload(ref, mine) for ref in endpoint.owners):
                continue  # another workload's record (or nobody's): not this reader's to keep
            if now - self._adopted_at.get(name, -ADOPT_INTERVAL_S) < ADOPT_INTERVAL_S:
                continue
            self._adopted_at[name] = now
            body = adoption_patch(owners_with(endpoint.owners, mine), endpoint.resource_version)
            task = asyncio.create_task(self._patch_owners(name, body))
            self._adopting.add(task)
            task.add_done_callback(self._adopting.discard)

    async def _patch_owners(self, name: str, body: dict[str, Any]) -> None:
        try:
            await self.api.request(
                "PATCH",
                object_path(self.namespace, name),
                body=body,
                content_type="application/merge-patch+json",
            )
        except KubeApiError as exc:
            if exc.status == 409:
                # It changed since this reader's view: decide again once the watch has brought
                # the new version (a change that adds this owner leaves nothing to do).
                await asyncio.sleep(CONFLICT_RETRY_S)
                self._adopted_at.pop(name, None)
                self._adopt_durable()
            elif exc.status != 404:  # 404: it is gone; 403: a Role without patch
                log.warning("could not add this pod's owner to WorkerEndpoint %s: %s", name, exc)
        except StoreUnavailableError as exc:
            log.debug("WorkerEndpoint %s keeps its owners for now: %s", name, exc)

    async def _until_seen(self, labels: dict[str, str] | None, seen: Callable[[], bool]) -> None:
        """After a write: wait until this handle's reflector shows it, if it selects it."""
        if self._endpoints is None:
            return
        if labels is not None and not selector_covers(self._endpoints.selector, labels):
            return
        try:
            async with asyncio.timeout(VISIBLE_TIMEOUT_S):
                while not seen():
                    await self._changed.wait()
        except TimeoutError:
            log.debug("a write was not seen by this handle's watch within %ss", VISIBLE_TIMEOUT_S)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._adopting):
            task.cancel()
        for reflector in (self._endpoints, self._pods):
            if reflector is not None:
                await reflector.stop()
        for watch in list(self._watches):
            watch.queue.put_nowait(None)
        await self.api.close()


def _holds(
    reflector: Reflector[Endpoint] | None, name: str, writer: str, records: dict[str, bytes]
) -> bool:
    if reflector is None:
        return True
    endpoint = reflector.objects.get(name)
    return endpoint is not None and endpoint.writer == writer and endpoint.records == records


def _endpoint_summary(obj: dict[str, Any]) -> Endpoint | None:
    try:
        return parse(obj)
    except ValueError as exc:
        log.warning("ignoring %s", exc)
        return None


def _pod_summary(obj: dict[str, Any]) -> PodState:
    uid, ready = pod_readiness(obj)
    return PodState(uid, ready, pod_controller(obj))
