"""The extended emulator, stricter where API clients that watch must cope: RBAC per token,
410 Gone, watches the server ends, outages.

``StrictEmulator`` adds to ``ExtendedEmulator`` (which it leaves unchanged):

* **RBAC.** ``grant(token, namespace, rules)`` gives a bearer token the rules of one Role
  (``apiGroups`` / ``resources`` / ``verbs``, in one namespace).  A request with another token
  than ``ADMIN_TOKEN`` (the kubeconfig default, unrestricted) is authorised as the API server
  does: the verb from the method (get, list, watch, create, update, patch, delete), and a
  server-side apply that creates the object needs ``create`` as well as ``patch``.  Unknown
  tokens get 401, a missing rule 403 with the API server's message.  ``used[token]`` records
  every (group, resource, verb) a token was allowed, ``denied`` every refusal.
* **410 Gone.** ``compact()`` forgets the event history: a watch from an older
  resourceVersion gets an ``ERROR`` event with code 410, as a real server sends once etcd has
  compacted it (also past the 1000 events the emulator keeps).
* **Watches the server ends.** ``end_watches()`` closes every open watch cleanly, as the API
  server does when ``timeoutSeconds`` runs out or it restarts.
* **Watches that miss nothing.** The parent's watch can skip or hold back an event emitted while
  it writes (see ``_watch``); clients that must see every change get them here.
* **Outages.** While ``unavailable`` is true every resource request gets 503; a token in
  ``unavailable_to`` gets 503 alone (one client cut off while others write).
* **A garbage collector that lags.** ``replace_before_collection`` replaces an object by a new
  one of the same name (a StatefulSet pod) before its dependents are collected.

The emulator runs in its own thread: call ``end_watches`` and ``replace_before_collection``
through ``in_loop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp.web
import attrs
from kmock._internal import rendering

from tests.kube.emulator import ApiError, ExtendedEmulator, RunningCluster, selector_matches

ADMIN_TOKEN = "emulator"

Rule = dict[str, list[str]]
T = TypeVar("T")


def in_loop(running: RunningCluster, fn: Callable[[], T | Awaitable[T]]) -> T:
    """Run ``fn()`` (awaited when it returns an awaitable) in the emulator's event loop thread
    and return its result."""

    async def call() -> T:
        result = fn()
        return await result if inspect.isawaitable(result) else result  # type: ignore[return-value]

    return asyncio.run_coroutine_threadsafe(call(), running._loop).result(10)


@attrs.define(kw_only=True)
class StrictEmulator(ExtendedEmulator):
    unavailable: bool = False
    unavailable_to: set[str] = attrs.field(factory=set)
    #: token -> (namespace, rules)
    roles: dict[str, tuple[str, list[Rule]]] = attrs.field(factory=dict, init=False)
    #: token -> {(group, resource, verb)} allowed and served
    used: dict[str, set[tuple[str, str, str]]] = attrs.field(factory=dict, init=False)
    denied: list[tuple[str, str, str, str]] = attrs.field(factory=list, init=False)
    _compacted: int = attrs.field(default=0, init=False)
    _watch_tasks: set[asyncio.Task[Any]] = attrs.field(factory=set, init=False)

    def grant(self, token: str, namespace: str, rules: list[Rule]) -> None:
        self.roles[token] = (namespace, rules)

    def compact(self) -> None:
        self._compacted = self._rv

    async def replace_before_collection(self, group: str, plural: str, ns: str, name: str) -> str:
        """The object is deleted and created again under its name with a new uid, and the
        garbage collector has not run yet (its dependents are still there).  Returns the uid."""
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

    def end_watches(self) -> None:
        for task in list(self._watch_tasks):
            task.cancel()

    # ----------------------------------------------------------------- authorisation

    @staticmethod
    def _verb(method: str, request: rendering.Request) -> str:
        if method == "GET":
            if request.params.get("watch") in ("true", "True", "1"):
                return "watch"
            return "get" if request.name is not None else "list"
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]

    def _authorise(
        self, token: str, request: rendering.Request, group: str, resource: str, verbs: list[str]
    ) -> None:
        if token == ADMIN_TOKEN:
            return
        if token not in self.roles:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        namespace, rules = self.roles[token]
        for verb in verbs:
            allowed = request.namespace == namespace and any(
                group in rule["apiGroups"]
                and resource in rule["resources"]
                and verb in rule["verbs"]
                for rule in rules
            )
            if not allowed:
                self.denied.append((token, group, resource, verb))
                where = f' in the namespace "{request.namespace}"' if request.namespace else ""
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{resource}{"." + group if group else ""} is forbidden: User "{token}" cannot '
                    f'{verb} resource "{resource}" in API group "{group}"{where}',
                )
            self.used.setdefault(token, set()).add((group, resource, verb))

    async def _serve(
        self, request: rendering.Request, group: str, plural: str, info: dict[str, Any]
    ) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        header = raw.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        if self.unavailable or token in self.unavailable_to:
            raise ApiError(503, "ServiceUnavailable", "the emulator is down on purpose")
        method = str(request.method.value if hasattr(request.method, "value") else request.method)
        method = method.upper()
        verbs = [self._verb(method, request)]
        if (
            method == "PATCH"
            and "apply-patch" in raw.headers.get("Content-Type", "")
            and (group, plural, request.namespace, request.name) not in self.store
        ):
            verbs.append("create")  # the API server authorises an applying create as create
        resource = plural + (f"/{request.subresource}" if request.subresource else "")
        self._authorise(token, request, group, resource, verbs)
        return await super()._serve(request, group, plural, info)

    # ----------------------------------------------------------------- watches

    async def _watch(
        self, raw: aiohttp.web.BaseRequest, request: rendering.Request, group: str, plural: str
    ) -> aiohttp.web.StreamResponse:
        """The parent's watch, with every event delivered once, in order, as it happens.

        The parent moves its cursor to the newest resourceVersion after writing (and awaiting)
        the events it had copied, and waits for the next change only after that: an event
        emitted in between is skipped or held back until some later change.  Here the events
        are taken and the cursor moved under the lock the writers emit under, and the wait
        starts under that lock too.
        """
        since = request.params.get("resourceVersion")
        floor = self._compacted
        if len(self._events) >= 1000:
            floor = max(floor, self._events[0][0] - 1)
        response = aiohttp.web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(raw)
        if since and since != "0" and int(since) < floor:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Expired",
                "code": 410,
                "message": f"too old resource version: {since} ({floor})",
            }
            await response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
            await response.write_eof()
            return response
        selector = request.params.get("labelSelector", "")
        timeout = float(request.params.get("timeoutSeconds") or 0) or None

        def wanted(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            if request.namespace is not None and meta.get("namespace") != request.namespace:
                return False
            if request.name is not None and meta.get("name") != request.name:
                return False
            return not selector or selector_matches(selector, meta.get("labels") or {})

        assert self._changed is not None
        async with self._changed:
            if since and since != "0":
                cursor, pending = int(since), []
            else:
                cursor = self._rv
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
            while True:
                for event in pending:
                    await response.write(json.dumps(event).encode() + b"\n")
                async with self._changed:
                    while True:
                        pending = [
                            event
                            for rv, g, p, event in self._events
                            if rv > cursor and (g, p) == (group, plural) and wanted(event["object"])
                        ]
                        cursor = self._rv
                        remaining = deadline - loop.time() if deadline else None
                        if pending or (remaining is not None and remaining <= 0):
                            break
                        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                        # cancellation that lands as the condition fires, and the watch would
                        # then outlive end_watches() and the server's shutdown.
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(remaining):
                                await self._changed.wait()
                if not pending:
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        finally:
            self._watch_tasks.discard(task)
        await response.write_eof()
        return response
