"""``echo`` engine: repeats the last user message (or the prompt) one character per token.

Like Dynamo's echo engine, with an optional delay between characters
(``DRIVETRAIN_ECHO_DELAY_MS``, default 0).  Embeddings are hash vectors so that the route works.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from drivetrain.runtime.engines import text
from drivetrain.runtime.engines.base import (
    Chunk,
    Embeddings,
    Finish,
    ModelInfo,
    ModelType,
    Op,
    Tokens,
    WeightsDelegated,
)
from drivetrain.runtime.engines.simweights import SimulatedWeights


class EchoEngine(WeightsDelegated):
    def __init__(
        self,
        delay_ms: float | None = None,
        max_default: int = 4096,
        model_types: tuple[ModelType, ...] = ("chat", "completions", "embeddings"),
        weight_load_s: float = 0.0,
        fail_versions: tuple[str, ...] | None = None,
    ) -> None:
        self._model_types = model_types
        env = os.environ.get("DRIVETRAIN_ECHO_DELAY_MS", "0")
        self._delay = (delay_ms if delay_ms is not None else float(env or 0)) / 1000.0
        self._max_default = max_default
        self.weights = SimulatedWeights(weight_load_s, fail_versions)

    def info(self) -> ModelInfo:
        return ModelInfo(model_types=self._model_types)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def generate(self, op: Op, body: dict[str, Any]) -> AsyncIterator[Chunk | Finish]:
        if op == "chat":
            messages = body["messages"]
            source = text.last_user_text(messages)
            prompt = text.chat_prompt(messages)
        else:
            prompt = source = text.completion_prompt(body["prompt"])
        limit = text.max_tokens(body, self._max_default)
        out = source[:limit]
        for char in out:
            if self._delay:
                await asyncio.sleep(self._delay)
            yield Chunk(char, 1)
        reason = "length" if len(source) > limit else "stop"
        yield Finish(reason, len(prompt), len(out))

    async def generate_tokens(self, body: dict[str, Any]) -> AsyncIterator[Tokens | Finish]:
        """The prompt's token ids back, one per step (logprob 0: echoing is certain)."""
        ids = list(body["token_ids"])
        sampling = body.get("sampling") or {}
        limit = text.max_tokens(sampling, self._max_default)
        out = ids[:limit]
        want_logprobs = sampling.get("logprobs") is not None
        for token in out:
            if self._delay:
                await asyncio.sleep(self._delay)
            yield Tokens([token], [0.0] if want_logprobs else None)
        yield Finish("length" if len(ids) > limit else "stop", len(ids), len(out))

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        inputs = text.embedding_inputs(body)
        return Embeddings([text.hash_vector(s) for s in inputs], sum(len(s) for s in inputs))
