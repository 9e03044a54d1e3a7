"""The one protocol every engine implements (mocker, echo, http, transformers; vLLM later).

An engine turns an already-validated OpenAI request body into a stream of ``Chunk``s followed by
one ``Finish`` (chat and completions), or into an ``Embeddings`` result.  The frontend owns the
OpenAI response format; engines only produce text and token counts, so adding an engine never
touches the HTTP layer.  Errors meant for the client are raised as ``EngineError(status, msg)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from drivetrain.errors import DrivetrainError

ModelType = Literal["chat", "completions", "embeddings"]
Op = Literal["chat", "completions"]


@dataclass(slots=True)
class Chunk:
    """Generated text and how many tokens it is."""

    text: str
    tokens: int = 1


@dataclass(slots=True)
class Finish:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    #: prompt tokens found in the engine's prefix cache (``usage.prompt_tokens_details``)
    cached_tokens: int = 0


@dataclass(slots=True)
class Prefilled:
    """A prefill instance's answer: the prompt's KV is computed and ready to transfer."""

    prompt_tokens: int
    cached_tokens: int


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


class EngineError(DrivetrainError):
    """A failure the client should see with this HTTP status (4xx: its fault, 5xx: ours);
    ``code`` and ``param`` (the field at fault) go into the OpenAI error body when given."""

    def __init__(
        self, status: int, message: str, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


@dataclass(frozen=True)
class ModelInfo:
    """What the worker registers: the model card's fields, and the instance's batch limit
    (``capacity``, None: no limit; see ``ReportsCapacity``)."""

    model_types: tuple[ModelType, ...]
    tokenizer: str | None = None
    context_length: int | None = None
    capacity: int | None = None
    #: tokens per KV block when the engine caches prefixes and publishes KV events
    kv_block_size: int | None = None
    #: "prefill" or "decode" in disaggregated serving; None: aggregated
    role: str | None = None


@runtime_checkable
class Engine(Protocol):
    def info(self) -> ModelInfo: ...

    async def start(self) -> None:
        """Load weights / open upstream sessions; called once before serving."""

    async def close(self) -> None: ...

    def generate(self, op: Op, body: dict[str, Any]) -> AsyncIterator[Chunk | Finish]:
        """Text for a chat or completions body; must end with exactly one ``Finish``."""

    async def embed(self, body: dict[str, Any]) -> Embeddings: ...


@runtime_checkable
class ReportsCapacity(Protocol):
    """An engine with a batch limit (the mocker, transformers; http from a flag).

    ``capacity()`` is how many requests it runs at once right now without making one wait:
    its batch limit, or fewer when it is already holding requests back (KV blocks exhausted, a
    queue of its own).  The worker sends it to the frontends with its count of requests in
    flight (docs/runtime.md, "Abuse and overload"); None means no limit.  Engines without the
    method have no limit.
    """

    def capacity(self) -> int | None: ...


@runtime_checkable
class TakesPromptIds(Protocol):
    """An engine that takes the prompt's token ids from the frontend (the mocker), so that a
    prompt the frontend tokenized for KV routing is not tokenized again (docs/kv-routing.md).
    ``prompt_ids`` None: the engine tokenizes itself."""

    def generate_ids(
        self,
        op: Op,
        body: dict[str, Any],
        prompt_ids: list[int] | None,
        transferred: bool = False,
    ) -> AsyncIterator[Chunk | Finish]: ...

    async def prefill(
        self, op: Op, body: dict[str, Any], prompt_ids: list[int] | None
    ) -> Prefilled: ...


@runtime_checkable
class UpstreamEngine(Protocol):
    """An engine in front of a separate server (the ``http`` engine as a sidecar).

    The worker registers it in discovery only while ``upstream_ready()`` is true, polling every
    ``health_interval`` seconds, or at once when ``trouble`` is set (a request could not reach
    the upstream).  ``resolve_model()`` is the model name the upstream serves (asked of it when
    the worker was given none); ``describe()`` reads the rest of what ``info()`` registers.
    """

    health_interval: float
    trouble: asyncio.Event

    @property
    def upstream(self) -> str: ...

    async def upstream_ready(self) -> bool: ...

    async def resolve_model(self) -> str: ...

    async def describe(self) -> None:
        """Learn what the upstream says about its model (its context length) before the
        worker registers it."""
