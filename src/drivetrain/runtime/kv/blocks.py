"""Chained hashes of a prompt's full KV blocks, computed alike in the frontend and the worker.

A block is ``block_size`` consecutive prompt tokens; only full blocks are hashed (a partial last
block is never shared, as in vLLM).  Block ``i``'s hash covers its own tokens and the hash of
block ``i - 1``, so one hash names a whole prefix: two prompts share block ``i`` exactly when
they share every token up to its end.  Python's hash of a tuple of ints does not depend on
``PYTHONHASHSEED`` (only str and bytes hashes are salted), so every process computes the same
values; they fit a signed 64-bit integer, so they travel in JSON frames unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

ROOT_HASH = 0x5F3759DF  # the parent of the first block (any fixed value)


def block_hashes(tokens: Sequence[int], block_size: int, limit: int | None = None) -> list[int]:
    """The chained hash of every full block of ``tokens`` (at most ``limit`` blocks)."""
    count = len(tokens) // block_size
    if limit is not None:
        count = min(count, limit)
    out: list[int] = []
    parent = ROOT_HASH
    for i in range(count):
        start = i * block_size
        parent = hash((parent, *tokens[start : start + block_size]))
        out.append(parent)
    return out
