"""The frontend's routing table: served models, their instances, and a client per instance.

Rebuilt from the discovery watcher's full view (model cards + instance records in scope) on every
change; changes are rare, requests are many, so lookups are plain dict reads.  An instance whose
connection failed, or whose worker dropped the connection, is quarantined for ``QUARANTINE_S``
(or until discovery re-registers it), so requests stop going to a dead worker before its lease
expires.  ``wait_for_change`` lets a request wait for the next rebuild (a worker registering)
without polling.

Each model's ``ModelState`` (with its admission queue, ``admission.ModelGate``) outlives the
rebuilds, and the model is remembered after its last instance left: a request for it then waits
for an instance (a restart in progress) instead of being told the model does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from drivetrain.runtime.eventloop import OnOneLoop
from drivetrain.runtime.frontend.admission import AdmissionConfig, ModelGate
from drivetrain.runtime.records import InstanceRecord, ModelCard
from drivetrain.runtime.transport.client import RequestPlaneClient

QUARANTINE_S = 5.0


@dataclass(eq=False)
class Target:
    """One instance serving one model, reached through a shared client."""

    instance_id: str
    address: str
    client: RequestPlaneClient
    down_until: float = 0.0
    capacity: int | None = None  # registered; the worker's reports take over once they arrive
    role: str | None = None  # "prefill" or "decode" in disaggregated serving; None: aggregated

    @property
    def in_flight(self) -> int:
        return self.client.in_flight

    def serves(self, committed: str | None) -> bool:
        """Version-aware routing (docs/rl.md): with a committed version, only an instance that
        reports it, or has not reported yet (the worker refuses a request that expects another
        version, and its answer carries its version), is routable."""
        if committed is None:
            return True
        reported = self.client.reported
        return reported is None or len(reported) < 3 or reported[2] == committed

    def has_room(self) -> bool:
        """Whether one more request would run at once on the worker rather than wait there.

        Its requests in flight are the larger of its last report (every frontend's requests)
        and this frontend's own count on the connection (which knows at once what was just
        sent); its capacity is the reported one, else the registered one, else unbounded."""
        reported = self.client.reported
        if reported is None:
            capacity, active = self.capacity, 0
        else:
            active, capacity = reported[0], reported[1]
        if capacity is None:
            return True
        return max(active, self.client.in_flight) < capacity


@dataclass(eq=False)
class ModelState:
    """What the frontend keeps about one served model across routing-table rebuilds.

    Discovery changes rebuild every ``ServedModel``; this object survives them (until the
    frontend stops), so per-model request state belongs here: today the creation time that
    /v1/models reports, later steps' admission queue, pause flag or weight version.
    """

    name: str
    created: int
    gate: ModelGate
    model_types: frozenset[str] = frozenset()  # as last registered (the model may be gone now)
    #: the committed weight version (discovery's CommittedWeights; None: never updated)
    committed: str | None = None
    committed_sequence: int = 0
    committed_source: dict[str, object] = field(default_factory=dict)


@dataclass(eq=False)
class ServedModel:
    name: str
    model_types: frozenset[str]
    state: ModelState
    targets: list[Target] = field(default_factory=list)
    context_length: int | None = None
    max_output_tokens: int | None = None
    tokenizer: str | None = None  # the folder a worker registered (tokens.py reads it)
    kv_block_size: int | None = None  # its workers' KV block size when they publish KV events
    #: whether some instance is a prefill or decode one (disaggregated serving, ``disagg.py``)
    disaggregated: bool = False

    @property
    def created(self) -> int:
        return self.state.created

    def live_targets(self, now: float, role: str | None = None) -> list[Target]:
        """Live targets on the committed weight version; in disaggregated serving those of
        ``role`` (``"prefill"``, or ``"decode"``: the decode and aggregated ones, which can
        prefill for themselves)."""
        committed = self.state.committed
        live = [t for t in self.targets if t.down_until <= now and t.serves(committed)]
        if not self.disaggregated:
            return live
        if role == "prefill":
            return [t for t in live if t.role == "prefill"]
        return [t for t in live if t.role != "prefill"]


class ServingTable(OnOneLoop):
    def __init__(self, admission: AdmissionConfig | None = None) -> None:
        self.models: dict[str, ServedModel] = {}
        self.instances: dict[str, InstanceRecord] = {}
        self.enabled: frozenset[str] = frozenset()
        self.admission = admission or AdmissionConfig()
        self._clients: dict[str, RequestPlaneClient] = {}
        self._down: dict[str, float] = {}  # instance_id -> quarantined until (loop time)
        self._states: dict[str, ModelState] = {}
        self._changed = asyncio.Event()  # set (and replaced) by every rebuild
        self._remembered: frozenset[str] = frozenset()  # model types of models once served
        #: called with (model, target) for an instance that reports another weight version than
        #: the committed one (the RL API's fleet tells it to catch up: fleet.py)
        self.on_lagging: Callable[[str, Target], None] | None = None
        #: called with each new worker connection (the KV router subscribes to its events)
        self.on_new_client: Callable[[RequestPlaneClient], None] | None = None

    # ---- what admission asks -------------------------------------------------------------

    def state(self, name: str) -> ModelState | None:
        """The model's state, also after its last instance left (None: never served here)."""
        return self._states.get(name)

    def serves(self, endpoint: str) -> bool:
        """Whether some model serves this route now, or did (it may be restarting)."""
        return endpoint in self.enabled or endpoint in self._remembered

    def live(self, name: str) -> bool:
        model = self.models.get(name)
        if model is None:
            return False
        now = self.loop.time()
        # A disaggregated model needs a decode (or aggregated) instance: live_targets' default.
        return bool(model.live_targets(now))

    def room(self, name: str) -> bool:
        model = self.models.get(name)
        if model is None:
            return False
        now = self.loop.time()
        return any(t.has_room() for t in model.live_targets(now))

    def pump(self) -> None:
        """Room may have opened somewhere: wake the head of every queue that has one."""
        for state in self._states.values():
            if state.gate.waiting:
                state.gate.pump()

    def _new_state(self, name: str) -> ModelState:
        gate = ModelGate(name, self.admission, lambda: self.live(name), lambda: self.room(name))
        return ModelState(name, int(time.time()), gate)

    def rebuild(
        self, cards: Iterable[ModelCard], instances: Iterable[InstanceRecord]
    ) -> list[RequestPlaneClient]:
        """Replace the table; returns clients no longer used (the caller closes them)."""
        by_id = {record.instance_id: record for record in instances}
        models: dict[str, ServedModel] = {}
        used: dict[str, RequestPlaneClient] = {}
        for card in sorted(cards, key=lambda c: (c.name, c.instance_id)):
            model = models.get(card.name)
            if model is None:
                state = self._states.get(card.name)
                if state is None:
                    state = self._states[card.name] = self._new_state(card.name)
                model = models[card.name] = ServedModel(card.name, frozenset(), state)
            model.model_types |= frozenset(card.model_types)
            model.state.model_types = model.model_types
            model.context_length = model.context_length or card.context_length
            model.max_output_tokens = model.max_output_tokens or card.max_output_tokens
            model.tokenizer = model.tokenizer or card.tokenizer
            model.kv_block_size = model.kv_block_size or card.kv_block_size
            record = by_id.get(card.instance_id)
            if record is None or record.transport != "tcp":
                continue  # card without a reachable instance (yet): known but not routable
            client = used.get(record.address) or self._clients.get(record.address)
            if client is None or client.closed:
                client = RequestPlaneClient(record.address)
                client.on_lost = self._lost_callback(record.address)
                client.on_room = self.pump
                client.on_version = self._version_callback(record.address)
                if self.on_new_client is not None:
                    self.on_new_client(client)
            used[record.address] = client
            model.targets.append(
                Target(
                    record.instance_id,
                    record.address,
                    client,
                    self._down.get(record.instance_id, 0.0),
                    record.capacity,
                    record.role,
                )
            )
            model.disaggregated = model.disaggregated or record.role is not None
        stale = [c for addr, c in self._clients.items() if addr not in used]
        self._clients = used
        self._down = {i: t for i, t in self._down.items() if i in by_id}
        self.models = models
        self.instances = by_id
        self.enabled = frozenset(t for m in models.values() for t in m.model_types)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self._remembered = frozenset(t for s in self._states.values() for t in s.model_types)
        self.pump()  # an instance may have come (back)
        return stale

    def _version_callback(self, address: str) -> Callable[[], None]:
        def reported() -> None:
            self.routing_changed()
            self._check_lagging(lambda t: t.address == address)

        return reported

    def _check_lagging(self, which: Callable[[Target], bool]) -> None:
        if self.on_lagging is None:
            return
        for model in self.models.values():
            committed = model.state.committed
            if committed is None:
                continue
            for t in model.targets:
                version = t.client.weight_version
                if which(t) and version is not None and version != committed:
                    self.on_lagging(model.name, t)

    def routing_changed(self) -> None:
        """A worker reported another weight version, or a commit arrived: requests waiting for
        a routable instance look again (as after a rebuild)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self.pump()

    def set_committed(
        self, name: str, version: str, sequence: int, source: dict[str, object]
    ) -> bool:
        """The model's committed weight version (from discovery or this frontend's own
        commit); an older sequence never replaces a newer one.  True when it changed."""
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = self._new_state(name)
        if sequence < state.committed_sequence or (
            sequence == state.committed_sequence and state.committed == version
        ):
            return False
        state.committed, state.committed_sequence = version, sequence
        state.committed_source = dict(source)
        self.routing_changed()
        self._check_lagging(lambda t: True)
        return True

    async def wait_for_change(self, timeout: float) -> None:
        """Return at the next rebuild, or after ``timeout`` seconds."""
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def quarantine(self, target: Target, now: float) -> None:
        self._quarantine(lambda t: t.instance_id == target.instance_id, now)

    def _lost_callback(self, address: str) -> Callable[[], None]:
        """A worker that drops its connection is dead or leaving: quarantine every instance at
        its address at once, rather than let requests find out one by one until its lease
        expires (a SIGKILLed worker's lease lives for its TTL)."""

        def lost() -> None:
            self._quarantine(lambda t: t.address == address, self.loop.time())

        return lost

    def _quarantine(self, which: Callable[[Target], bool], now: float) -> None:
        until = now + QUARANTINE_S
        for model in self.models.values():
            for t in model.targets:
                if which(t):
                    self._down[t.instance_id] = until
                    t.down_until = until

    def client_for(self, address: str) -> RequestPlaneClient | None:
        return self._clients.get(address)

    def clients(self) -> list[RequestPlaneClient]:
        return list(self._clients.values())

    def queued(self) -> dict[str, int]:
        """Requests waiting in each model's admission queue."""
        return {name: s.gate.waiting for name, s in self._states.items()}

    def close_gates(self, message: str) -> None:
        for state in self._states.values():
            state.gate.close(message)

    def instance_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for record in self.instances.values():
            key = (record.namespace, record.component)
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients = {}
