"""A prompt's token ids in the frontend, for KV routing, with recent prompt prefixes cached.

Where this runs follows the one tokenization rule (``tokens.py``): only when the frontend has
the model's tokenizer files.  The prompt is the text the worker would build (the model's chat
template, ``PromptCounter.prompt``); for an ``http`` engine, which forwards ``messages`` to a
server that templates them itself, it is the text this frontend's template produces, hashed
for routing only (docs/kv-routing.md).

Multi-turn traffic re-sends the same system prompt and history every turn, so the prompt is cut
into segments at word starts (before a space, once a segment has ``SEGMENT_CHARS``
characters: a boundary byte-level BPE pre-tokenizers never merge across) and each segment's ids
are kept in a bounded LRU.  A turn then tokenizes only its new text.  The cut points depend on
the text before them only, so a prompt and its continuation share their leading segments, and
the same prefix always gives the same ids (and the same block hashes).  The ids can differ from
tokenizing the whole prompt at once only where a tokenizer merges across a word start; the
worker uses these ids (it does not tokenize again), so routing and its cache agree either way.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from drivetrain.runtime.engines.text import INLINE_TOKENIZE_CHARS, PromptCounter

SEGMENT_CHARS = 256
DEFAULT_MAX_SEGMENTS = 16384  # about 4 MiB of prompt text remembered per frontend


def segments(text: str, size: int = SEGMENT_CHARS) -> list[str]:
    """``text`` cut before a space that follows a non-space, each piece at least ``size``
    characters (the last one may be shorter)."""
    out: list[str] = []
    start = 0
    n = len(text)
    while n - start > size:
        cut = text.find(" ", start + size)
        while cut != -1 and text[cut - 1].isspace():
            cut = text.find(" ", cut + 1)
        if cut == -1:
            break
        out.append(text[start:cut])
        start = cut
    out.append(text[start:])
    return out


class PromptIds:
    def __init__(self, max_segments: int = DEFAULT_MAX_SEGMENTS) -> None:
        self.max_segments = max_segments
        self._lru: OrderedDict[tuple[int, str], list[int]] = OrderedDict()
        self._prefix: dict[int, list[int]] = {}  # counter -> ids its tokenizer puts first
        self.hits = 0
        self.misses = 0

    async def ids(self, counter: PromptCounter, op: str, body: dict[str, Any]) -> list[int]:
        """The prompt's ids (chat: as templated; completions: with the tokenizer's leading
        special tokens, as the worker counts them)."""
        prompt = counter.prompt(op, body)
        key = id(counter)
        lru = self._lru
        pieces = segments(prompt)
        found: list[list[int] | None] = []
        missing: list[str] = []
        for piece in pieces:
            ids = lru.get((key, piece))
            if ids is None:
                missing.append(piece)
            else:
                lru.move_to_end((key, piece))
            found.append(ids)
        self.hits += len(pieces) - len(missing)
        self.misses += len(missing)
        if missing:
            tokenizer = counter.tokenizer
            if sum(len(m) for m in missing) > INLINE_TOKENIZE_CHARS:
                made = await asyncio.to_thread(tokenizer.ids_many, missing)
            else:
                made = tokenizer.ids_many(missing)
            fresh = iter(made)
            for i, piece in enumerate(pieces):
                if found[i] is None:
                    ids = next(fresh)
                    found[i] = ids
                    lru[(key, piece)] = ids
            while len(lru) > self.max_segments:
                lru.popitem(last=False)
        out: list[int] = []
        if op == "completions":
            prefix = self._prefix.get(key)
            if prefix is None:
                prefix = self._prefix[key] = counter.tokenizer.ids("", special=True)
            out.extend(prefix)
        for ids in found:
            assert ids is not None
            out.extend(ids)
        return out
