"""An in-memory Kubernetes API for operator, CLI and runtime tests: kmock 0.8, extended.

Plain kmock 0.8 stores objects but gives them no server-side metadata, answers 200 on create,
has no PUT, no server-side-apply create, ignores label selectors, replays every object on each
watch, mixes spec and status, never garbage-collects and does not register CRDs
(docs/operator.md, "Tests and what they cannot prove").  ``ExtendedEmulator`` keeps kmock's HTTP
server, request parsing and discovery, and serves every resource request itself from one store:

* uid / creationTimestamp / resourceVersion (one cluster-wide counter) / generation (bumped when
  anything outside metadata and status changes) / namespace from the URL / generateName;
* 201 on create, 409 on duplicates and on a stale ``metadata.resourceVersion``;
* PATCH as merge (merge / strategic / apply bodies, JSON or YAML) or RFC 6902 JSON patch, PUT;
* server-side apply creates an absent object; a write that changes nothing bumps nothing and
  emits no watch event (as the real server does);
* the status subresource is isolated when the resource declares it;
* label selectors (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``) and the
  ``metadata.name`` field selector on list and watch;
* watches: every event once, in order, as it happens; resume from ``resourceVersion`` (no replay
  of older objects) and ``timeoutSeconds``; **410 Gone** (an ``ERROR`` event with the API
  server's ``Expired`` status) for a resume from before ``compact()`` or from before the
  ``events_kept`` (1000) last events, as a real server answers once etcd has compacted; ``end_watches()`` ends every
  open watch cleanly, as the server does when it restarts;
* background ownerReference garbage collection (cascading), by Kubernetes' rule: an object
  goes only when *all* its owners are gone, an owner being an object of the referenced kind and
  name (in the dependent's namespace) with the referenced uid; ``replace_before_collection``
  plays a collector that lags (an object replaced under its name before its dependents go);
* outages: while ``unavailable`` is true every request gets 503; a bearer token in
  ``unavailable_to`` gets 503 alone (one client cut off while others write);
* the service proxy (``GET .../services/<name>[:<port>]/proxy/<path>``): the request goes to a
  Ready pod the Service selects, at its target port (a named port resolved against the pod's
  containers), as the API server's proxy does; 503 when no pod is Ready or nothing listens;
* creating a CustomResourceDefinition registers its resource for discovery and requests;
* ``history_limit`` trims kmock's request log (its per-request cost grows with the log);
* ``writes`` records every mutating request (method, path) for "writes nothing" assertions,
  ``log`` every resource request (method, path and query, User-Agent).

Not emulated (see docs/operator.md): SSA field ownership and conflicts, strategic-merge list
semantics, defaulting, admission, pagination, BOOKMARK events and controllers.

``ClusterEmulator`` (at the end of this file) adds bearer-token authentication (ServiceAccount
tokens, and tokens granted a Role's rules directly), RBAC, an audit log and the EndpointSlice
controller, for proofs that run a real runtime or agent against the API
(docs/dynamo-on-kubernetes.md, docs/discovery.md, docs/snapshot.md).

``RunningCluster`` serves an emulator from its own thread; ``in_loop`` runs a call in that
thread's event loop (``end_watches`` and ``replace_before_collection`` must run there).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import inspect
import json
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import rendering

#: (group, plural) → discovery facts, for the built-in kinds drivetrain uses.
BUILTIN: dict[str, dict[str, Any]] = {
    "v1/configmaps": {"kind": "ConfigMap", "namespaced": True},
    "v1/services": {"kind": "Service", "namespaced": True, "subresources": {"status"}},
    "v1/persistentvolumeclaims": {
        "kind": "PersistentVolumeClaim",
        "namespaced": True,
        "subresources": {"status"},
    },
    "v1/namespaces": {"kind": "Namespace", "namespaced": False},
    "v1/events": {"kind": "Event", "namespaced": True},
    "v1/pods": {"kind": "Pod", "namespaced": True, "subresources": {"status"}},
    # The pods' RBAC and the MPI SSH Secret the operator writes (render/rbac.py, kube/).
    "v1/serviceaccounts": {"kind": "ServiceAccount", "namespaced": True},
    "v1/secrets": {"kind": "Secret", "namespaced": True},
    "rbac.authorization.k8s.io/v1/roles": {"kind": "Role", "namespaced": True},
    "rbac.authorization.k8s.io/v1/rolebindings": {"kind": "RoleBinding", "namespaced": True},
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True, "subresources": {"status"}},
    # A Deployment's revisions: the owners of a frontend's pods (runtime/discovery/kubernetes.py).
    "apps/v1/replicasets": {"kind": "ReplicaSet", "namespaced": True, "subresources": {"status"}},
    "batch/v1/jobs": {"kind": "Job", "namespaced": True, "subresources": {"status"}},
    "apiextensions.k8s.io/v1/customresourcedefinitions": {
        "kind": "CustomResourceDefinition",
        "namespaced": False,
        "subresources": {"status"},
    },
}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
_META_ONLY = {"metadata", "status", "apiVersion", "kind"}
#: The token of the emulator's own kubeconfig (``RunningCluster.kubeconfig``): a cluster admin
#: where tokens are checked (``ClusterEmulator``).
ADMIN_TOKEN = "emulator"
#: Watch events kept for resuming (``events_kept``); a resume from before them is answered 410
#: Gone, as a real server answers once etcd has compacted.
EVENTS_KEPT = 1000

Key = tuple[str, str, str | None, str]  # group, plural, namespace, name
#: One RBAC PolicyRule: apiGroups / resources / verbs (/ resourceNames).
Rule = dict[str, list[str]]
T = TypeVar("T")


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge, ``None`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 (add, replace, remove, test): enough for kopf's finalizer patches."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        kind = op["op"]
        if kind == "test":
            current = node[int(last)] if isinstance(node, list) else node.get(last)
            if current != op["value"]:
                raise ApiError(422, "Invalid", f"test failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(node, list):
                idx = len(node) if last == "-" else int(last)
                if kind == "add":
                    node.insert(idx, op["value"])
                else:
                    node[idx] = op["value"]
            else:
                node[last] = op["value"]
        elif kind == "remove":
            if isinstance(node, list):
                del node[int(last)]
            else:
                node.pop(last, None)
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch op {kind!r}")
    return out


_REQ = re.compile(
    r"^\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)


def _split_selector(selector: str) -> Iterator[str]:
    depth, start = 0, 0
    for i, ch in enumerate(selector):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            yield selector[start:i]
            start = i + 1
    yield selector[start:]


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for requirement in filter(str.strip, _split_selector(selector)):
        m = _REQ.match(requirement)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement {requirement!r}")
        neg, key, op, value, set_op, values = m.groups()
        if op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        elif set_op:
            choices = {v.strip() for v in values.split(",")}
            ok = labels.get(key) in choices if set_op == "in" else labels.get(key) not in choices
        else:
            ok = (key in labels) != bool(neg)
        if not ok:
            return False
    return True


def _json_response(obj: Any, status: int) -> aiohttp.web.Response:
    # Exactly "application/json" as the API server sends it (lightkube only parses a Status
    # from an error response with that exact content type).
    return aiohttp.web.Response(
        body=json.dumps(obj).encode(), status=status, content_type="application/json"
    )


def bearer_token(raw: aiohttp.web.BaseRequest) -> str | None:
    """The request's ``Authorization: Bearer`` token, or None."""
    scheme, _, token = raw.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class ApiError(Exception):
    """A refusal, answered with the API server's ``Status`` body."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
        }
        if self.details:
            body["details"] = self.details
        return body

    def response(self) -> aiohttp.web.Response:
        return _json_response(self.status(), self.code)


def _expired(since: int, oldest: int) -> dict[str, Any]:
    """The watch event the API server sends for a resume from compacted history (410 Gone)."""
    gone = ApiError(410, "Expired", f"too old resource version: {since} ({oldest})")
    return {"type": "ERROR", "object": gone.status()}


@attrs.define(kw_only=True)
class ExtendedEmulator(kmock.KubernetesEmulator):
    """A kmock emulator with the server-side behaviour operators rely on (see module doc)."""

    history_limit: int | None = None
    events_kept: int = EVENTS_KEPT
    #: An outage: every request is answered 503 while this is true ...
    unavailable: bool = False
    #: ... or only the requests with one of these bearer tokens (one client cut off).
    unavailable_to: set[str] = attrs.field(factory=set)
    store: dict[Key, dict[str, Any]] = attrs.field(factory=dict, init=False)
    writes: list[tuple[str, str]] = attrs.field(factory=list, init=False)
    #: Every resource request served: (method, path?query, User-Agent).
    log: list[tuple[str, str, str]] = attrs.field(factory=list, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _events: list[tuple[int, str, str, dict[str, Any]]] = attrs.field(factory=list, init=False)
    _changed: asyncio.Condition | None = attrs.field(default=None, init=False)
    _info: dict[tuple[str, str], dict[str, Any]] = attrs.field(factory=dict, init=False)
    #: A watch may not resume from before this resourceVersion (``compact``).
    _compacted: int = attrs.field(default=0, init=False)
    _watch_tasks: set[asyncio.Task[Any]] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for path, info in BUILTIN.items():
            self.declare(path, **info)

    # ----------------------------------------------------------------- resource registry

    def declare(
        self,
        path: str,
        *,
        kind: str,
        namespaced: bool,
        subresources: set[str] | None = None,
        short_names: set[str] | None = None,
    ) -> None:
        """Serve ``group/version/plural`` (``v1/plural`` for the core group)."""
        *group_parts, version, plural = path.split("/")
        group = "/".join(group_parts)
        self.resources[path] = kmock.ResourceInfo(
            kind=kind,
            namespaced=namespaced,
            singular=kind.lower(),
            verbs=VERBS,
            shortnames=short_names or set(),
            subresources=subresources or set(),
        )
        self._info[group, plural] = {
            "kind": kind,
            "namespaced": namespaced,
            "status": "status" in (subresources or set()),
            "version": version,
        }

    def register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            self.declare(
                f"{spec['group']}/{version['name']}/{names['plural']}",
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                subresources=set(version.get("subresources", {})),
                short_names=set(names.get("shortNames", [])),
            )

    # ----------------------------------------------------------------- what a test does to it

    def compact(self) -> None:
        """Forget the event history: a watch resuming from before now gets 410 Gone."""
        self._compacted = self._rv

    def end_watches(self) -> None:
        """End every open watch cleanly, as the API server does when it restarts or a watch's
        time is up.  Runs in the emulator's event loop (``in_loop``)."""
        for task in list(self._watch_tasks):
            task.cancel()

    async def replace_before_collection(self, group: str, plural: str, ns: str, name: str) -> str:
        """Delete the object and create it again under its name with a new uid, before the
        garbage collector has run (its dependents are still there), as a StatefulSet's pod
        comes back.  Returns the new uid.  Runs in the emulator's event loop (``in_loop``)."""
        assert self._changed is not None
        async with self._changed:
            key = (group, plural, ns, name)
            old = self.store.pop(key)
            self._bump(old)
            self._emit("DELETED", group, plural, old)
            new = copy.deepcopy(old)
            new["metadata"]["uid"] = str(uuid.uuid4())
            self._bump(new)
            self.store[key] = new
            self._emit("ADDED", group, plural, new)
            return str(new["metadata"]["uid"])

    # ----------------------------------------------------------------- HTTP entry

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if self.history_limit is not None and len(self._requests) > self.history_limit:
            del self._requests[: -self.history_limit]
        if self._changed is None:
            self._changed = asyncio.Condition()
        raw = request._raw_request
        if self.unavailable or (
            raw is not None and self.unavailable_to and bearer_token(raw) in self.unavailable_to
        ):
            return ApiError(503, "ServiceUnavailable", "the emulator is down on purpose").response()
        return await self._respond(request)

    async def _respond(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """One request the server is up for (``ClusterEmulator`` authenticates here first)."""
        if request.resource is None or not request.resource.plural:
            return await super()._handle(request)  # discovery: kmock's own
        res = request.resource
        info = self._info.get((res.group or "", res.plural or ""))
        if info is None:
            return ApiError(404, "NotFound", f"the server could not find {res.plural}").response()
        try:
            return await self._serve(request, res.group or "", res.plural or "", info)
        except ApiError as exc:
            return exc.response()

    async def _serve(
        self, request: rendering.Request, group: str, plural: str, info: dict[str, Any]
    ) -> aiohttp.web.StreamResponse:
        method = str(request.method.value if hasattr(request.method, "value") else request.method)
        method = method.upper()
        ns = request.namespace
        name = request.name
        raw = request._raw_request
        assert raw is not None
        self.log.append((method, str(raw.rel_url), raw.headers.get("User-Agent", "")))
        if (group, plural) == ("", "services") and (request.subresource or "").startswith("proxy"):
            return await self._proxy(request, method)
        if method == "GET" and request.params.get("watch") in ("true", "True", "1"):
            return await self._watch(raw, request, group, plural)
        if method == "GET":
            if name is None:
                return self._json(self._list(request, group, plural))
            return self._json(self._get((group, plural, ns, name)))
        self.writes.append((method, str(request.url.path)))
        body = self._body(request)
        async with self._changed:  # type: ignore[union-attr]
            if method == "POST":
                obj = self._create(group, plural, ns, info, body)
                return self._json(obj, status=201)
            assert name is not None, "collection writes other than POST are not served"
            key = (group, plural, ns, name)
            if method == "DELETE":
                return self._json(self._delete(key))
            if method == "PUT":
                return self._json(self._write(key, info, body, request.subresource, replace=True))
            if method == "PATCH":
                ctype = request.headers.get("Content-Type", "")
                if "apply-patch" in ctype and key not in self.store:
                    body = {**body, "metadata": {**body.get("metadata", {}), "name": name}}
                    return self._json(self._create(group, plural, ns, info, body), status=201)
                return self._json(self._write(key, info, body, request.subresource))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not served")

    @staticmethod
    def _body(request: rendering.Request) -> Any:
        if isinstance(request.data, (dict, list)):
            return request.data
        if request.text:
            return yaml.safe_load(request.text)  # SSA bodies may be YAML
        return {}

    @staticmethod
    def _json(obj: Any, status: int = 200) -> aiohttp.web.Response:
        return _json_response(obj, status)

    # ----------------------------------------------------------------- reads

    def _get(self, key: Key) -> dict[str, Any]:
        if key not in self.store:
            raise ApiError(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        return self.store[key]

    @staticmethod
    def _selected(request: rendering.Request, obj: dict[str, Any]) -> bool:
        """Whether a list or watch request selects the object: its namespace and name, the
        ``metadata.name`` field selector and the label selector."""
        meta = obj["metadata"]
        field = request.params.get("fieldSelector", "")
        selector = request.params.get("labelSelector", "")
        if request.namespace is not None and meta.get("namespace") != request.namespace:
            return False
        if request.name is not None and meta.get("name") != request.name:
            return False
        if field.startswith("metadata.name=") and meta.get("name") != field.split("=", 1)[1]:
            return False
        return not selector or selector_matches(selector, meta.get("labels") or {})

    def _matching(self, request: rendering.Request, group: str, plural: str) -> list[dict]:
        return [
            obj
            for (g, p, _, _), obj in self.store.items()
            if (g, p) == (group, plural) and self._selected(request, obj)
        ]

    def _list(self, request: rendering.Request, group: str, plural: str) -> dict[str, Any]:
        info = self._info[group, plural]
        api_version = f"{group}/{info['version']}" if group else info["version"]
        return {
            "apiVersion": api_version,
            "kind": f"{info['kind']}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": self._matching(request, group, plural),
        }

    def _kept_since(self) -> int:
        """The oldest resourceVersion the kept events resume from (older ones were dropped)."""
        return self._events[0][0] - 1 if len(self._events) >= self.events_kept else 0

    async def _watch(
        self, raw: aiohttp.web.BaseRequest, request: rendering.Request, group: str, plural: str
    ) -> aiohttp.web.StreamResponse:
        """Every event once, in order, as it happens; 410 Gone for a resume from history that is
        no longer kept.

        The events are taken and the cursor moved under the lock the writers emit under, and the
        wait for the next change starts under that lock too: an event emitted while the watch
        writes (a write waits while the client does not read) is taken on the next round, not
        skipped by a cursor moved past it, nor held back until some later change.  The wait
        uses ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` can swallow a
        cancellation that lands as the condition fires, and the watch would then outlive
        ``end_watches`` and the server's shutdown.
        """
        since = request.params.get("resourceVersion")
        timeout = float(request.params.get("timeoutSeconds") or 0) or None
        response = aiohttp.web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(raw)
        assert self._changed is not None
        async with self._changed:
            if since and since != "0":
                cursor, pending = int(since), []
                floor = max(self._compacted, self._kept_since())
            else:
                cursor, floor = self._rv, 0
                pending = [
                    {"type": "ADDED", "object": obj}
                    for obj in self._matching(request, group, plural)
                ]
        task = asyncio.current_task()
        assert task is not None
        self._watch_tasks.add(task)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        try:
            while cursor >= floor:
                for event in pending:
                    await response.write(json.dumps(event).encode() + b"\n")
                async with self._changed:
                    while True:
                        # A slow watch's events may have been dropped before it took them.
                        floor = self._kept_since()
                        pending = [
                            event
                            for rv, g, p, event in self._events
                            if rv > cursor
                            and (g, p) == (group, plural)
                            and self._selected(request, event["object"])
                        ]
                        remaining = deadline - loop.time() if deadline else None
                        if cursor < floor or pending or (remaining is not None and remaining <= 0):
                            break
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(remaining):
                                await self._changed.wait()
                    if cursor >= floor:
                        cursor = self._rv
                if not pending:
                    break
            if cursor < floor:
                await response.write(json.dumps(_expired(cursor, floor)).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            return response  # the client went, or end_watches: the server ends it as it is
        finally:
            self._watch_tasks.discard(task)
        await response.write_eof()
        return response

    # ----------------------------------------------------------------- the service proxy

    async def _proxy(self, request: rendering.Request, method: str) -> aiohttp.web.StreamResponse:
        """The API server's service proxy: to a Ready endpoint of the Service, or 503."""
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} through the proxy is not served")
        ns = request.namespace
        name, _, wanted = (request.name or "").partition(":")
        service = self._get(("", "services", ns, name))
        spec = service.get("spec") or {}
        ports = spec.get("ports") or []
        port = next(
            (
                p
                for p in ports
                if not wanted or str(p.get("port")) == wanted or p.get("name") == wanted
            ),
            None,
        )
        if port is None:
            raise ApiError(
                503, "ServiceUnavailable", f'no service port "{wanted}" on service "{name}"'
            )
        target = port.get("targetPort", port["port"])
        endpoints = []
        for (g, p, pod_ns, _), pod in self.store.items():
            status = pod.get("status") or {}
            labels = pod["metadata"].get("labels") or {}
            if (g, p, pod_ns) != ("", "pods", ns) or not spec.get("selector"):
                continue
            if any(labels.get(k) != v for k, v in spec["selector"].items()):
                continue
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            if not ready or not status.get("podIP") or pod["metadata"].get("deletionTimestamp"):
                continue
            number = target
            if isinstance(target, str):
                named = {
                    cp.get("name"): cp.get("containerPort")
                    for c in pod["spec"].get("containers", [])
                    for cp in c.get("ports", [])
                }
                number = named.get(target)
            if number is not None:
                endpoints.append((status["podIP"], int(number)))
        if not endpoints:
            raise ApiError(
                503, "ServiceUnavailable", f'no endpoints available for service "{name}"'
            )
        host, number = sorted(endpoints)[0]
        rest = (request.subresource or "").partition("/")[2]
        url = f"http://{host}:{number}/{rest}"
        query = dict(request.params)
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, params=query) as reply,
            ):
                body = await reply.read()
                ctype = reply.headers.get("Content-Type", "application/octet-stream")
                return aiohttp.web.Response(
                    body=body, status=reply.status, headers={"Content-Type": ctype}
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(
                503, "ServiceUnavailable", f"error trying to reach service: {exc}"
            ) from None

    # ----------------------------------------------------------------- writes

    def _bump(self, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)

    def _emit(self, kind: str, group: str, plural: str, obj: dict[str, Any]) -> None:
        self._events.append((self._rv, group, plural, {"type": kind, "object": obj}))
        del self._events[: -self.events_kept]  # a resume from before them gets 410 Gone
        assert self._changed is not None
        self._changed.notify_all()

    def _create(
        self, group: str, plural: str, ns: str | None, info: dict[str, Any], body: dict[str, Any]
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        namespace = (ns or meta.get("namespace")) if info["namespaced"] else None
        if namespace:
            meta["namespace"] = namespace
        key = (group, plural, namespace, meta["name"])
        if key in self.store:
            raise ApiError(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists')
        meta.pop("resourceVersion", None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        self._bump(obj)
        self.store[key] = obj
        if plural == "customresourcedefinitions":
            self.register_crd(obj)
        self._emit("ADDED", group, plural, obj)
        # The real collector also removes objects created with an owner that no longer exists.
        self._collect_garbage()
        return obj

    def _write(
        self,
        key: Key,
        info: dict[str, Any],
        body: Any,
        subresource: str | None,
        replace: bool = False,
    ) -> dict[str, Any]:
        live = self._get(key)
        if isinstance(body, dict):
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != live["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified; please retry")
        if isinstance(body, list):
            new = json_patch(live, body)
        elif replace:
            new = {**copy.deepcopy(body), "metadata": {**live["metadata"], **body["metadata"]}}
        else:
            new = merge(live, body)
        if info["status"]:
            # The status subresource writes only status; the main resource never writes it.
            if subresource == "status":
                new = {**live, "status": new.get("status")}
            else:
                new = {k: v for k, v in new.items() if k != "status"}
                if "status" in live:
                    new["status"] = live["status"]
            if new.get("status") is None:
                new.pop("status", None)
        for field in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            if field in live["metadata"]:
                new["metadata"][field] = live["metadata"][field]
        if new == live:
            return live  # a no-op write changes nothing and tells no watcher
        spec_of = {k: v for k, v in new.items() if k not in _META_ONLY}
        if spec_of != {k: v for k, v in live.items() if k not in _META_ONLY}:
            new["metadata"]["generation"] = live["metadata"].get("generation", 1) + 1
        self._bump(new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.store[key]
            self._emit("DELETED", key[0], key[1], new)
            self._collect_garbage()
            return new
        self.store[key] = new
        self._emit("MODIFIED", key[0], key[1], new)
        return new

    def _delete(self, key: Key) -> dict[str, Any]:
        live = self._get(key)
        if live["metadata"].get("finalizers"):
            if not live["metadata"].get("deletionTimestamp"):
                live = copy.deepcopy(live)
                live["metadata"]["deletionTimestamp"] = _now()
                self._bump(live)
                self.store[key] = live
                self._emit("MODIFIED", key[0], key[1], live)
            return live
        del self.store[key]
        self._bump(live)
        self._emit("DELETED", key[0], key[1], live)
        self._collect_garbage()
        return live

    def _owner_present(self, ref: dict[str, Any], namespace: str | None) -> bool:
        """Whether the object a reference names exists: the referenced kind and name, in the
        dependent's namespace (or cluster-scoped), with the referenced uid (the garbage
        collector's lookup; a same-named object with another uid is a different object)."""
        for (group, plural, ns, name), obj in self.store.items():
            info = self._info.get((group, plural), {})
            if (
                name == ref.get("name")
                and info.get("kind") == ref.get("kind")
                and ns in (namespace, None)
                and obj["metadata"]["uid"] == ref.get("uid")
            ):
                return True
        return False

    def _collect_garbage(self) -> None:
        """Background cascading deletion: an object goes only when *all* its owners are gone
        (Kubernetes' rule); an owner being deleted (``deletionTimestamp``) is still there."""
        while True:
            orphans = [
                key
                for key, obj in self.store.items()
                if (refs := obj["metadata"].get("ownerReferences"))
                and not any(self._owner_present(ref, key[2]) for ref in refs)
            ]
            if not orphans:
                return
            for key in orphans:
                obj = self.store.pop(key)
                self._bump(obj)
                self._emit("DELETED", key[0], key[1], obj)


class RunningCluster:
    """The emulator served on a loopback port from its own thread and event loop."""

    def __init__(self, emulator: ExtendedEmulator) -> None:
        self.emulator = emulator
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="kube-emulator")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.emulator, kmock.Server(self.emulator) as server:
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()
            # The HTTP server's shutdown waits (up to a minute) for every request in progress,
            # and a watch whose client is still there never ends by itself.
            self.emulator.end_watches()

    def start(self) -> RunningCluster:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator did not start")
        return self

    def __enter__(self) -> RunningCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        if self._thread.is_alive():
            raise RuntimeError("the emulator did not stop within 10 s")

    def kubeconfig(self, token: str = ADMIN_TOKEN, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig for this emulator: the admin's, or ``token``'s."""
        return token_kubeconfig(self.url, token, namespace)


def in_loop(running: RunningCluster, fn: Callable[[], T | Awaitable[T]]) -> T:
    """Run ``fn()`` (awaited when it returns an awaitable) in the emulator's event loop thread
    and return its result."""

    async def call() -> T:
        result = fn()
        return await result if inspect.isawaitable(result) else result  # type: ignore[return-value]

    return asyncio.run_coroutine_threadsafe(call(), running._loop).result(10)


# =================================================================================================
# What a cluster adds around a pod's own API calls: authentication, RBAC, an audit log and the
# EndpointSlice controller.  Proofs that run a real runtime against the emulator (for example
# Dynamo's own, tests/dynamo_runtime/) need all four: the runtime authenticates with its
# ServiceAccount's token, may do only what its Role grants, and finds its peers through the
# EndpointSlices the controller derives from Services and Pods.
# =================================================================================================

#: Resources a runtime proof needs beyond BUILTIN (declared by ClusterEmulator only).
CLUSTER_BUILTIN: dict[str, dict[str, Any]] = {
    "v1/endpoints": {"kind": "Endpoints", "namespaced": True},
    "discovery.k8s.io/v1/endpointslices": {"kind": "EndpointSlice", "namespaced": True},
    "rbac.authorization.k8s.io/v1/clusterroles": {"kind": "ClusterRole", "namespaced": False},
    "rbac.authorization.k8s.io/v1/clusterrolebindings": {
        "kind": "ClusterRoleBinding",
        "namespaced": False,
    },
}

ADMIN_USER = "kubernetes-admin"
#: The EndpointSlice controller's own labels (kube-controller-manager's endpointslice controller).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"


@attrs.frozen
class Identity:
    """An authenticated user, as the API server's authenticators produce it."""

    name: str
    groups: tuple[str, ...] = ()
    #: The pod a bound ServiceAccount token was issued for (the user's ``extra`` field
    #: ``authentication.kubernetes.io/pod-name`` on a real API server).
    pod: str | None = None

    @classmethod
    def service_account(cls, namespace: str, name: str, pod: str | None = None) -> Identity:
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
        return cls(
            f"system:serviceaccount:{namespace}:{name}", (*groups, "system:authenticated"), pod
        )


@attrs.frozen
class Attributes:
    """What one request asks to do, in the authorizer's terms (verb × resource × namespace)."""

    verb: str
    group: str
    resource: str
    subresource: str | None
    namespace: str | None
    name: str | None

    def describe(self, user: str) -> str:
        """The API server's message for a denied request, word for word."""
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        qualified = f"{self.resource}.{self.group}" if self.group else self.resource
        subject = f'{qualified} "{self.name}"' if self.name else qualified
        where = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return (
            f'{subject} is forbidden: User "{user}" cannot {self.verb} resource "{resource}" '
            f'in API group "{self.group}" {where}'
        )


@attrs.frozen
class AuditEvent:
    """One request as the API server's audit log records it (the response code included)."""

    user: str
    pod: str | None
    verb: str
    method: str
    path: str
    group: str
    resource: str
    namespace: str | None
    name: str | None
    code: int
    subresource: str | None = None

    @property
    def rules(self) -> set[tuple[str, str, str]]:
        """(API group, resource, verb) of each RBAC rule this request needed, the resource as a
        rule names it (``pods/status`` for a subresource): a server-side apply that created its
        object (PATCH answered 201) needed ``create`` too."""
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        needed = {(self.group, resource, self.verb)}
        if self.method == "PATCH" and self.code == 201:
            needed.add((self.group, resource, "create"))
        return needed


def request_verb(method: str, named: bool, watch: bool) -> str:
    """The authorizer's verb for an HTTP method (Kubernetes' RequestInfoFactory)."""
    if watch:
        return "watch"
    return {
        "GET": "get" if named else "list",
        "HEAD": "get" if named else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if named else "deletecollection",
    }.get(method, method.lower())


def rule_allows(rule: dict[str, Any], attrs_: Attributes) -> bool:
    """One PolicyRule against a resource request (RBAC's RuleAllows)."""

    def has(values: list[str] | None, wanted: str) -> bool:
        return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]

    resources = rule.get("resources") or []
    if attrs_.subresource:
        wanted = f"{attrs_.resource}/{attrs_.subresource}"
        resource_ok = (
            "*" in resources or wanted in resources or f"*/{attrs_.subresource}" in resources
        )
    else:
        resource_ok = has(resources, attrs_.resource)
    names = rule.get("resourceNames") or []
    return (
        has(rule.get("verbs"), attrs_.verb)
        and has(rule.get("apiGroups"), attrs_.group)
        and resource_ok
        and (not names or (attrs_.name is not None and attrs_.name in names))
    )


def subject_matches(subject: dict[str, Any], binding_ns: str | None, who: Identity) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        # A ServiceAccount subject without a namespace means the binding's own (RBAC's appliesTo).
        ns = subject.get("namespace") or binding_ns
        return who.name == f"system:serviceaccount:{ns}:{subject.get('name')}"
    if kind == "User":
        return who.name == subject.get("name")
    if kind == "Group":
        return subject.get("name") in who.groups
    return False


def endpoint_slice_for(service: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The EndpointSlice the EndpointSlice controller keeps for one selector Service.

    As kube-controller-manager does it: the Service's labels copied onto the slice plus
    ``kubernetes.io/service-name`` and ``managed-by``; one endpoint per selected pod that has an
    IP and is not finished, ``ready`` = the pod's Ready condition (always true with
    ``publishNotReadyAddresses``) and not terminating; a named ``targetPort`` resolved against
    the pod's container ports (skipped where the pod has no such port).  One slice per Service:
    the real controller splits by port set and at 100 endpoints, which no proof here reaches.
    """
    meta = service["metadata"]
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    endpoints, ports = [], []
    for pod in pods:
        status = pod.get("status") or {}
        if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        pod_meta = pod["metadata"]
        terminating = bool(pod_meta.get("deletionTimestamp"))
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        endpoints.append(
            {
                "addresses": [status["podIP"]],
                "conditions": {
                    "ready": (ready or publish_not_ready) and not terminating,
                    "serving": ready or publish_not_ready,
                    "terminating": terminating,
                },
                "targetRef": {
                    "kind": "Pod",
                    "namespace": pod_meta["namespace"],
                    "name": pod_meta["name"],
                    "uid": pod_meta["uid"],
                },
                **({"nodeName": pod["spec"]["nodeName"]} if pod["spec"].get("nodeName") else {}),
            }
        )
    container_ports = {
        p["name"]: p["containerPort"]
        for pod in pods[:1]
        for c in pod["spec"].get("containers", [])
        for p in c.get("ports", [])
        if p.get("name")
    }
    for port in spec.get("ports") or []:
        target = port.get("targetPort", port["port"])
        number = container_ports.get(target) if isinstance(target, str) else target
        if number is None:
            continue
        ports.append(
            {
                "name": port.get("name", ""),
                "port": number,
                "protocol": port.get("protocol", "TCP"),
                **({"appProtocol": port["appProtocol"]} if port.get("appProtocol") else {}),
            }
        )
    labels = {
        k: v
        for k, v in (meta.get("labels") or {}).items()
        if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)
    }
    labels.update({SERVICE_NAME_LABEL: meta["name"], MANAGED_BY_LABEL: MANAGED_BY})
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            # The real controller uses generateName "<service>-"; a fixed suffix keeps one slice.
            "name": f"{meta['name']}-{uuid.uuid5(uuid.NAMESPACE_DNS, meta['name']).hex[:5]}",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


@attrs.define(kw_only=True)
class ClusterEmulator(ExtendedEmulator):
    """The extended emulator plus authentication, RBAC, an audit log and EndpointSlices.

    * **Authentication**: every request must carry ``Authorization: Bearer <token>``; the
      emulator's own token (``ADMIN_TOKEN``) is a cluster admin, ``service_account_token``
      mints one for a ServiceAccount that exists (and stops working when it is deleted, as a
      bound token does), ``grant`` makes one for a user of that name.  Anything else is
      answered 401 with a ``Status``.
    * **RBAC** (``enforce_rbac``): a request is allowed only if a RoleBinding in the request's
      namespace, or a ClusterRoleBinding, binds its user (as ServiceAccount, User or Group
      subject) to a Role/ClusterRole with a rule matching verb × API group × resource
      (× subresource, × resourceNames), or ``grant`` gave its token such a rule in that
      namespace; else 403 with the API server's ``Status`` and message.  Server-side apply
      that creates an object needs ``create`` as well as ``patch``, as the API server checks.
      Discovery (``/api``, ``/apis``, ``/version``) is open to every authenticated user, as the
      default ``system:discovery`` binding makes it.
    * **Audit**: ``audit`` records every request (user, verb, path, response code; a watch at
      its start); ``used`` and ``denied`` read it.  A request refused by an outage
      (``unavailable``) never reached the server and is not audited.
    * **EndpointSlice controller** (``endpointslice_controller``): after every write, each
      Service with a selector gets the slice ``endpoint_slice_for`` derives from its pods.

    Not emulated: aggregated ClusterRoles, ``escalate``/``bind`` checks on Role writes,
    impersonation, non-resource URL rules, admission (OwnerReferencesPermissionEnforcement).
    """

    enforce_rbac: bool = True
    endpointslice_controller: bool = True
    audit: list[AuditEvent] = attrs.field(factory=list, init=False)
    _tokens: dict[str, tuple[Identity, tuple[str, str] | None]] = attrs.field(
        factory=dict, init=False
    )
    #: user → (namespace, rules) that ``grant`` gave it
    _grants: dict[str, tuple[str, list[Rule]]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for path, info in CLUSTER_BUILTIN.items():
            self.declare(path, **info)
        self._tokens[ADMIN_TOKEN] = (Identity(ADMIN_USER, ("system:masters",)), None)

    # ----------------------------------------------------------------- authentication

    def service_account_token(self, namespace: str, name: str, pod: str | None = None) -> str:
        """A token for an existing ServiceAccount, bound to ``pod`` if given (what the kubelet
        projects into a pod); the audit log then names the pod."""
        if ("", "serviceaccounts", namespace, name) not in self.store:
            raise LookupError(f'serviceaccount "{name}" not found')
        token = f"sa-{namespace}-{name}-{uuid.uuid4().hex[:12]}"
        self._tokens[token] = (Identity.service_account(namespace, name, pod), (namespace, name))
        return token

    def grant(self, token: str, namespace: str, rules: list[Rule]) -> None:
        """Make ``token`` the token of a user of that name who holds ``rules`` in
        ``namespace`` (and nothing else), as a Role bound to that user there would give them;
        a second grant to the same token replaces the first.  Writes no object, so a test can
        grant from its own thread while the emulator runs."""
        self._tokens[token] = (Identity(token, ("system:authenticated",)), None)
        self._grants[token] = (namespace, rules)

    def _authenticate(self, raw: aiohttp.web.BaseRequest) -> Identity | None:
        entry = self._tokens.get(bearer_token(raw) or "")
        if entry is None:
            return None
        who, account = entry
        if account and ("", "serviceaccounts", account[0], account[1]) not in self.store:
            return None  # a bound token dies with its ServiceAccount
        return who

    # ----------------------------------------------------------------- authorization

    def authorize(self, who: Identity, request: Attributes) -> bool:
        if "system:masters" in who.groups:
            return True
        namespace, rules = self._grants.get(who.name, (None, []))
        if namespace == request.namespace and any(rule_allows(r, request) for r in rules):
            return True
        bindings = [
            (obj, key[2])
            for key, obj in self.store.items()
            if (key[0], key[1]) == ("rbac.authorization.k8s.io", "clusterrolebindings")
            or (
                (key[0], key[1]) == ("rbac.authorization.k8s.io", "rolebindings")
                and request.namespace is not None
                and key[2] == request.namespace
            )
        ]
        for binding, ns in bindings:
            if not any(subject_matches(s, ns, who) for s in binding.get("subjects") or []):
                continue
            ref = binding.get("roleRef") or {}
            role_key: Key = (
                ("rbac.authorization.k8s.io", "roles", ns, ref.get("name", ""))
                if ref.get("kind") == "Role"
                else ("rbac.authorization.k8s.io", "clusterroles", None, ref.get("name", ""))
            )
            role = self.store.get(role_key) or {}
            if any(rule_allows(rule, request) for rule in role.get("rules") or []):
                return True
        return False

    # ----------------------------------------------------------------- what the audit log says

    @property
    def used(self) -> dict[str, set[tuple[str, str, str]]]:
        """By user: (API group, resource, verb) of every rule a request of theirs was allowed
        by (whatever the server then answered), as ``AuditEvent.rules`` names them."""
        out: dict[str, set[tuple[str, str, str]]] = {}
        for event in list(self.audit):
            if event.code not in (401, 403):
                out.setdefault(event.user, set()).update(event.rules)
        return out

    @property
    def denied(self) -> list[AuditEvent]:
        """Every request RBAC refused (403)."""
        return [event for event in list(self.audit) if event.code == 403]

    # ----------------------------------------------------------------- HTTP entry

    async def _respond(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        who = self._authenticate(raw)
        res = request.resource
        attributes: Attributes | None = None
        if res is not None and res.plural:
            watch = request.params.get("watch") in ("true", "True", "1")
            attributes = Attributes(
                verb=request_verb(raw.method, request.name is not None, watch),
                group=res.group or "",
                resource=res.plural,
                # `services/<name>/proxy/<path>`: the subresource is "proxy", the rest its path.
                subresource=(request.subresource or "").split("/")[0] or None,
                namespace=request.namespace,
                name=request.name,
            )

        def record(code: int, asked: Attributes | None = attributes) -> None:
            self.audit.append(
                AuditEvent(
                    user=who.name if who else "",
                    pod=who.pod if who else None,
                    # a non-resource request's verb is its method
                    verb=asked.verb if asked else raw.method.lower(),
                    method=raw.method,
                    path=str(raw.rel_url),
                    group=asked.group if asked else "",
                    resource=asked.resource if asked else "",
                    namespace=asked.namespace if asked else None,
                    name=asked.name if asked else None,
                    subresource=asked.subresource if asked else None,
                    code=code,
                )
            )

        if who is None:
            record(401)
            return ApiError(401, "Unauthorized", "Unauthorized").response()
        if attributes is None:  # discovery: open to every authenticated user
            response = await super()._respond(request)
            record(response.status)
            return response
        if self.enforce_rbac:
            denied = self._denied(who, attributes, raw)
            if denied is not None:
                record(403, denied)
                details = {"group": denied.group, "kind": denied.resource}
                if denied.name:
                    details["name"] = denied.name
                return ApiError(403, "Forbidden", denied.describe(who.name), details).response()
        if attributes.verb == "watch":
            record(200)  # a watch is audited when it starts
            return await super()._respond(request)
        response = await super()._respond(request)
        record(response.status)
        if self.endpointslice_controller and raw.method != "GET" and response.status < 300:
            await self._reconcile_endpoint_slices()
        return response

    def _denied(
        self, who: Identity, attributes: Attributes, raw: aiohttp.web.BaseRequest
    ) -> Attributes | None:
        """The first check a request fails, or None when it is allowed."""
        if not self.authorize(who, attributes):
            return attributes
        creates = (
            raw.method == "PATCH"
            and "apply-patch" in raw.headers.get("Content-Type", "")
            and not attributes.subresource
            and (attributes.group, attributes.resource, attributes.namespace, attributes.name)
            not in self.store
        )
        if creates:
            # Server-side apply of an absent object creates it: the API server authorizes that
            # as "create" too (the patch handler's create validation).
            as_create = attrs.evolve(attributes, verb="create")
            if not self.authorize(who, as_create):
                return as_create
        return None

    # ----------------------------------------------------------------- EndpointSlice controller

    async def _reconcile_endpoint_slices(self) -> None:
        if self._changed is None:
            return
        async with self._changed:
            desired: dict[Key, dict[str, Any]] = {}
            for (g, p, ns, _), svc in list(self.store.items()):
                selector = (svc.get("spec") or {}).get("selector")
                if (g, p) != ("", "services") or not selector:
                    continue
                pods = [
                    pod
                    for (pg, pp, pns, _), pod in self.store.items()
                    if (pg, pp, pns) == ("", "pods", ns)
                    and all(
                        (pod["metadata"].get("labels") or {}).get(k) == v
                        for k, v in selector.items()
                    )
                ]
                pods.sort(key=lambda pod: pod["metadata"]["name"])
                slice_ = endpoint_slice_for(svc, pods)
                desired["discovery.k8s.io", "endpointslices", ns, slice_["metadata"]["name"]] = (
                    slice_
                )
            info = self._info["discovery.k8s.io", "endpointslices"]
            for key, obj in list(self.store.items()):
                managed = (obj["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
                if (
                    key[:2] == ("discovery.k8s.io", "endpointslices")
                    and managed
                    and key not in desired
                ):
                    self._delete(key)
            for key, slice_ in desired.items():
                if key not in self.store:
                    self._create(key[0], key[1], key[2], info, slice_)
                else:
                    live = self.store[key]
                    body = {**slice_, "metadata": {**live["metadata"], **slice_["metadata"]}}
                    self._write(key, info, body, None, replace=True)


def token_kubeconfig(url: str, token: str, namespace: str) -> dict[str, Any]:
    """A kubeconfig for ``url`` that authenticates with ``token`` (the admin's, or a pod's
    ServiceAccount's) in ``namespace``."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emu", "cluster": {"server": url}}],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [
            {
                "name": "emu",
                "context": {"cluster": "emu", "user": "user", "namespace": namespace},
            }
        ],
        "current-context": "emu",
    }
