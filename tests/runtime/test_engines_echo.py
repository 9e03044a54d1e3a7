"""The echo engine repeats the last user message (or the prompt), one character per token."""

from __future__ import annotations

from drivetrain.runtime.engines.base import Chunk, Finish
from drivetrain.runtime.engines.echo import EchoEngine


async def run(body: dict, op: str = "chat") -> tuple[str, Finish]:
    items = [item async for item in EchoEngine().generate(op, body)]  # type: ignore[arg-type]
    text = "".join(i.text for i in items if isinstance(i, Chunk))
    finish = items[-1]
    assert isinstance(finish, Finish)
    return text, finish


async def test_chat_echoes_the_last_user_message() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "sec"}, {"type": "text", "text": "ond"}],
        },
    ]
    text, finish = await run({"messages": messages})
    assert text == "second"
    assert finish.finish_reason == "stop"
    assert finish.completion_tokens == 6


async def test_max_tokens_cuts_the_echo_and_reports_length() -> None:
    text, finish = await run({"prompt": "abcdef", "max_tokens": 4}, op="completions")
    assert text == "abcd"
    assert finish.finish_reason == "length"


async def test_embeddings_are_deterministic_per_input() -> None:
    engine = EchoEngine()
    a = await engine.embed({"input": ["x", "y"]})
    b = await engine.embed({"input": "x"})
    assert a.vectors[0] == b.vectors[0]
    assert a.vectors[0] != a.vectors[1]
