"""The torch-free parts of the transformers engine: detokenisation, stop strings, parameters."""

from __future__ import annotations

import pytest

from drivetrain.runtime.engines.base import EngineError
from drivetrain.runtime.engines.hf.detok import IncrementalDetokenizer
from drivetrain.runtime.engines.hf.params import Defaults, sampling_params
from drivetrain.runtime.engines.hf.stops import StopMatcher
from drivetrain.runtime.engines.text import HFTokenizer
from tests.paths import shared

TEXT = "héllo wörld → 世界 🙂 ok"


def tokenizer():  # type: ignore[no-untyped-def]
    return HFTokenizer(shared("models", "tiny"))._tok


def test_multibyte_characters_split_across_tokens_come_out_whole() -> None:
    tok = tokenizer()
    ids = tok.encode(TEXT, add_special_tokens=False).ids
    # The 334-token byte-level vocabulary spells 世, 界 and 🙂 byte by byte: each character
    # spans several tokens, and decoding one of them alone gives U+FFFD.
    assert any("\ufffd" in tok.decode([i]) for i in ids)
    detok = IncrementalDetokenizer(tok.decode, tok.encode("prompt", add_special_tokens=False).ids)
    pieces = [detok.add(i) for i in ids]
    pieces.append(detok.flush())
    assert "".join(pieces) == TEXT
    assert not any("\ufffd" in p for p in pieces)
    assert pieces.count("") >= 3  # the held-back steps


def test_a_character_that_never_completes_is_flushed_as_a_replacement() -> None:
    tok = tokenizer()
    first_byte_of_world = tok.encode("世", add_special_tokens=False).ids[0]
    detok = IncrementalDetokenizer(tok.decode, [])
    assert detok.add(tok.encode("a", add_special_tokens=False).ids[0]) == "a"
    assert detok.add(first_byte_of_world) == ""
    assert detok.flush() == "\ufffd"


def test_long_outputs_keep_a_short_decode_window() -> None:
    tok = tokenizer()
    ids = tok.encode("the quick brown fox " * 40, add_special_tokens=False).ids
    detok = IncrementalDetokenizer(tok.decode, [])
    out = "".join(detok.add(i) for i in ids) + detok.flush()
    assert out == "the quick brown fox " * 40
    assert len(detok.ids) < 80


def test_stop_strings_end_the_text_before_them_even_across_pieces() -> None:
    stops = StopMatcher(("STOP", "\n\n"))
    assert stops.feed("abc S") == "abc "  # "S" may start STOP: held back
    assert stops.feed("T") == ""
    assert stops.feed("OP and more") == ""
    assert stops.stopped


def test_held_text_that_turns_out_not_to_be_a_stop_is_released() -> None:
    stops = StopMatcher(("STOP",))
    assert stops.feed("a ST") == "a "
    assert stops.feed("ART") == "START"
    assert stops.feed("x S") == "x "
    assert stops.flush() == "S"
    assert not stops.stopped


def test_the_earliest_stop_string_wins() -> None:
    stops = StopMatcher(("world", "lo"))
    assert stops.feed("hello world") == "hel"


def test_sampling_fields_are_read_with_the_models_defaults() -> None:
    defaults = Defaults.from_generation_config({"temperature": 0.6, "top_p": 0.9})
    params = sampling_params({"max_tokens": 5, "seed": 3, "stop": "x"}, defaults)
    assert (params.max_tokens, params.temperature, params.top_p) == (5, 0.6, 0.9)
    assert (params.seed, params.stop) == (3, ("x",))
    assert sampling_params({"max_completion_tokens": 7, "max_tokens": 5}, defaults).max_tokens == 7
    assert sampling_params({}, Defaults()).max_tokens is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seed": "1"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"stop": 3}, "stop"),
        ({"stop": ["a", ""]}, "stop"),
        ({"stop": ["s"] * 17}, "stop"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_sampling_fields_are_client_errors_naming_the_field(body: dict, field: str) -> None:
    with pytest.raises(EngineError) as err:
        sampling_params(body, Defaults())
    assert err.value.status == 400
    assert err.value.message.startswith(f"{field}:")
