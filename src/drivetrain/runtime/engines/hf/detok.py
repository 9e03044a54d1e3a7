"""Incremental detokenisation: the text each new token adds, never half a character.

Decoding one token at a time is wrong twice over: a byte-level BPE token may hold only part of a
UTF-8 character (it decodes to U+FFFD until the rest arrives), and SentencePiece-style
tokenizers drop a leading space when a token is decoded alone.  So each step decodes a short
window of tokens twice, with and without the new ones, and emits the difference once it no
longer ends in U+FFFD (the scheme vLLM and text-generation-inference use).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"
CONTEXT_TOKENS = 5  # prompt tokens kept as left context for the first decoded window


class IncrementalDetokenizer:
    def __init__(self, decode: Callable[[Sequence[int]], str], prompt_ids: Sequence[int]) -> None:
        self._decode = decode
        self.ids: list[int] = list(prompt_ids[-CONTEXT_TOKENS:])
        self._prefix = 0  # window start
        self._read = len(self.ids)  # tokens before this are already in the emitted text

    def add(self, token_id: int) -> str:
        """Append one token; the text that can be emitted now ("" while a character is split)."""
        self.ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """The text still held back (a character that never completed comes out as U+FFFD)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) <= len(before) or (after.endswith(REPLACEMENT) and not final):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        # Keep the window short: only the context the next decode needs.
        if self._prefix > 64:
            drop = self._prefix
            self.ids = self.ids[drop:]
            self._prefix -= drop
            self._read -= drop
        return after[len(before) :]
