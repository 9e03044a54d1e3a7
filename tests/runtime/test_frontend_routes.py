"""The frontend's OpenAI routes against real workers, through the ``openai`` client and raw HTTP."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from drivetrain.runtime.engines.echo import EchoEngine
from drivetrain.runtime.engines.mocker import MockerEngine
from drivetrain.runtime.engines.text import ChatTemplate, HFTokenizer, chat_prompt
from tests.paths import shared
from tests.runtime.serving_support import chat_body, closed_port_address, serving_stack


def mocker() -> MockerEngine:
    return MockerEngine(model_path=str(shared("models", "tiny")), speedup_ratio=1e6)


async def post(url: str, path: str, **kwargs: object) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as session, session.post(url + path, **kwargs) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


async def test_models_list_is_empty_before_any_worker_registers() -> None:
    async with serving_stack() as stack:
        models = await stack.client().models.list()
        assert models.data == []


async def test_models_list_shows_a_registered_model_with_its_context_window() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(mocker())
        models = await stack.client().models.list()
        assert [m.id for m in models.data] == ["tiny"]
        assert models.data[0].model_extra["context_window"] > 0


async def test_chat_completion_returns_text_and_real_token_usage() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(mocker())
        reply = await stack.client().chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "the quick brown fox"}],
            max_tokens=7,
        )
        tokenizer = HFTokenizer(shared("models", "tiny"))
        template = ChatTemplate.load(shared("models", "tiny"))  # the mocker uses the template
        expected_prompt = tokenizer.count(
            chat_prompt([{"role": "user", "content": "the quick brown fox"}], template)
        )
        assert reply.choices[0].message.content
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 7
        assert reply.usage.prompt_tokens == expected_prompt


@pytest.mark.parametrize(
    ("event_per_token", "content_chunks"),
    [(False, 1), (True, 5)],
    ids=["one-event-per-write", "event-per-token"],
)
async def test_streamed_chat_chunks_and_usage(event_per_token: bool, content_chunks: int) -> None:
    # The mocker at full speed has all 5 tokens ready at once: by default one content chunk
    # carries them; --event-per-token gives each its own.  usage counts tokens either way.
    async with serving_stack(event_per_token=event_per_token) as stack:
        await stack.add_worker(mocker())
        stream = await stack.client().chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        contents = [
            c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
        ]
        assert len(contents) == content_chunks
        assert chunks[0].choices[0].delta.role == "assistant"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


async def test_sse_stream_ends_with_done() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(mocker())
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                stack.url + "/v1/chat/completions", json=chat_body(stream=True, max_tokens=3)
            ) as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            events = (await resp.text()).strip().split("\n\n")
        assert events[-1] == "data: [DONE]"
        assert all(e.startswith("data: ") for e in events)


async def test_completions_unary_and_streamed() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine())
        client = stack.client()
        reply = await client.completions.create(model="tiny", prompt="abc", max_tokens=10)
        assert reply.choices[0].text == "abc"
        assert reply.choices[0].finish_reason == "stop"
        stream = await client.completions.create(model="tiny", prompt="xyz", stream=True)
        assert "".join([c.choices[0].text async for c in stream]) == "xyz"


async def test_embeddings_from_the_echo_engine() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine())
        result = await stack.client().embeddings.create(model="tiny", input=["a", "b"])
        assert [d.index for d in result.data] == [0, 1]
        assert len(result.data[0].embedding) == 16
        assert result.data[0].embedding != result.data[1].embedding


async def test_a_route_is_disabled_until_a_model_of_its_type_registers() -> None:
    async with serving_stack() as stack:
        status, body, _ = await post(stack.url, "/v1/chat/completions", json=chat_body())
        assert status == 404
        assert body["error"]["code"] == "endpoint_disabled"
        await stack.add_worker(mocker())  # chat and completions, no embeddings
        with pytest.raises(openai.NotFoundError) as err:
            await stack.client().embeddings.create(model="tiny", input="x")
        assert err.value.code == "endpoint_disabled"
        status, _, _ = await post(stack.url, "/v1/chat/completions", json=chat_body(max_tokens=1))
        assert status == 200


async def test_unknown_model_is_404_model_not_found() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(mocker())
        with pytest.raises(openai.NotFoundError) as err:
            await stack.client().chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "x"}]
            )
        assert err.value.code == "model_not_found"
        assert err.value.param == "model"  # type: ignore[attr-defined]


async def test_known_model_without_a_live_instance_is_503_with_retry_after() -> None:
    async with serving_stack() as stack:
        await stack.add_records("ghost", closed_port_address(), ["chat"])
        status, body, headers = await post(
            stack.url, "/v1/chat/completions", json=chat_body("ghost")
        )
        assert status == 503
        assert body["error"]["code"] == "model_unavailable"
        assert int(headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"model": "tiny"}, "messages"),
        ({"model": "tiny", "messages": []}, "messages"),
        ({"model": "tiny", "messages": "hi"}, "messages"),
        ({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        (
            {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            "max_tokens",
        ),
        (
            {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"},
            "max_tokens",
        ),
        ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ],
)
async def test_bad_fields_are_400_naming_the_field(payload: dict, field: str) -> None:
    async with serving_stack() as stack:
        await stack.add_worker(mocker())
        status, body, _ = await post(stack.url, "/v1/chat/completions", json=payload)
        assert status == 400
        assert body["error"]["param"] == field
        assert body["error"]["message"].startswith(field)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_object_is_400(raw: bytes) -> None:
    async with serving_stack() as stack:
        await stack.add_worker(mocker())
        status, body, _ = await post(stack.url, "/v1/chat/completions", data=raw)
        assert status == 400
        assert body["error"]["type"] == "invalid_request_error"


async def test_stream_options_without_stream_is_400() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(mocker())
        status, body, _ = await post(
            stack.url,
            "/v1/chat/completions",
            json=chat_body(stream_options={"include_usage": True}),
        )
        assert status == 400
        assert "only allowed when 'stream' is set to true" in body["error"]["message"]


async def test_unknown_path_is_an_openai_404() -> None:
    async with serving_stack() as stack:
        status, body, _ = await post(stack.url, "/v1/nothing-here", json={})
        assert status == 404
        assert "error" in body


async def test_live_is_200() -> None:
    async with (
        serving_stack() as stack,
        aiohttp.ClientSession() as session,
        session.get(stack.url + "/live") as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["status"] == "live"


async def test_a_single_model_can_be_fetched_by_id_even_with_a_slash() -> None:
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine(), model="org/tiny")
        model = await stack.client().models.retrieve("org/tiny")
        assert model.id == "org/tiny"
        with pytest.raises(openai.NotFoundError):
            await stack.client().models.retrieve("org/other")


async def test_a_wrong_method_is_405_with_an_openai_body() -> None:
    async with (
        serving_stack() as stack,
        aiohttp.ClientSession() as session,
        session.get(stack.url + "/v1/chat/completions") as resp,
    ):
        assert resp.status == 405
        assert "error" in await resp.json()


@pytest.mark.parametrize("stream", [False, True])
async def test_x_request_id_is_echoed(stream: bool) -> None:
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine())
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                stack.url + "/v1/chat/completions",
                json=chat_body(stream=stream),
                headers={"x-request-id": "abc-123"},
            ) as resp,
        ):
            await resp.read()
            assert resp.headers["x-request-id"] == "abc-123"
