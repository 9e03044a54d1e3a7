"""The one protocol every engine implements (mocker, echo, http, transformers; vLLM later).

An engine turns an already-validated OpenAI request body into a stream of ``Chunk``s (or
``TokenTexts``, several tokens ready at once) followed by one ``Finish`` (chat and
completions), or into an ``Embeddings`` result.  The frontend owns the OpenAI response format;
engines only produce text and token counts, so adding an engine never touches the HTTP layer.
Errors meant for the client are raised as ``EngineError(status, msg)``.  An engine that steps a
batch on its own clock (the mocker) may instead hand each request's tokens to a callback
(``TakesPromptIds.generate_into``); ``relay`` turns that form back into the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from drivetrain.errors import DrivetrainError

ModelType = Literal["chat", "completions", "embeddings"]
Op = Literal["chat", "completions"]


@dataclass(slots=True)
class Chunk:
    """Generated text and how many tokens it is."""

    text: str
    tokens: int = 1


@dataclass(slots=True)
class TokenTexts:
    """Tokens that became ready together, one text each: the worker forwards them in one frame
    without a yield per token (the mocker's batches; per-token boundaries are kept for
    ``--event-per-token``)."""

    texts: list[str]


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
class Tokens:
    """Token ids generated for ``/v1/generate`` (token-in/token-out), with each one's logprob
    when the request asked for them."""

    ids: list[int]
    logprobs: list[float] | None = None


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


Pushed = TypeVar("Pushed")


async def relay(
    run: Callable[[Callable[[Pushed], None]], Coroutine[Any, Any, Finish]],
) -> AsyncIterator[Pushed | Finish]:
    """What a callback-style generation pushes, as a stream: ``run(push)`` runs as a task, every
    item it pushes is yielded in order, its ``Finish`` last (or its exception raised); leaving
    the stream early cancels it."""
    loop = asyncio.get_running_loop()
    pushed: list[Pushed] = []
    waiter: asyncio.Future[None] | None = None

    def wake(*_: object) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(item: Pushed) -> None:
        pushed.append(item)
        wake()

    task: asyncio.Task[Finish] = loop.create_task(run(push))
    task.add_done_callback(wake)
    try:
        while True:
            if pushed:
                items = pushed[:]
                pushed.clear()
                for item in items:
                    yield item
            elif task.done():
                yield task.result()
                return
            else:
                waiter = loop.create_future()
                await waiter
                waiter = None
    finally:
        task.cancel()


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

    def generate(self, op: Op, body: dict[str, Any]) -> AsyncIterator[Chunk | TokenTexts | Finish]:
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
    ``prompt_ids`` None: the engine tokenizes itself.

    It hands the texts of the tokens that become due together to ``push`` (called from the
    engine's own clock, once per batch) and returns the ``Finish``: the worker's task for the
    request sleeps from start to end instead of waking for every batch."""

    async def generate_into(
        self,
        op: Op,
        body: dict[str, Any],
        prompt_ids: list[int] | None,
        push: Callable[[list[str]], None],
        transferred: bool = False,
    ) -> Finish: ...

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


@dataclass(frozen=True)
class WeightSource:
    """Where new weights come from (docs/rl.md): a safetensors file or folder on a path the
    worker can read, or an NCCL broadcast from the trainer (specified; engines answer 501)."""

    path: str | None = None
    nccl: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> WeightSource:
        raw = raw or {}
        path = raw.get("path")
        nccl = raw.get("nccl")
        return cls(path if isinstance(path, str) and path else None, nccl or None)

    def as_dict(self) -> dict[str, Any]:
        if self.nccl is not None:
            return {"nccl": self.nccl}
        return {"path": self.path} if self.path else {}


@runtime_checkable
class UpdatesWeights(Protocol):
    """An engine whose weights the RL API replaces (docs/rl.md, "The fleet transaction").

    The worker calls ``load_weights`` only while no request runs on the engine; the engine
    keeps what it needs to go back until ``keep_weights`` (the fleet committed) or
    ``restore_weights`` (the fleet rolled back).  ``load_weights`` raises ``EngineError`` for a
    load that failed and left the previous weights in place; ``restore_weights`` answers False
    where going back is impossible (the worker then stays out of routing)."""

    async def load_weights(self, version: str, source: WeightSource) -> None: ...

    async def restore_weights(self) -> bool: ...

    def keep_weights(self) -> None: ...


class WeightsDelegated:
    """``UpdatesWeights`` for an engine whose ``weights`` object does the work (the simulated
    weights of mocker and echo, the upstream's routes for http): one delegation, not three."""

    weights: UpdatesWeights

    async def load_weights(self, version: str, source: WeightSource) -> None:
        await self.weights.load_weights(version, source)

    async def restore_weights(self) -> bool:
        return await self.weights.restore_weights()

    def keep_weights(self) -> None:
        self.weights.keep_weights()


@runtime_checkable
class GeneratesTokens(Protocol):
    """An engine that serves ``/v1/generate``: token ids in, token ids out, no chat template
    and no detokenisation.  The body is ``{token_ids, sampling}``; the stream ends with one
    ``Finish``."""

    def generate_tokens(self, body: dict[str, Any]) -> AsyncIterator[Tokens | Finish]: ...
