"""Prompt tokens counted in the frontend, so that a request over the context is refused before
it is queued or routed.

Where tokenization happens (one rule, shared with KV routing): the frontend counts whenever it
has the model's tokenizer files, that is the folder the worker registered (``ModelCard.tokenizer``)
when it is readable here, else ``<tokenizer root>/<model name>`` (``--tokenizer-root``, a shared
volume).  Otherwise the worker counts and refuses before generating, and its error frame becomes
the same 400 (``app.py``).  Counting is ``engines.text.PromptCounter``, the mocker's own, so both
sides count alike.

Counting costs the frontend only when a request may not fit: with a byte-level tokenizer a
request whose size already shows that it fits is neither rendered nor tokenized (the usual
case, ``PromptCounter.fits_by_size``), and one whose rendered prompt's byte length shows it is
not tokenized (``certainly_fits``).  A model's counter is loaded once (in a thread: a large tokenizer takes a while) and kept for
the frontend's life, keyed by folder; a folder that is not readable is remembered as such.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from drivetrain.runtime.engines.base import EngineError
from drivetrain.runtime.engines.text import PromptCounter, completion_limit
from drivetrain.runtime.frontend.errors import ApiError


def api_error(exc: EngineError) -> ApiError:
    return ApiError(exc.status, exc.message, exc.code or "invalid_value", exc.param)


class PromptTokens:
    def __init__(self, root: str | None = None) -> None:
        self.root = Path(root) if root else None
        self._counters: dict[str, asyncio.Future[PromptCounter | None]] = {}

    def folder(self, name: str, registered: str | None) -> str | None:
        """The tokenizer folder this frontend reads for a model, or None (the worker counts)."""
        for candidate in (registered, str(self.root / name) if self.root else None):
            if candidate and os.path.isfile(os.path.join(candidate, "tokenizer.json")):
                return candidate
        return None

    async def counter(self, name: str, registered: str | None) -> PromptCounter | None:
        key = f"{registered}\0{name}"
        future = self._counters.get(key)
        if future is None:
            future = self._counters[key] = asyncio.get_running_loop().create_future()
            folder = self.folder(name, registered)
            counter = None
            if folder is not None:
                try:
                    counter = await asyncio.to_thread(PromptCounter, folder)
                except (OSError, ValueError, ImportError):
                    counter = None  # unreadable after all: the worker counts
            future.set_result(counter)
        return await future

    async def check(
        self,
        name: str,
        registered: str | None,
        context: int | None,
        endpoint: str,
        body: dict[str, Any],
        body_bytes: int,
    ) -> int | None:
        """The prompt's tokens when this frontend counted them (None when it cannot, or did not
        need to: a byte-level tokenizer makes at most one token per byte, so a request whose
        size plus ``max_tokens`` fits needs no tokenizing, ``PromptCounter.fits_by_size`` and
        ``certainly_fits``); ApiError(400, ``context_length_exceeded``) when the prompt and
        ``max_tokens`` do not fit ``context``.  ``body_bytes``: the size of the JSON body."""
        if context is None or endpoint == "embeddings":
            return None
        counter = await self.counter(name, registered)
        if counter is None:
            return None
        if counter.fits_by_size(endpoint, body, body_bytes, context):
            return None  # the usual case: nothing rendered, nothing tokenized
        try:
            prompt = counter.prompt(endpoint, body)
            if counter.certainly_fits(endpoint, prompt, body, context):
                return None  # its byte length proves it: not tokenized
            prompt_tokens = await counter.count_prompt(endpoint, prompt, body, context)
            completion_limit(endpoint, body, prompt_tokens, context, 0)
        except EngineError as exc:
            raise api_error(exc) from None
        return prompt_tokens
