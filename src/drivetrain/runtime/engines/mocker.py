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

Limits, as an engine has them: a prompt and ``max_tokens`` must fit the context length
(config.json's ``max_position_embeddings``; without ``max_tokens`` the request gets the room
left), and at most ``max_num_seqs`` requests holding ``num_blocks`` KV blocks run at once
(``engines/slots.py``; Dynamo's mocker defaults); the others wait in the worker.

Prefix cache (on by default, as in Dynamo's mocker): the prompt's full ``block_size``-token
blocks are hashed in a chain (``kv/blocks.py``) and looked up in an LRU of ``num_blocks``
blocks (``kv/cache.py``); prefill time counts only the uncached tokens, the blocks are stored
once the prefill is done, and every store and eviction is an event the worker sends to its
frontends (docs/kv-routing.md).  A ``prefill`` instance only computes prompts (``prefill``);
a ``decode`` instance given a prompt computed elsewhere waits for the simulated KV transfer
(``kv_transfer_us_per_token``) instead of the prefill.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from drivetrain.runtime.engines import text
from drivetrain.runtime.engines.base import (
    Embeddings,
    Finish,
    ModelInfo,
    ModelType,
    Op,
    Prefilled,
    Tokens,
    TokenTexts,
    WeightsDelegated,
    relay,
)
from drivetrain.runtime.engines.scheduler import StepScheduler
from drivetrain.runtime.engines.simweights import SimulatedWeights
from drivetrain.runtime.engines.slots import BatchSlots
from drivetrain.runtime.kv.blocks import block_hashes
from drivetrain.runtime.kv.cache import PrefixCache

# Dynamo's mocker defaults: 16384 KV blocks of 64 tokens, 256 sequences at once.
DEFAULT_NUM_BLOCKS = 16384
DEFAULT_BLOCK_SIZE = 64
DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_MAX_TOKENS = 16  # without a context length (no config.json) and no max_tokens
MIN_SLEEP_S = 0.001
VOCAB_SIZE = 32000  # token ids /v1/generate draws from (a Llama-sized vocabulary)
# The KV transfer from a prefill to a decode instance, per prompt token: an 8B-class model
# (32 layers x 8 KV heads x 128 dims x K and V x 2 bytes = 128 KiB of KV per token) over
# Dynamo's mocker's 64 GB/s (docs/kv-routing.md).
DEFAULT_KV_TRANSFER_US_PER_TOKEN = 2.0
DISAGGREGATION_MODES = ("agg", "prefill", "decode")


def prefill_ms(prompt_tokens: int) -> float:
    t = float(prompt_tokens)
    return 4.209989e-07 * t * t + 1.518344e-02 * t + 16.50142


def decode_ms(kv_utilisation: float) -> float:
    u = kv_utilisation
    return max(1.0, -25.74 * u * u + 54.01 * u + 5.74)


class MockerEngine(WeightsDelegated):
    def __init__(
        self,
        model_path: str | None = None,
        speedup_ratio: float = 1.0,
        model_types: tuple[ModelType, ...] = ("chat", "completions"),
        seed: int | None = None,
        max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
        num_blocks: int = DEFAULT_NUM_BLOCKS,
        block_size: int = DEFAULT_BLOCK_SIZE,
        context_length: int | None = None,
        weight_load_s: float = 0.0,
        fail_versions: tuple[str, ...] | None = None,
        prefix_caching: bool = True,
        disaggregation_mode: str = "agg",
        kv_transfer_us_per_token: float = DEFAULT_KV_TRANSFER_US_PER_TOKEN,
    ) -> None:
        if speedup_ratio <= 0:
            raise ValueError("--speedup-ratio: expected a number > 0")
        if disaggregation_mode not in DISAGGREGATION_MODES:
            raise ValueError(
                f"--disaggregation-mode: expected one of {', '.join(DISAGGREGATION_MODES)}, "
                f"got {disaggregation_mode!r}"
            )
        if kv_transfer_us_per_token < 0:
            raise ValueError("--kv-transfer-us-per-token: expected a number >= 0")
        self.disaggregation_mode = disaggregation_mode
        self.kv_transfer_us_per_token = kv_transfer_us_per_token
        self._model_path = model_path
        self._speedup = speedup_ratio
        self._model_types = model_types
        self._prompts = text.PromptCounter(model_path)
        self._tokenizer = self._prompts.tokenizer
        self._context = context_length or text.context_length(model_path)
        self._pieces = self._tokenizer.sample_pieces(256)
        self._random = random.Random(seed)
        self.slots = BatchSlots(max_num_seqs, num_blocks, block_size)
        self._kv_capacity_tokens = num_blocks * block_size
        #: its prefix cache, whose events the worker sends to frontends (None: no caching)
        self.kv_cache = PrefixCache(num_blocks) if prefix_caching else None
        self._scheduler = StepScheduler(self._step_seconds)
        self.weights = SimulatedWeights(weight_load_s, fail_versions)

    def _step_seconds(self, active_kv: int) -> float:
        return decode_ms(active_kv / self._kv_capacity_tokens) / 1000.0 / self._speedup

    def info(self) -> ModelInfo:
        return ModelInfo(
            model_types=self._model_types,
            tokenizer=self._model_path,
            context_length=self._context,
            capacity=self.slots.max_seqs,
            kv_block_size=self.slots.block_size if self.kv_cache is not None else None,
            role=None if self.disaggregation_mode == "agg" else self.disaggregation_mode,
        )

    def capacity(self) -> int:
        return self.slots.capacity()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def generate(self, op: Op, body: dict[str, Any]) -> AsyncIterator[TokenTexts | Finish]:
        return relay(
            lambda push: self.generate_into(op, body, None, lambda texts: push(TokenTexts(texts)))
        )

    async def _prompt_ids(self, op: str, body: dict[str, Any], ids: list[int] | None) -> list[int]:
        if ids is not None:
            return ids  # tokenized by the frontend (docs/kv-routing.md): not tokenized twice
        return await self._prompts.ids(op, body, self._context)

    def _cached_blocks(self, hashes: list[int]) -> int:
        return self.kv_cache.match(hashes) if self.kv_cache is not None else 0

    def _store(self, hashes: list[int]) -> None:
        if self.kv_cache is not None:
            self.kv_cache.store(hashes)

    async def generate_into(
        self,
        op: Op,
        body: dict[str, Any],
        prompt_ids: list[int] | None,
        push: Callable[[list[str]], None],
        transferred: bool = False,
    ) -> Finish:
        """Generate for ``body``, handing ``push`` the texts of the tokens due at each of the
        scheduler's wake-ups (one draw per batch, not per token); the worker sends each batch
        in one frame.  ``transferred``: a decode instance's request whose prompt a prefill
        instance computed; instead of the prefill it waits for the KV transfer
        (docs/kv-routing.md)."""
        ids = await self._prompt_ids(op, body, prompt_ids)
        prompt_tokens = len(ids)
        # Refused here, before any simulated prefill, when it does not fit the context.
        limit = text.completion_limit(op, body, prompt_tokens, self._context, DEFAULT_MAX_TOKENS)
        cached = 0
        if limit > 0:
            blocks = self.slots.blocks_for(prompt_tokens + limit)
            await self.slots.acquire(blocks)
            try:
                hashes = block_hashes(ids, self.slots.block_size)
                cached = self._cached_blocks(hashes) * self.slots.block_size
                if transferred:
                    prefill_s = self.transfer_seconds(prompt_tokens - cached)
                else:
                    prefill_s = prefill_ms(prompt_tokens - cached) / 1000.0 / self._speedup
                pieces = self._pieces
                draw = self._random.choices
                prefilled = False

                def deliver(due: int) -> None:
                    nonlocal prefilled
                    if not prefilled:
                        prefilled = True
                        self._store(hashes)  # its blocks are in the cache now
                    push(draw(pieces, k=due))

                seq = self._scheduler.add(prompt_tokens, limit, prefill_s, deliver)
                try:
                    await seq.done
                finally:
                    self._scheduler.remove(seq)
            finally:
                self.slots.release(blocks)
        return Finish("length", prompt_tokens, max(limit, 0), cached)

    def transfer_seconds(self, tokens: int) -> float:
        """The simulated KV transfer from a prefill instance: ``kv_transfer_us_per_token``."""
        return tokens * self.kv_transfer_us_per_token / 1e6 / self._speedup

    async def prefill(
        self, op: Op, body: dict[str, Any], prompt_ids: list[int] | None
    ) -> Prefilled:
        """A prefill instance's part of a disaggregated request: the prompt's KV computed (its
        uncached part, on the same timing model) and cached; no token generated."""
        ids = await self._prompt_ids(op, body, prompt_ids)
        prompt_tokens = len(ids)
        text.completion_limit(op, body, prompt_tokens, self._context, DEFAULT_MAX_TOKENS)
        blocks = self.slots.blocks_for(prompt_tokens)
        await self.slots.acquire(blocks)
        try:
            hashes = block_hashes(ids, self.slots.block_size)
            cached = self._cached_blocks(hashes) * self.slots.block_size
            owed = prefill_ms(prompt_tokens - cached) / 1000.0 / self._speedup
            if owed >= MIN_SLEEP_S:
                await asyncio.sleep(owed)
            self._store(hashes)
        finally:
            self.slots.release(blocks)
        return Prefilled(prompt_tokens, cached)

    # ---- the RL API: token-in/token-out (its weights: WeightsDelegated) -------------------

    def generate_tokens(self, body: dict[str, Any]) -> AsyncIterator[Tokens | Finish]:
        """The same simulated timing as ``generate``, with token ids in and out."""
        return relay(lambda push: self._tokens_into(body, push))

    async def _tokens_into(self, body: dict[str, Any], push: Callable[[Tokens], None]) -> Finish:
        prompt_tokens = len(body["token_ids"])
        sampling = body.get("sampling") or {}
        limit = text.completion_limit(
            "completions", sampling, prompt_tokens, self._context, DEFAULT_MAX_TOKENS
        )
        want_logprobs = sampling.get("logprobs") is not None
        draw = self._random.randrange
        if limit > 0:
            blocks = self.slots.blocks_for(prompt_tokens + limit)
            await self.slots.acquire(blocks)
            try:
                prefill_s = prefill_ms(prompt_tokens) / 1000.0 / self._speedup

                def deliver(due: int) -> None:
                    ids = [draw(VOCAB_SIZE) for _ in range(due)]
                    # A plausible logprob per token (the mocker has no distribution).
                    lps = [-self._random.random() * 4 for _ in ids] if want_logprobs else None
                    push(Tokens(ids, lps))

                seq = self._scheduler.add(prompt_tokens, limit, prefill_s, deliver)
                try:
                    await seq.done
                finally:
                    self._scheduler.remove(seq)
            finally:
                self.slots.release(blocks)
        return Finish("length", prompt_tokens, max(limit, 0))

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        inputs = text.embedding_inputs(body)
        tokens = sum(self._tokenizer.count(s) for s in inputs)
        owed = prefill_ms(tokens) / 1000.0 / self._speedup
        if owed >= MIN_SLEEP_S:
            await asyncio.sleep(owed)
        return Embeddings([text.hash_vector(s) for s in inputs], tokens)
