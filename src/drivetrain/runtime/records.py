"""What workers publish in the discovery store, and where.

Two records, both JSON (pydantic v2):

* ``InstanceRecord``: one worker process, reachable at ``address`` over ``transport``.
* ``ModelCard``: one model served by one instance (a worker serving two names writes two cards).

Keys carry the namespace right after the record kind, so scoping a frontend to a namespace (or a
namespace prefix) is a prefix watch in the store, not a filter applied after every event::

    drivetrain/v1/instances/<namespace>/<component>/<instance_id>
    drivetrain/v1/models/<namespace>/<model_name>/<instance_id>

Each segment is percent-encoded (``/`` inside a served name such as ``Qwen/Qwen3-0.6B`` must not
add a level).  Percent-encoding maps character by character into a prefix-free code, so
``encode(p)`` is a prefix of ``encode(ns)`` exactly when ``p`` is a prefix of ``ns``: literal
namespace-prefix scoping survives the encoding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivetrain.errors import DrivetrainError

ROOT = "drivetrain/v1/"
INSTANCES_PREFIX = ROOT + "instances/"
MODELS_PREFIX = ROOT + "models/"

RecordKind = Literal["instances", "models"]
ModelType = Literal["chat", "completions", "embeddings"]
MODEL_TYPES: tuple[ModelType, ...] = ("chat", "completions", "embeddings")


class RecordError(DrivetrainError, ValueError):
    """A key or value in the store that is not a drivetrain record."""


def encode_segment(text: str) -> str:
    """Percent-encode one key segment (nothing is left unescaped that could be a separator)."""
    return quote(text, safe="")


def decode_segment(text: str) -> str:
    return unquote(text)


def kind_prefix(kind: RecordKind) -> str:
    return INSTANCES_PREFIX if kind == "instances" else MODELS_PREFIX


def instance_key(namespace: str, component: str, instance_id: str) -> str:
    return INSTANCES_PREFIX + "/".join(
        encode_segment(part) for part in (namespace, component, instance_id)
    )


def model_key(namespace: str, model_name: str, instance_id: str) -> str:
    return MODELS_PREFIX + "/".join(
        encode_segment(part) for part in (namespace, model_name, instance_id)
    )


@dataclass(frozen=True)
class ParsedKey:
    """A record key split into its parts (a delete event carries only the key)."""

    kind: RecordKind
    namespace: str
    name: str  # the component for an instance, the model name for a model card
    instance_id: str


def parse_key(key: str) -> ParsedKey:
    """Split a record key; ``RecordError`` for anything that is not one."""
    for kind in ("instances", "models"):
        prefix = kind_prefix(kind)  # type: ignore[arg-type]
        if key.startswith(prefix):
            parts = key[len(prefix) :].split("/")
            if len(parts) != 3 or not parts[1] or not parts[2]:
                raise RecordError(f"key {key!r}: expected {prefix}<namespace>/<name>/<instance_id>")
            namespace, name, instance_id = (decode_segment(p) for p in parts)
            return ParsedKey(kind, namespace, name, instance_id)  # type: ignore[arg-type]
    raise RecordError(f"key {key!r} is not under {INSTANCES_PREFIX} or {MODELS_PREFIX}")


class _Record(BaseModel):
    # Unknown fields are ignored so that an older frontend reads records of a newer worker.
    model_config = ConfigDict(extra="ignore", frozen=True)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


class InstanceRecord(_Record):
    instance_id: str = Field(min_length=1)
    namespace: str
    component: str = Field(min_length=1)
    address: str = Field(min_length=1, description="where the request plane listens, host:port")
    transport: str = Field(min_length=1, description="request-plane protocol, e.g. 'tcp'")
    model_names: list[str] = Field(default_factory=list)
    started_at: float = Field(default_factory=time.time, description="unix seconds")
    capacity: int | None = Field(
        default=None, ge=1, description="requests it runs at once (its batch limit); None: no limit"
    )
    role: Literal["prefill", "decode"] | None = Field(
        default=None,
        description="its part in disaggregated serving (docs/kv-routing.md); None: aggregated",
    )

    @property
    def key(self) -> str:
        return instance_key(self.namespace, self.component, self.instance_id)

    @classmethod
    def decode(cls, data: bytes) -> InstanceRecord:
        return _decode(cls, data)


class ModelCard(_Record):
    name: str = Field(min_length=1, description="the served model name clients ask for")
    namespace: str
    model_types: list[ModelType] = Field(min_length=1)
    instance_id: str = Field(min_length=1)
    component: str = "backend"
    tokenizer: str | None = Field(
        default=None, description="tokenizer source: an absolute folder path (or a repo id)"
    )
    context_length: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    kv_block_size: int | None = Field(
        default=None,
        ge=1,
        description="tokens per KV block when the instance publishes KV events (docs/kv-routing.md)",
    )

    @property
    def key(self) -> str:
        return model_key(self.namespace, self.name, self.instance_id)

    @classmethod
    def decode(cls, data: bytes) -> ModelCard:
        return _decode(cls, data)


Record = InstanceRecord | ModelCard
_R = TypeVar("_R", bound=_Record)


def _decode(cls: type[_R], data: bytes) -> _R:
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<value>"
        raise RecordError(f"{cls.__name__}: {where}: {first['msg']}") from None


def decode_record(key: str, data: bytes) -> tuple[ParsedKey, Record]:
    """Parse a key and its value, checking that the value belongs under that key."""
    parsed = parse_key(key)
    record: Record
    if parsed.kind == "instances":
        record = InstanceRecord.decode(data)
        stated = (record.namespace, record.component, record.instance_id)
    else:
        record = ModelCard.decode(data)
        stated = (record.namespace, record.name, record.instance_id)
    if stated != (parsed.namespace, parsed.name, parsed.instance_id):
        raise RecordError(f"key {key!r} holds a record for {record.key!r}")
    return parsed, record


# ---- the committed weight version of a model (the RL API, docs/rl.md) ----------------------

WEIGHTS_PREFIX = ROOT + "weights/"


def weights_key(namespace: str, model_name: str) -> str:
    """``drivetrain/v1/weights/<namespace>/<model_name>``: one key per model, written without
    a lease by the frontend that committed a fleet update, so that it outlives that frontend
    (on ``kubernetes://`` in a durable WorkerEndpoint owned by the frontends' workload:
    docs/discovery.md)."""
    return WEIGHTS_PREFIX + "/".join(encode_segment(p) for p in (namespace, model_name))


def parse_weights_key(key: str) -> tuple[str, str] | None:
    """(namespace, model) of a weights key; None for any other key."""
    if not key.startswith(WEIGHTS_PREFIX):
        return None
    parts = key[len(WEIGHTS_PREFIX) :].split("/")
    if len(parts) != 2 or not parts[1]:
        return None
    return decode_segment(parts[0]), decode_segment(parts[1])


class CommittedWeights(_Record):
    """The weight version every instance of ``model`` in ``namespace`` must serve.

    ``sequence`` grows by one per commit, so that two frontends (or a late watch event) never
    put an older commit over a newer one.  ``source`` is where the weights are read from
    (``{"path": ...}``): a worker that starts or falls behind loads them from there before it
    is routable."""

    model: str = Field(min_length=1)
    namespace: str
    version: str = Field(min_length=1)
    sequence: int = Field(ge=1)
    source: dict[str, Any] = Field(default_factory=dict)
    committed_at: float = Field(default_factory=time.time, description="unix seconds")

    @property
    def key(self) -> str:
        return weights_key(self.namespace, self.model)

    @classmethod
    def decode(cls, data: bytes) -> CommittedWeights:
        return _decode(cls, data)
