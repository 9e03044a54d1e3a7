"""The mocker engine: Dynamo's timing model, real token counts, batching at high speedup."""

from __future__ import annotations

import pytest

from drivetrain.runtime.engines.base import EngineError, Finish, TokenTexts
from drivetrain.runtime.engines.mocker import MockerEngine, decode_ms, prefill_ms
from drivetrain.runtime.engines.text import ChatTemplate, HFTokenizer, chat_prompt
from tests.paths import shared


async def collect(engine: MockerEngine, op: str, body: dict) -> tuple[list[str], Finish]:
    """The text of every generated token, in order, and the finish."""
    items = [item async for item in engine.generate(op, body)]  # type: ignore[arg-type]
    *batches, finish = items
    assert isinstance(finish, Finish)
    # The mocker hands over the tokens that are due together as one item, a text per token.
    assert all(isinstance(b, TokenTexts) and b.texts for b in batches)
    return [text for b in batches for text in b.texts], finish  # type: ignore[union-attr]


def test_prefill_time_follows_dynamos_polynomial() -> None:
    assert prefill_ms(0) == pytest.approx(16.50142)
    assert prefill_ms(1000) == pytest.approx(4.209989e-07 * 1e6 + 15.18344 + 16.50142)


def test_decode_time_is_floored_at_one_millisecond() -> None:
    assert decode_ms(0.0) == pytest.approx(5.74)
    assert decode_ms(1.0) == pytest.approx(-25.74 + 54.01 + 5.74)
    assert decode_ms(3.0) == 1.0


async def test_usage_counts_come_from_the_model_folders_tokenizer() -> None:
    path = shared("models", "tiny")
    engine = MockerEngine(model_path=str(path), speedup_ratio=1e6)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a b c d"}]
    texts, finish = await collect(engine, "chat", {"messages": messages, "max_tokens": 9})
    # The shared tokenizer has a chat template, so the prompt is that template's text.
    prompt = chat_prompt(messages, ChatTemplate.load(path))
    assert prompt == "system: be brief\nuser: a b c d\nassistant:"
    assert finish.prompt_tokens == HFTokenizer(path).count(prompt)
    assert finish.completion_tokens == len(texts) == 9
    assert finish.finish_reason == "length"


async def test_without_a_model_path_words_are_tokens() -> None:
    engine = MockerEngine(speedup_ratio=1e6)
    _, finish = await collect(engine, "completions", {"prompt": "one two three", "max_tokens": 2})
    assert finish.prompt_tokens == 3
    assert finish.completion_tokens == 2


async def test_max_tokens_defaults_to_sixteen() -> None:
    texts, _ = await collect(MockerEngine(speedup_ratio=1e6), "completions", {"prompt": "x"})
    assert len(texts) == 16


async def test_output_text_is_made_of_real_vocabulary_tokens() -> None:
    path = shared("models", "tiny")
    engine = MockerEngine(model_path=str(path), speedup_ratio=1e6, seed=1)
    texts, _ = await collect(engine, "completions", {"prompt": "x", "max_tokens": 20})
    pieces = HFTokenizer(path).sample_pieces(256)
    assert len(texts) == 20
    assert all(text in pieces for text in texts)


async def test_a_token_id_prompt_is_rejected_as_a_client_error() -> None:
    with pytest.raises(EngineError) as err:
        await collect(MockerEngine(speedup_ratio=1e6), "completions", {"prompt": [1, 2, 3]})
    assert err.value.status == 400


def test_speedup_must_be_positive() -> None:
    with pytest.raises(ValueError, match="--speedup-ratio"):
        MockerEngine(speedup_ratio=0)


async def test_embeddings_count_tokenizer_tokens() -> None:
    path = shared("models", "tiny")
    engine = MockerEngine(model_path=str(path), speedup_ratio=1e6)
    result = await engine.embed({"input": ["hello world", "x"]})
    tokenizer = HFTokenizer(path)
    assert result.prompt_tokens == tokenizer.count("hello world") + tokenizer.count("x")
    assert len(result.vectors) == 2
