"""Tokens that are ready together travel together: one request-plane frame, one SSE write, one
content event (as vLLM's deltas carry every token ready at once); nothing waits to gather more.

HTTP/1.1 chunked transfer encoding keeps the frontend's writes visible to the client (one HTTP
chunk per ``write``), so these tests count writes exactly through aiohttp's ``iter_chunks``.
"""

from __future__ import annotations

import asyncio.selector_events
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from drivetrain.runtime.engines.echo import EchoEngine
from drivetrain.runtime.engines.mocker import MockerEngine
from tests.paths import shared
from tests.runtime.serving_support import chat_body, serving_stack


async def stream_writes(url: str, body: dict[str, Any]) -> list[bytes]:
    """The HTTP chunks (= the frontend's writes) of one streamed chat completion."""
    writes: list[bytes] = []
    current = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json={**body, "stream": True}) as resp,
    ):
        assert resp.status == 200
        async for data, end_of_chunk in resp.content.iter_chunks():
            current += data
            if end_of_chunk:
                writes.append(current)
                current = b""
    if current:
        writes.append(current)
    return writes


@contextmanager
def socket_writes(monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[list[bytes]]:
    """Every write the frontend hands to a client connection's transport (the syscalls it
    asks for), recorded on the test's event loop (asyncio's selector transports)."""
    port = urlsplit(url).port
    transport = asyncio.selector_events._SelectorSocketTransport
    writes: list[bytes] = []
    write, writelines = transport.write, transport.writelines

    def serves_client(self: Any) -> bool:
        return self.get_extra_info("sockname")[1] == port

    def spy_write(self: Any, data: Any) -> None:
        if serves_client(self):
            writes.append(bytes(data))
        write(self, data)

    def spy_writelines(self: Any, lines: Any) -> None:
        lines = list(lines)
        if serves_client(self):
            writes.append(b"".join(lines))
        writelines(self, lines)

    monkeypatch.setattr(transport, "write", spy_write)
    monkeypatch.setattr(transport, "writelines", spy_writelines)
    yield writes


def events(writes: list[bytes]) -> list[str]:
    return [e for e in b"".join(writes).decode().split("\n\n") if e]


async def test_tokens_produced_in_one_turn_leave_in_one_write() -> None:
    # The echo engine (no delay) yields every character in one event-loop turn, so the worker
    # sends them and the finish in one read's worth of frames: one write carries them all.
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine(delay_ms=0))
        writes = await stream_writes(stack.url, chat_body(text="coalesced"))
        sse = events(writes)
        assert len(writes) == 1
        # One content event carrying every token, with the role (as OpenAI's first delta
        # does), then the finish event and [DONE].
        assert len(sse) == 3
        first = json.loads(sse[0].removeprefix("data: "))["choices"][0]["delta"]
        assert first == {"role": "assistant", "content": "coalesced"}
        assert json.loads(sse[1].removeprefix("data: "))["choices"][0]["finish_reason"]
        assert sse[-1] == "data: [DONE]"


async def test_tokens_due_at_different_times_still_stream_one_write_each() -> None:
    # 50 ms steps: each token is due on its own wake-up and leaves on its own, nothing waits
    # to gather more (the last one leaves with the finish event and [DONE]).  A loaded machine
    # may stall the loop past a step and merge two into one event, hence "at least 3" of 4.
    async with serving_stack() as stack:
        await stack.add_worker(
            MockerEngine(model_path=str(shared("models", "tiny")), speedup_ratio=5.74 / 50)
        )
        body = {**chat_body(max_tokens=4), "stream_options": {"include_usage": True}}
        writes = await stream_writes(stack.url, body)
        assert len(writes) >= 3
        # Every write carries exactly one content event: its tokens, never split or held back.
        assert all(w.count(b'"content"') == 1 for w in writes)
        usage = json.loads(events(writes)[-2].removeprefix("data: "))["usage"]
        assert usage["completion_tokens"] == 4


async def test_the_headers_and_the_end_of_the_body_share_the_events_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first frame is already here when the response starts, so the headers wait for the
    # first events (nothing is delayed), and the chunked body's terminator goes with the last
    # events: a response whose tokens are all ready is one write to the socket, not three.
    async with serving_stack() as stack:
        await stack.add_worker(EchoEngine(delay_ms=0))
        with socket_writes(monkeypatch, stack.url) as sent:
            writes = await stream_writes(stack.url, chat_body(text="one write"))
        assert len(writes) == 1
        assert len(sent) == 1
        assert sent[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"text/event-stream" in sent[0]
        assert sent[0].endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")


async def test_a_token_by_token_stream_costs_one_socket_write_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tokens due at different times: one socket write per batch of events, the headers riding
    # on the first and the terminator on the last (no write of their own).
    async with serving_stack() as stack:
        await stack.add_worker(
            MockerEngine(model_path=str(shared("models", "tiny")), speedup_ratio=5.74 / 50)
        )
        with socket_writes(monkeypatch, stack.url) as sent:
            writes = await stream_writes(stack.url, chat_body(max_tokens=4))
        assert len(writes) >= 3
        assert len(sent) == len(writes)
        assert sent[0].startswith(b"HTTP/1.1 200 OK\r\n") and b'"content"' in sent[0]
        assert sent[-1].endswith(b"\r\n0\r\n\r\n") and b"[DONE]" in sent[-1]
