"""The ``transformers`` engine: the ``Engine`` protocol over the generation thread.

The event loop renders the prompt (the tokenizer's chat template through
``apply_chat_template``, or the documented join when it has none), tokenizes it, checks the
sampling fields and the context length, then submits a ``Sequence`` to the scheduler and relays
what the thread sends back.  A client that goes away marks its stream cancelled; the thread
drops the row at its next step.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from drivetrain.runtime.engines import text
from drivetrain.runtime.engines.base import (
    Chunk,
    Embeddings,
    EngineError,
    Finish,
    ModelInfo,
    ModelType,
    Op,
    WeightSource,
)
from drivetrain.runtime.engines.hf.params import Defaults, sampling_params

DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_QUEUE = 64
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# The cap on new tokens when the request sets none and the config has no context length.
NO_CONTEXT_MAX_TOKENS = 4096


class TransformersEngine:
    def __init__(
        self,
        model_path: str,
        model_types: tuple[ModelType, ...] = ("chat", "completions"),
        device: str = "auto",
        dtype: str = "auto",
        max_batch: int = DEFAULT_MAX_BATCH,
        max_queue: int = DEFAULT_MAX_QUEUE,
        threads: int | None = None,
        context_length: int | None = None,
    ) -> None:
        folder = Path(model_path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"--model-path: {model_path}: expected a Hugging Face model folder "
                "(config.json, weights and tokenizer)"
            )
        if "embeddings" in model_types:
            raise ValueError("--model-types: the transformers engine serves chat and completions")
        if device not in DEVICES and not device.startswith("cuda:"):
            raise ValueError(
                f"--device: expected one of {', '.join(DEVICES)} or cuda:N, got {device!r}"
            )
        if dtype not in DTYPES:
            raise ValueError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
        if max_batch < 1:
            raise ValueError(f"--max-batch: expected at least 1, got {max_batch}")
        if max_queue < 0:
            raise ValueError(f"--max-queue: expected 0 or more, got {max_queue}")
        if threads is not None and threads < 1:
            raise ValueError(f"--threads: expected at least 1, got {threads}")
        self._threads = threads
        self.model_path = model_path
        self._model_types = model_types
        self._device = device
        self._dtype = dtype
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._context = context_length or text.context_length(model_path)
        self._defaults = Defaults.from_generation_config(
            _read_json(folder / "generation_config.json")
        )
        self._tokenizer: Any = None
        self._decode: Any = None
        self.scheduler: Any = None  # hf.scheduler.Scheduler once started
        self.model: Any = None  # the torch module: the one place weights live (update_weights)
        self._previous: dict[str, Any] | None = None  # what the last load replaced (rollback)

    def info(self) -> ModelInfo:
        return ModelInfo(
            model_types=self._model_types,
            tokenizer=self.model_path,
            context_length=self._context,
            capacity=self._max_batch,
        )

    def capacity(self) -> int:
        """``--max-batch`` while nothing waits for a place in the batch, else what runs."""
        if self.scheduler is None:
            return self._max_batch
        return self.scheduler.capacity()

    async def start(self) -> None:
        from drivetrain.runtime.engines.hf.batch import CausalLM
        from drivetrain.runtime.engines.hf.scheduler import Scheduler

        self.model, self._tokenizer = await asyncio.to_thread(self._load)
        lm = CausalLM(self.model)
        if self._context is None:
            self._context = getattr(self.model.config, "max_position_embeddings", None)
        backend = getattr(self._tokenizer, "backend_tokenizer", None)
        # The Rust tokenizer decodes without the Python wrapper's per-call overhead.
        source = backend if backend is not None else self._tokenizer
        self._decode = lambda ids: source.decode(list(ids), skip_special_tokens=True)
        self.scheduler = Scheduler(lm, self._eos_ids(), self._max_batch, self._max_queue)
        self.scheduler.start(asyncio.get_running_loop())

    def _load(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from drivetrain.runtime.engines.hf.weights import load_model, resolve_device

        if self._threads is not None:
            # torch's CPU thread pool is process-wide.  Small models gain nothing from splitting
            # each matmul, and on a busy machine OpenMP threads spin waiting for each other.
            torch.set_num_threads(self._threads)
        hf_logging.disable_progress_bar()  # a progress bar per load clutters `up`'s log
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
            model = load_model(self.model_path, resolve_device(self._device), self._dtype)
        except (OSError, ValueError) as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"--model-path: {self.model_path}: {first_line}") from None
        return model, tokenizer

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.model.generation_config, self.model.config, self._tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(v for v in value if isinstance(v, int))
        return ids

    async def close(self) -> None:
        if self.scheduler is not None:
            await asyncio.to_thread(self.scheduler.stop)
            self.scheduler = None

    def prompt_text(self, op: Op, body: dict[str, Any]) -> str:
        """The prompt as text: chat through the tokenizer's own template (or the join)."""
        tokenizer = self._tokenizer
        if op != "chat":
            return text.completion_prompt(body["prompt"])
        messages = body["messages"]
        if not getattr(tokenizer, "chat_template", None):
            return text.chat_prompt(messages)
        from jinja2 import TemplateError

        try:
            return str(
                tokenizer.apply_chat_template(
                    text.template_messages(messages), add_generation_prompt=True, tokenize=False
                )
            )
        except TemplateError as exc:
            raise EngineError(
                400, f"messages: the model's chat template refused them: {exc}"
            ) from None

    def encode(self, op: Op, prompt: str) -> list[int]:
        """Token ids; chat templates write their own special tokens, completions get the
        tokenizer's (as ``text.PromptCounter`` counts them)."""
        ids = self._tokenizer.encode(prompt, add_special_tokens=op != "chat")
        if not ids:
            raise EngineError(400, "prompt: must not be empty")
        return list(ids)

    async def prompt_ids(self, op: Op, body: dict[str, Any]) -> list[int]:
        prompt = self.prompt_text(op, body)
        if len(prompt) <= text.INLINE_TOKENIZE_CHARS:
            return self.encode(op, prompt)
        # A long prompt is tokenized off the event loop (the Rust tokenizer releases the GIL).
        return await asyncio.to_thread(self.encode, op, prompt)

    async def generate(self, op: Op, body: dict[str, Any]) -> AsyncIterator[Chunk | Finish]:
        from drivetrain.runtime.engines.hf.detok import IncrementalDetokenizer
        from drivetrain.runtime.engines.hf.sampling import generator_for
        from drivetrain.runtime.engines.hf.scheduler import Sequence, Stream

        if self.scheduler is None:
            raise EngineError(503, "the transformers engine is not started")
        params = sampling_params(body, self._defaults)
        ids = await self.prompt_ids(op, body)
        limit = text.completion_limit(op, body, len(ids), self._context, NO_CONTEXT_MAX_TOKENS)
        stream = Stream()
        sequence = Sequence(
            stream=stream,
            prompt=ids,
            params=params,
            limit=limit,
            generator=generator_for(params.seed, self.model.device),
            detok=IncrementalDetokenizer(self._decode, ids),
        )
        self.scheduler.submit(sequence)
        try:
            while True:
                item = await stream.queue.get()
                if isinstance(item, EngineError):
                    raise item
                yield item
                if isinstance(item, Finish):
                    return
        finally:
            stream.cancelled = True

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        raise EngineError(404, "the transformers engine serves chat and completions only")

    async def update_weights(self, path: str | Path) -> int:
        """Load a safetensors file into the model in place, between two generation steps.

        Every name and shape is checked before the first copy (``WeightsError``, nothing
        changed); the number of tensors copied on success.
        """
        from drivetrain.runtime.engines.hf.weights import update_in_place

        if self.scheduler is None:
            raise EngineError(503, "the transformers engine is not started")
        model = self.model
        future = self.scheduler.call_between_steps(lambda: update_in_place(model, path))
        return int(await asyncio.wrap_future(future))

    # ---- the RL API (docs/rl.md): load, keep or go back ----------------------------------

    async def load_weights(self, version: str, source: WeightSource) -> None:
        """Load ``source.path`` in place, keeping a copy of what it replaces until
        ``keep_weights`` or ``restore_weights``; a file that does not fit changes nothing and
        is a clean failure (the fleet rolls back)."""
        from drivetrain.runtime.engines.hf.weights import WeightsError, copy_of, weights_file
        from drivetrain.runtime.engines.simweights import nccl_not_implemented

        if source.nccl is not None or source.path is None:
            raise nccl_not_implemented()
        if self.scheduler is None:
            raise EngineError(503, "the transformers engine is not started")
        try:
            path = weights_file(source.path)
            model = self.model
            future = self.scheduler.call_between_steps(lambda: copy_of(model, path))
            saved = await asyncio.wrap_future(future)
            await self.update_weights(path)
        except WeightsError as exc:
            raise EngineError(400, str(exc), "bad_weights", "source.path") from None
        self._previous = saved

    async def restore_weights(self) -> bool:
        from drivetrain.runtime.engines.hf.weights import restore

        saved, self._previous = self._previous, None
        if saved and self.scheduler is not None:
            model = self.model
            await asyncio.wrap_future(
                self.scheduler.call_between_steps(lambda: restore(model, saved))
            )
        return True

    def keep_weights(self) -> None:
        self._previous = None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
