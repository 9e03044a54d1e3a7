"""``mocker`` engine: simulated prefill and decode timing, real token counts.

Timing follows Dynamo's default polynomial perf model (docs/runtime.md), per request:
prefill_ms = 4.209989e-07·T² + 1.518344e-02·T + 16.50142 with T = prompt tokens, and per decode
step decode_ms = max(1, −25.74·u² + 54.01·u + 5.74) with u = active KV tokens / KV capacity
across this worker's requests; both divided by ``speedup_ratio``.  One ``StepScheduler`` per
engine (= per worker) steps the whole batch on one timer (engines/scheduler.py), so at a huge
speedup all tokens come out in one batch (the request plane then sends them in one frame).
Output tokens are drawn from the tokenizer's vocabulary, so the text is made of real tokens and
usage counts are real; chat
prompts use the tokenizer's chat template when it has one (``text.chat_prompt``).
"""

from __future__ import annotations

import asyncio
import random
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
)
from drivetrain.runtime.engines.scheduler import StepScheduler

KV_CAPACITY_TOKENS = 16384 * 64  # Dynamo mocker defaults: 16384 blocks of 64 tokens
DEFAULT_MAX_TOKENS = 16
MIN_SLEEP_S = 0.001


def prefill_ms(prompt_tokens: int) -> float:
    t = float(prompt_tokens)
    return 4.209989e-07 * t * t + 1.518344e-02 * t + 16.50142


def decode_ms(kv_utilisation: float) -> float:
    u = kv_utilisation
    return max(1.0, -25.74 * u * u + 54.01 * u + 5.74)


class MockerEngine:
    def __init__(
        self,
        model_path: str | None = None,
        speedup_ratio: float = 1.0,
        model_types: tuple[ModelType, ...] = ("chat", "completions"),
        seed: int | None = None,
    ) -> None:
        if speedup_ratio <= 0:
            raise ValueError("--speedup-ratio: expected a number > 0")
        self._model_path = model_path
        self._speedup = speedup_ratio
        self._model_types = model_types
        self._tokenizer = text.load_tokenizer(model_path)
        self._chat_template = text.ChatTemplate.load(model_path)
        self._pieces = self._tokenizer.sample_pieces(256)
        self._random = random.Random(seed)
        self._scheduler = StepScheduler(self._step_seconds)

    def _step_seconds(self, active_kv: int) -> float:
        return decode_ms(active_kv / KV_CAPACITY_TOKENS) / 1000.0 / self._speedup

    def info(self) -> ModelInfo:
        return ModelInfo(
            model_types=self._model_types,
            tokenizer=self._model_path,
            context_length=text.context_length(self._model_path),
        )

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def generate(self, op: Op, body: dict[str, Any]) -> AsyncIterator[Chunk | Finish]:
        if op == "chat":
            prompt = text.chat_prompt(body["messages"], self._chat_template)
        else:
            prompt = text.completion_prompt(body["prompt"])
        prompt_tokens = self._tokenizer.count(prompt)
        limit = text.max_tokens(body, DEFAULT_MAX_TOKENS)
        if limit > 0:
            prefill_s = prefill_ms(prompt_tokens) / 1000.0 / self._speedup
            seq = self._scheduler.add(prompt_tokens, limit, prefill_s)
            pieces = self._pieces
            choose = self._random.choice
            try:
                sent = 0
                while sent < limit:
                    # Every token due now at once: the worker sends them in one frame.
                    due = await seq.take()
                    for _ in range(due):
                        yield Chunk(choose(pieces), 1)
                    sent += due
            finally:
                self._scheduler.remove(seq)
        yield Finish("length", prompt_tokens, max(limit, 0))

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        inputs = text.embedding_inputs(body)
        tokens = sum(self._tokenizer.count(s) for s in inputs)
        owed = prefill_ms(tokens) / 1000.0 / self._speedup
        if owed >= MIN_SLEEP_S:
            await asyncio.sleep(owed)
        return Embeddings([text.hash_vector(s) for s in inputs], tokens)
