"""The fleet transaction: one weight update for every instance of a model, or for none of them
(docs/rl.md, "The fleet transaction").

``update`` runs, for one model at a time on this frontend:

1. **hold**: new requests wait in the model's admission queue (``ModelGate.hold``);
2. **prepare**: every instance, at once, holds new requests, lets running ones finish on the old
   version (``keep``/``wait``) or ends them (``abort``), loads ``version`` and keeps the previous
   weights; bounded by ``timeout``;
3. **commit** (all prepared): the committed record (``records.CommittedWeights``, sequence + 1)
   is written to discovery, so every frontend routes by it and a restarted one knows it; then
   every instance serves the new version; then the queue is released, at once;
4. **roll back** (any failure or timeout): every instance is told to go back; one that cannot
   reports the version it holds and stays out of routing (version-aware routing) until the next
   update or a catch-up replaces it.  The answer says which instances did what.

Instances not in the transaction (quarantined when it began, or joining during it) catch up on
their own from the committed record before any frontend routes to them (``weightcontrol.sync``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivetrain.errors import DrivetrainError
from drivetrain.runtime.discovery import DiscoveryStore
from drivetrain.runtime.frontend.errors import ApiError
from drivetrain.runtime.frontend.registry import ServingTable, Target
from drivetrain.runtime.records import CommittedWeights
from drivetrain.runtime.transport import frames
from drivetrain.runtime.transport.client import StreamFailed

CONTROL_TIMEOUT_S = 5.0  # status, pause, resume, commit and abort answer at once
SYNC_TIMEOUT_S = 1.0  # telling a lagging instance to catch up (it answers before it loads)
DEFAULT_UPDATE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class UpdatePlan:
    model: str
    version: str
    source: dict[str, Any]
    mode: str = "keep"
    timeout: float = DEFAULT_UPDATE_TIMEOUT_S


class ControlFailed(DrivetrainError):
    """A control request that did not get its answer: the worker's error, or no answer."""


