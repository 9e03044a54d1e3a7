"""Limits on what a request may ask: strict OpenAI types, and the model's context length.

The context rule is tested both ways it is enforced: counted in the frontend (it reads the
tokenizer folder the worker registered, or one under ``--tokenizer-root``), refused before the
request reaches any worker; and counted in the worker when the frontend cannot read the
tokenizer, its error frame turned into the same 400.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from drivetrain.runtime.engines.base import ModelInfo
from drivetrain.runtime.engines.echo import EchoEngine
from drivetrain.runtime.engines.mocker import MockerEngine
from drivetrain.runtime.engines.text import PromptCounter
from tests.runtime.serving_support import Stack, serving_stack, small_context_model

CONTEXT = 64
MESSAGES = [{"role": "user", "content": "the quick brown fox"}]


async def post(url: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url + path, json=body) as resp:
        return resp.status, await resp.json(content_type=None)


# ---- strict types --------------------------------------------------------------------------

CHAT = {"model": "tiny", "messages": MESSAGES}
COMPLETION = {"model": "tiny", "prompt": "abc"}
EMBEDDING = {"model": "tiny", "input": "abc"}
STRICT_CASES = [
    ("/v1/chat/completions", {**CHAT, "max_tokens": "12"}, "max_tokens", "an integer"),
    ("/v1/chat/completions", {**CHAT, "max_tokens": 12.0}, "max_tokens", "an integer"),
    ("/v1/chat/completions", {**CHAT, "max_tokens": True}, "max_tokens", "an integer"),
    ("/v1/chat/completions", {**CHAT, "stream": "yes"}, "stream", "a boolean"),
    ("/v1/chat/completions", {**CHAT, "stream": 1}, "stream", "a boolean"),
    ("/v1/chat/completions", {**CHAT, "temperature": "0.5"}, "temperature", "a number"),
    ("/v1/chat/completions", {**CHAT, "seed": "7"}, "seed", "an integer"),
    ("/v1/chat/completions", {**CHAT, "logprobs": 1}, "logprobs", "a boolean"),
    (
        "/v1/chat/completions",
        {**CHAT, "stream": True, "stream_options": {"include_usage": "yes"}},
        "stream_options.include_usage",
        "a boolean",
    ),
    (
        "/v1/chat/completions",
        {**CHAT, "messages": [{"role": "user", "content": 5}]},
        "messages.0.content",
        "a string or an array",
    ),
    ("/v1/chat/completions", {**CHAT, "stop": ["x", 1]}, "stop", "a string or an array of strings"),
    ("/v1/completions", {**COMPLETION, "max_tokens": "12"}, "max_tokens", "an integer"),
    ("/v1/completions", {**COMPLETION, "stream": "true"}, "stream", "a boolean"),
    ("/v1/completions", {**COMPLETION, "echo": "no"}, "echo", "a boolean"),
    ("/v1/completions", {**COMPLETION, "logprobs": True}, "logprobs", "an integer"),
    ("/v1/embeddings", {**EMBEDDING, "dimensions": "8"}, "dimensions", "an integer"),
    (
        "/v1/embeddings",
        {**EMBEDDING, "input": ["a", 2]},
        "input",
        "a string or an array of strings",
    ),
    ("/v1/embeddings", {**EMBEDDING, "user": 3}, "user", "a string"),
]


async def test_types_are_strict_on_every_route_and_each_400_names_the_field() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine())  # serves all three routes
        for path, body, field, expected in STRICT_CASES:
            status, reply = await post(stack.url, path, body)
            error = reply["error"]
            assert (status, error["param"], error["code"]) == (400, field, "invalid_type"), body
            assert error["message"].startswith(f"{field}: expected {expected}"), error["message"]
        # The same values with their right types are served.
        for path, body in [
            ("/v1/chat/completions", {**CHAT, "max_tokens": 12, "stream": False, "seed": 7}),
            ("/v1/completions", {**COMPLETION, "temperature": 1, "echo": False}),
            ("/v1/embeddings", {**EMBEDDING, "dimensions": 8}),
        ]:
            assert (await post(stack.url, path, body))[0] == 200


# ---- context limits, counted in the frontend ----------------------------------------------


def mocker(model: Path, **kwargs: Any) -> MockerEngine:
    return MockerEngine(model_path=str(model), speedup_ratio=1e6, **kwargs)


def prompt_tokens(model: Path, messages: list[dict[str, Any]]) -> int:
    counter = PromptCounter(str(model))
    return counter.tokenizer.count(counter.prompt("chat", {"messages": messages}))


def reached_worker(stack: Stack) -> bool:
    """Whether the frontend ever sent anything to the (only) worker."""
    return any(client._transport is not None for client in stack.frontend.table.clients())


async def test_a_prompt_over_the_context_is_400_before_any_worker_sees_it(tmp_path: Path) -> None:
    model = small_context_model(tmp_path, CONTEXT)
    long = [{"role": "user", "content": "word " * 100}]
    p = prompt_tokens(model, long)
    assert p > CONTEXT
    async with serving_stack() as stack:
        await stack.add_worker(mocker(model))
        with pytest.raises(openai.BadRequestError) as err:
            await stack.client().chat.completions.create(model="tiny", messages=long)  # type: ignore[arg-type]
        assert err.value.code == "context_length_exceeded"
        assert err.value.param == "messages"  # type: ignore[attr-defined]
        assert err.value.body["message"] == (  # type: ignore[index]
            f"This model's maximum context length is {CONTEXT} tokens. However, you requested "
            f"{p + 1} tokens ({p} in the messages, 1 in the completion). Please reduce the "
            "length of the messages or completion."
        )
        assert not reached_worker(stack)
        assert stack.frontend.frontend.metrics.rejected[("tiny", "context_length")] == 1


async def test_max_tokens_over_the_room_left_is_400_with_both_counts(tmp_path: Path) -> None:
    model = small_context_model(tmp_path, CONTEXT)
    p = prompt_tokens(model, MESSAGES)
    async with serving_stack() as stack:
        await stack.add_worker(mocker(model))
        client = stack.client()
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(
                model="tiny",
                messages=MESSAGES,  # type: ignore[arg-type]
                max_tokens=CONTEXT - p + 1,
            )
        assert f"you requested {CONTEXT + 1} tokens ({p} in the messages, " in err.value.message
        assert f"{CONTEXT - p + 1} in the completion)" in err.value.message
        assert not reached_worker(stack)
        # Exactly the room left is fine; so is max_completion_tokens, which wins.
        reply = await client.chat.completions.create(
            model="tiny",
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=CONTEXT - p,
        )
        assert reply.usage is not None and reply.usage.completion_tokens == CONTEXT - p
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="tiny",
                messages=MESSAGES,  # type: ignore[arg-type]
                max_tokens=1,
                max_completion_tokens=CONTEXT,
            )


async def test_without_max_tokens_a_request_gets_the_room_left(tmp_path: Path) -> None:
    model = small_context_model(tmp_path, CONTEXT)
    p = prompt_tokens(model, MESSAGES)
    async with serving_stack() as stack:
        await stack.add_worker(mocker(model))
        client = stack.client()
        reply = await client.chat.completions.create(model="tiny", messages=MESSAGES)  # type: ignore[arg-type]
        assert reply.usage is not None
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (p, CONTEXT - p)
        stream = await client.completions.create(
            model="tiny",
            prompt="hello world",
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        completion_prompt = PromptCounter(str(model)).tokenizer.count("hello world", special=True)
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == CONTEXT - completion_prompt


async def test_a_huge_prompt_is_refused_at_once_without_tokenizing_it(tmp_path: Path) -> None:
    """The 3 MB prompt of the issue: a lower bound from its byte length already exceeds the
    context, so neither the frontend nor the worker spends seconds tokenizing it."""
    model = small_context_model(tmp_path, 4096)
    async with serving_stack() as stack:
        await stack.add_worker(mocker(model))
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": "The quick brown fox. " * 150_000}],
            "max_tokens": 4,
        }
        status, reply = await post(stack.url, "/v1/chat/completions", body)
        assert status == 400
        assert reply["error"]["code"] == "context_length_exceeded"
        assert "you requested at least " in reply["error"]["message"]
        assert not reached_worker(stack)


async def test_a_prompt_whose_length_proves_it_fits_is_not_tokenized(tmp_path: Path) -> None:
    from drivetrain.runtime.frontend.tokens import PromptTokens

    model = str(small_context_model(tmp_path, CONTEXT))
    tokens = PromptTokens()
    short = {"model": "tiny", "messages": MESSAGES, "max_tokens": 4}
    size = len(json.dumps(short))
    assert await tokens.check("tiny", model, CONTEXT, "chat", short, size) is None
    near = {"model": "tiny", "messages": MESSAGES, "max_tokens": CONTEXT - 20}
    size = len(json.dumps(near))
    assert await tokens.check("tiny", model, CONTEXT, "chat", near, size) == prompt_tokens(
        Path(model), MESSAGES
    )


async def test_a_template_that_adds_more_than_estimated_is_caught_by_the_worker(
    tmp_path: Path,
) -> None:
    """The frontend's size estimate assumes a template adds about what it adds to empty
    messages; one that prints each message eight times defeats it, and the worker's count
    still refuses the request, with the same 400."""
    model = small_context_model(tmp_path, 4096)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["chat_template"] = (
        "{% for m in messages %}{% for i in range(8) %}{{ m['content'] }}{% endfor %}"
        "{% endfor %}assistant:"
    )
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    messages = [{"role": "user", "content": "word " * 300}]
    counter = PromptCounter(str(model))
    p = counter.tokenizer.count(counter.prompt("chat", {"messages": messages}))
    body = {"model": "tiny", "messages": messages, "max_tokens": 4096 - 2000}
    assert counter.fits_by_size("chat", body, len(json.dumps(body)), 4096)  # wrongly, here
    assert p + body["max_tokens"] > 4096
    async with serving_stack() as stack:
        await stack.add_worker(mocker(model))
        status, reply = await post(stack.url, "/v1/chat/completions", body)
        assert status == 400 and reply["error"]["code"] == "context_length_exceeded"
        assert reached_worker(stack)


# ---- counted in the worker ----------------------------------------------------------------


class TokenizerElsewhere(MockerEngine):
    """A mocker that registers a tokenizer folder this frontend cannot read (as when the
    frontend runs in another pod without the model volume)."""

    def info(self) -> ModelInfo:
        return dataclasses.replace(super().info(), tokenizer="/nonexistent/model-volume/tiny")


async def test_without_the_tokenizer_the_worker_refuses_and_the_frontend_answers_400(
    tmp_path: Path,
) -> None:
    model = small_context_model(tmp_path, CONTEXT)
    long = [{"role": "user", "content": "word " * 100}]
    p = prompt_tokens(model, long)
    engine = TokenizerElsewhere(model_path=str(model), speedup_ratio=1e6)
    async with serving_stack() as stack:
        await stack.add_worker(engine)
        for stream in (False, True):
            status, reply = await post(
                stack.url,
                "/v1/chat/completions",
                {"model": "tiny", "messages": long, "stream": stream},
            )
            assert status == 400
            assert reply["error"]["code"] == "context_length_exceeded"
            assert reply["error"]["param"] == "messages"
            assert f"({p} in the messages, 1 in the completion)" in reply["error"]["message"]
        assert reached_worker(stack)  # the worker counted
        assert engine.slots.running == 0  # and refused before generating anything
        # A huge prompt: the worker too refuses it on its byte length, without tokenizing.
        huge = [{"role": "user", "content": "The quick brown fox. " * 150_000}]
        status, reply = await post(
            stack.url, "/v1/chat/completions", {"model": "tiny", "messages": huge}
        )
        assert status == 400 and "you requested at least " in reply["error"]["message"]


async def test_a_tokenizer_root_lets_the_frontend_count_for_a_remote_worker(tmp_path: Path) -> None:
    model = small_context_model(tmp_path, CONTEXT)
    root = tmp_path / "tokenizers"
    root.mkdir()
    (root / "tiny").symlink_to(model, target_is_directory=True)
    long = [{"role": "user", "content": "word " * 100}]
    async with serving_stack(tokenizer_root=str(root)) as stack:
        await stack.add_worker(TokenizerElsewhere(model_path=str(model), speedup_ratio=1e6))
        status, reply = await post(
            stack.url, "/v1/chat/completions", {"model": "tiny", "messages": long}
        )
        assert status == 400 and reply["error"]["code"] == "context_length_exceeded"
        assert not reached_worker(stack)
