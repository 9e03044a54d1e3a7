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
