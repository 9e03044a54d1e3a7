"""``POST /v1/generate``: token ids in, token ids out (docs/rl.md, "Token-in/token-out").

The request goes through the same pipeline as the OpenAI routes (``app.Frontend._serve``:
admission, version-aware routing, retries before the first frame); only the answer differs.
The worker's DATA frames carry ``[token_ids, logprobs]`` pairs, written out as they come: no
chat template, no detokenisation.  A unary answer::

    {"model", "token_ids", "logprobs" (null unless asked), "finish_reason", "weight_version",
     "usage"}

A streamed one is SSE events ``{"token_ids", "logprobs"}`` and a last event with
``finish_reason``, ``weight_version`` and ``usage``, then ``[DONE]``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from aiohttp import web

from drivetrain.runtime.frontend import responses
from drivetrain.runtime.frontend.errors import ApiError, frame_error
from drivetrain.runtime.transport import frames
from drivetrain.runtime.transport.client import ClientStream, StreamFailed


def check_context(context_length: int | None, body: dict[str, Any]) -> None:
    """Refuse a prompt (and ``max_tokens``) longer than the model's context before routing."""
    if context_length is None:
        return
    prompt = len(body["token_ids"])
    wanted = (body.get("sampling") or {}).get("max_tokens") or 1
    if prompt + wanted > context_length:
        raise ApiError(
            400,
            f"token_ids: {prompt} prompt tokens and max_tokens {wanted} exceed the model's "
            f"context of {context_length} tokens",
            "context_length_exceeded",
            "token_ids",
        )


def _final(name: str, ids: int, finish: list[Any]) -> dict[str, Any]:
    return {
        "model": name,
        "finish_reason": finish[0],
        "weight_version": responses.finish_version(finish),
        "usage": responses.usage(finish),
    }


async def unary(name: str, stream: ClientStream, first: tuple[str, Any]) -> web.Response:
    ids: list[int] = []
    logprobs: list[float] | None = None
    kind, payload = first
    try:
        while True:
            if kind == frames.DATA:
                for chunk_ids, chunk_lps in payload:
                    ids.extend(chunk_ids)
                    if chunk_lps is not None:
                        logprobs = (logprobs or []) + list(chunk_lps)
            elif kind == frames.FINISH:
                body = {"token_ids": ids, "logprobs": logprobs, **_final(name, len(ids), payload)}
                return web.Response(body=orjson.dumps(body), content_type="application/json")
            elif kind == frames.ERROR:
                raise frame_error(payload)
            kind, payload = await stream.next()
    except StreamFailed as exc:
        raise ApiError(502, f"worker failed mid-request: {exc}", "worker_error") from None
    except TimeoutError:
        raise ApiError(504, "request timed out", "timeout") from None


async def streamed(
    request: web.Request,
    name: str,
    stream: ClientStream,
    first: tuple[str, Any],
    headers: dict[str, str],
) -> tuple[web.StreamResponse, int]:
    if first[0] == frames.ERROR:
        raise frame_error(first[1])
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    batch = [first, *stream.ready()]
    sent = 0
    try:
        while True:
            out: list[bytes] = []
            done = False
            for kind, payload in batch:
                if kind == frames.DATA:
                    for ids, lps in payload:
                        sent += len(ids)
                        out.append(
                            b"data: " + orjson.dumps({"token_ids": ids, "logprobs": lps}) + b"\n\n"
                        )
                elif kind == frames.FINISH:
                    out.append(b"data: " + orjson.dumps(_final(name, sent, payload)) + b"\n\n")
                    out.append(responses.DONE)
                    done = True
                elif kind == frames.ERROR:
                    out.append(responses.error_event(payload[0], payload[1]))
                    done = True
            if out:
                await response.write(b"".join(out))
            if done:
                break
            batch = await stream.batch()
    except (StreamFailed, TimeoutError) as exc:
        message = "request timed out" if isinstance(exc, TimeoutError) else f"worker failed: {exc}"
        with contextlib.suppress(ConnectionError):
            await response.write(
                responses.error_event(502 if isinstance(exc, StreamFailed) else 504, message)
            )
    except ConnectionError:
        stream.cancel()
        return response, 499
    try:
        await response.write_eof()
    except ConnectionError:
        return response, 499
    return response, 200
