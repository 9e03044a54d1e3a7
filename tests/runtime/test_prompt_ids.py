"""The frontend's prompt ids for KV routing: segments cut where byte-level BPE never merges, the
same ids as tokenizing the whole prompt, and a turn's history served from the LRU."""

from __future__ import annotations

import random

from drivetrain.runtime.engines.text import PromptCounter
from drivetrain.runtime.frontend.prompt_ids import PromptIds, segments
from tests.runtime.serving_support import TINY

WORDS = ["alpha", "beta", "gamma", "delta", "x", "  two", "\n", "tab\t", "é", "日本"]


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def test_segments_rebuild_the_text_and_a_prefix_keeps_its_cuts() -> None:
    rng = random.Random(0)
    for _ in range(50):
        whole = text(rng, rng.randrange(1, 400))
        pieces = segments(whole, 32)
        assert "".join(pieces) == whole
        assert all(len(p) >= 32 for p in pieces[:-1])
        longer = segments(whole + " " + text(rng, 50), 32)
        assert longer[: len(pieces) - 1] == pieces[:-1]


async def test_ids_equal_whole_prompt_tokenization_and_reuse_the_history() -> None:
    counter = PromptCounter(str(TINY))
    ids = PromptIds()
    rng = random.Random(1)
    messages = [{"role": "system", "content": text(rng, 300)}]
    for turn in range(4):
        messages.append({"role": "user", "content": text(rng, 40)})
        body = {"messages": list(messages)}
        got = await ids.ids(counter, "chat", body)
        assert got == counter.tokenizer.ids(counter.prompt("chat", body))
        if turn:
            assert ids.hits > 0
        messages.append({"role": "assistant", "content": text(rng, 40)})
    misses = ids.misses
    await ids.ids(counter, "chat", body)
    assert ids.misses == misses  # the same prompt again: nothing tokenized
    completion = await ids.ids(counter, "completions", {"prompt": "hello there"})
    assert completion == counter.tokenizer.ids("hello there", special=True)