async def control(target: Target, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One control request (op ``rl``) to one instance; ``ControlFailed`` unless it answered."""
    loop = asyncio.get_running_loop()
    stream = None
    try:
        stream = await target.client.open("rl", body)
        stream.set_deadline(loop.time() + timeout)
        kind, payload = await stream.next()
    except StreamFailed as exc:
        raise ControlFailed(f"unreachable: {exc}") from None
    except TimeoutError:
        if stream is not None:
            stream.cancel()
        raise ControlFailed(f"no answer within {timeout:g} s") from None
    if kind == frames.RESULT and isinstance(payload, dict):
        return payload
    if kind == frames.ERROR:
        raise ControlFailed(str(payload[1]))
    raise ControlFailed(f"unexpected answer {kind!r}")


class Fleet:
    """The RL API's operations on the instances this frontend routes to."""

    def __init__(
        self,
        table: ServingTable,
        store: Callable[[], DiscoveryStore | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self._store = store
        self._clock = clock
        self._busy: set[str] = set()
        self._told: set[tuple[str, int]] = set()  # (instance, sequence) told to catch up
        self._tasks: set[asyncio.Task[object]] = set()
        table.on_lagging = self.catch_up

    def _targets(self, model: str) -> list[Target]:
        served = self.table.models.get(model)
        if served is None:
            raise ApiError(404, f"The model `{model}` does not exist.", "model_not_found", "model")
        return list(served.targets)

    def _describe(
        self, target: Target, answer: dict[str, Any] | None, error: str | None
    ) -> dict[str, Any]:
        record = self.table.instances.get(target.instance_id)
        entry: dict[str, Any] = {
            "instance_id": target.instance_id,
            "address": target.address,
            "namespace": record.namespace if record is not None else None,
        }
        if answer is not None:
            entry.update(
                weight_version=answer.get("weight_version"),
                state=answer.get("state"),
                pending_version=answer.get("pending_version"),
                in_flight=answer.get("in_flight"),
            )
            if answer.get("error"):
                entry["error"] = answer["error"]
        else:
            entry.update(weight_version=target.client.weight_version, state="unreachable")
            entry["error"] = error
        return entry

    async def _each(
        self, targets: list[Target], body: dict[str, Any], timeout: float
    ) -> list[tuple[Target, dict[str, Any] | None, str | None]]:
        async def one(target: Target) -> tuple[Target, dict[str, Any] | None, str | None]:
            try:
                return target, await control(target, body, timeout), None
            except ControlFailed as exc:
                return target, None, str(exc)

        return list(await asyncio.gather(*(one(t) for t in targets)))

    def catch_up(self, model: str, target: Target) -> None:
        """An instance reports another version than the committed one, outside an update (it
        started, or missed a commit): tell it once per commit to load the committed version
        (``weightcontrol.sync``).  Routing leaves it out meanwhile.  Workers on a store they
        may read also catch up on their own; on ``kubernetes://`` this is the only way."""
        state = self.table.state(model)
        if model in self._busy or state is None or state.committed is None:
            return
        key = (target.instance_id, state.committed_sequence)
        if key in self._told:
            return
        self._told.add(key)
        record = CommittedWeights(
            model=model,
            namespace="",
            version=state.committed,
            sequence=state.committed_sequence,
            source=dict(state.committed_source),
        )
        body = {"action": "sync", "committed": record.model_dump(mode="json")}
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            self._each([target], body, SYNC_TIMEOUT_S)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- listing, pause, resume ------------------------------------------------------------

    async def workers(self, model: str) -> dict[str, Any]:
        targets = self._targets(model)
        answers = await self._each(targets, {"action": "status"}, CONTROL_TIMEOUT_S)
        state = self.table.state(model)
        return {
            "model": model,
            "committed_version": state.committed if state is not None else None,
            "sequence": state.committed_sequence if state is not None else 0,
            "paused": state.gate.held if state is not None else False,
            "instances": [self._describe(t, a, e) for t, a, e in answers],
        }

    async def pause(self, model: str, mode: str, timeout: float) -> dict[str, Any]:
        targets = self._targets(model)
        state = self.table.state(model)
        assert state is not None
        state.gate.hold()
        body = {"action": "pause", "mode": mode, "timeout": timeout}
        answers = await self._each(targets, body, timeout + CONTROL_TIMEOUT_S)
        return {
            "model": model,
            "paused": True,
            "mode": mode,
            "instances": [self._describe(t, a, e) for t, a, e in answers],
        }

    async def resume(self, model: str) -> dict[str, Any]:
        targets = self._targets(model)
        answers = await self._each(targets, {"action": "resume"}, CONTROL_TIMEOUT_S)
        state = self.table.state(model)
        assert state is not None
        state.gate.release()
        return {
            "model": model,
            "paused": False,
            "instances": [self._describe(t, a, e) for t, a, e in answers],
        }

    # ---- the transaction -------------------------------------------------------------------

    async def update(self, plan: UpdatePlan) -> tuple[int, dict[str, Any]]:
        """Run the transaction; (HTTP status, answer).  200 committed, 409 rolled back."""
        if plan.model in self._busy:
            raise ApiError(
                409, f"an update of `{plan.model}` is already in progress", "update_in_progress"
            )
        self._busy.add(plan.model)
        try:
            return await self._update(plan)
        finally:
            self._busy.discard(plan.model)

    async def _update(self, plan: UpdatePlan) -> tuple[int, dict[str, Any]]:
        started = self._clock()
        loop = asyncio.get_running_loop()
        now = loop.time()
        every = self._targets(plan.model)
        targets = [t for t in every if t.down_until <= now]
        skipped = [t for t in every if t.down_until > now]
        if not targets:
            raise ApiError(
                503, f"Model `{plan.model}` has no live instance to update", "model_unavailable"
            )
        state = self.table.state(plan.model)
        assert state is not None
        previous = state.committed
        was_held = state.gate.held
        txn = uuid.uuid4().hex
        state.gate.hold()
        try:
            prepare = {
                "action": "prepare",
                "txn": txn,
                "version": plan.version,
                "source": plan.source,
                "mode": plan.mode,
                "timeout": plan.timeout,
            }
            prepared = await self._each(targets, prepare, plan.timeout + CONTROL_TIMEOUT_S)
            failed = [(t, a, e) for t, a, e in prepared if a is None or not a.get("ok")]
            if failed:
                return await self._roll_back(plan, txn, prepared, failed, previous, started)
            sequence = state.committed_sequence + 1
            try:
                await self._write_committed(plan, sequence, targets)
            except Exception as exc:  # the store did not take it: nobody may serve it
                reason = f"discovery did not store the commit: {exc}"
                return await self._roll_back(plan, txn, prepared, [], previous, started, reason)
            self.table.set_committed(plan.model, plan.version, sequence, plan.source)
            commit = {"action": "commit", "txn": txn, "version": plan.version, "sequence": sequence}
            committed = await self._each(targets, commit, CONTROL_TIMEOUT_S)
        finally:
            if not was_held:
                state.gate.release()
        instances = [self._describe(t, a, e) for t, a, e in committed]
        lagging = [i for i in instances if i.get("weight_version") != plan.version]
        known = {x.instance_id for x in every}
        newcomers = [t for t in self._targets(plan.model) if t.instance_id not in known]
        joined = [t.instance_id for t in newcomers]
        # Those that joined meanwhile, or were skipped: catch up now, rather than at their next
        # read of the record (weightcontrol.sync; they are not routable until they have).
        record = CommittedWeights(
            model=plan.model,
            namespace="",
            version=plan.version,
            sequence=sequence,
            source=plan.source,
        )
        sync = {"action": "sync", "committed": record.model_dump(mode="json")}
        await self._each([*newcomers, *skipped], sync, SYNC_TIMEOUT_S)
        return 200, {
            "model": plan.model,
            "status": "committed",
            "version": plan.version,
            "previous_version": previous,
            "sequence": sequence,
            "seconds": round(self._clock() - started, 4),
            "instances": instances,
            # Out of routing until they catch up from the committed record:
            "not_serving": [i["instance_id"] for i in lagging],
            "skipped": [t.instance_id for t in skipped],
            "joined": joined,
        }

    async def _roll_back(
        self,
        plan: UpdatePlan,
        txn: str,
        prepared: list[tuple[Target, dict[str, Any] | None, str | None]],
        failed: list[tuple[Target, dict[str, Any] | None, str | None]],
        previous: str | None,
        started: float,
        reason: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        targets = [t for t, _, _ in prepared]
        aborted = await self._each(targets, {"action": "abort", "txn": txn}, CONTROL_TIMEOUT_S)
        instances = [self._describe(t, a, e) for t, a, e in aborted]
        out_of_routing = [
            i["instance_id"]
            for (_, a, _), i in zip(aborted, instances, strict=True)
            if a is not None and not a.get("restored", True)
        ]
        # No answer to the abort (dead, or cut off): a live one goes back by itself once its
        # prepared state expires (timeout + 15 s), as discovery holds no commit of it.
        unreachable = [
            i["instance_id"] for (_, a, _), i in zip(aborted, instances, strict=True) if a is None
        ]
        if out_of_routing and previous is None:
            # Routing filters by the committed version; with none yet, commit the one the
            # fleet went back to, so that the workers holding uncommitted weights drop out.
            held = [
                i["weight_version"] for i in instances if i["instance_id"] not in out_of_routing
            ]
            if held:
                baseline = max(set(held), key=held.count)
                state = self.table.state(plan.model)
                sequence = (state.committed_sequence if state is not None else 0) + 1
                baseline_plan = UpdatePlan(plan.model, baseline, {}, plan.mode, plan.timeout)
                try:
                    await self._write_committed(baseline_plan, sequence, targets)
                    self.table.set_committed(plan.model, baseline, sequence, {})
                    previous = baseline
                except Exception as exc:  # the answer still names them; routing cannot
                    reason = f"{reason or ''} (committing {baseline!r} failed: {exc})".strip()
        causes = [f"{t.address}: {(a or {}).get('error') or e or 'failed'}" for t, a, e in failed]
        message = reason or "; ".join(causes)
        return 409, {
            "model": plan.model,
            "status": "rolled_back" if not out_of_routing else "rolled_back_partially",
            "version": previous,
            "attempted_version": plan.version,
            "seconds": round(self._clock() - started, 4),
            "failed": [t.instance_id for t, _, _ in failed],
            # Could not go back: they serve nothing until the next update or a catch-up.
            "out_of_routing": out_of_routing,
            "unreachable": unreachable,
            "instances": instances,
            "error": {
                "message": f"update to {plan.version!r} rolled back: {message}",
                "type": "invalid_request_error",
                "param": None,
                "code": "update_failed",
            },
        }

    async def _write_committed(
        self, plan: UpdatePlan, sequence: int, targets: list[Target]
    ) -> None:
        store = self._store()
        if store is None:
            raise RuntimeError("no discovery store")
        namespaces = sorted(
            {
                instance.namespace
                for t in targets
                if (instance := self.table.instances.get(t.instance_id)) is not None
            }
        )
        for namespace in namespaces:
            committed = CommittedWeights(
                model=plan.model,
                namespace=namespace,
                version=plan.version,
                sequence=sequence,
                source=plan.source,
            )
            await store.put(committed.key, committed.encode())
