"""Prompt building and input parsing shared by the engines."""

from __future__ import annotations

import pytest

from drivetrain.runtime.engines.base import EngineError
from drivetrain.runtime.engines.text import (
    chat_prompt,
    completion_prompt,
    embedding_inputs,
    max_tokens,
    message_text,
)


def test_chat_prompt_joins_role_lines_and_opens_the_assistant_turn() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert chat_prompt(messages) == "system: be brief\nuser: hi\nassistant: "


def test_content_parts_keep_only_their_text() -> None:
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "b"},
    ]
    assert message_text(parts) == "ab"
    assert message_text(None) == ""


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert max_tokens({"max_tokens": 5, "max_completion_tokens": 7}, 16) == 7
    assert max_tokens({}, 16) == 16


def test_prompt_lists_of_strings_are_joined_and_token_ids_refused() -> None:
    assert completion_prompt(["a", "b"]) == "ab"
    with pytest.raises(EngineError):
        completion_prompt([[1, 2]])


def test_embedding_input_is_a_string_or_strings() -> None:
    assert embedding_inputs({"input": "x"}) == ["x"]
    with pytest.raises(EngineError):
        embedding_inputs({"input": [1, 2]})


def test_the_byte_bounds_hold_for_any_text() -> None:
    """``at_least`` <= count <= ``at_most``: the frontend skips counting on one bound and
    refuses a huge prompt on the other, so both must hold for every text."""
    import random

    from drivetrain.runtime.engines.text import HFTokenizer
    from tests.paths import shared

    tokenizer = HFTokenizer(shared("models", "tiny"))
    rng = random.Random(7)
    alphabet = "ab zé漢😀\n\t<>|_-0123456789" + "".join(chr(c) for c in range(0x20, 0x7F))
    texts = ["", " ", "hello world", "ééé", "😀" * 9, "user: hi\nassistant: "]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))) for _ in range(300)]
    for text in texts:
        for special in (False, True):
            count = tokenizer.count(text, special)
            upper = tokenizer.at_most(text, special)
            assert upper is not None and count <= upper, text
        assert tokenizer.at_least(text) <= tokenizer.count(text), text


def test_without_a_byte_level_tokenizer_there_are_no_bounds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import shutil

    from drivetrain.runtime.engines.text import HFTokenizer
    from tests.paths import shared

    shutil.copytree(shared("models", "tiny"), tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "Lowercase"}
    (tmp_path / "m" / "tokenizer.json").write_text(json.dumps(spec))
    tokenizer = HFTokenizer(tmp_path / "m")
    assert tokenizer.at_most("Hello") is None and tokenizer.at_least("Hello" * 1000) == 0
