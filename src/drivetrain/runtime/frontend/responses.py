"""OpenAI response bodies and SSE chunks (pure functions over the worker's output)."""

from __future__ import annotations

import os
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def request_id(endpoint: str) -> str:
    prefix = "chatcmpl-" if endpoint == "chat" else "cmpl-"
    return prefix + os.urandom(12).hex()


def usage(finish: list[Any]) -> dict[str, Any]:
    """OpenAI's usage from a finish frame ``[reason, prompt, completion(, cached, version)]``; the
    prompt tokens found in the worker's prefix cache are ``prompt_tokens_details.cached_tokens``
    in every response, 0 when the worker has no cache (as OpenAI and Dynamo report them)."""
    prompt_tokens, completion_tokens = finish[1], finish[2]
    cached = finish[3] if len(finish) > 3 else 0
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def finish_version(finish: list[Any]) -> str | None:
    """The weight version a worker's FINISH frame names (docs/rl.md); None from older workers."""
    return finish[4] if len(finish) > 4 else None


def unary_body(
    endpoint: str, rid: str, created: int, model: str, text: str, finish: list[Any]
) -> bytes:
    reason = finish[0]
    if endpoint == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": reason,
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        obj = "text_completion"
    return orjson.dumps(
        {
            "id": rid,
            "object": obj,
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage(finish),
            "weight_version": finish_version(finish),
        }
    )


class ChunkWriter:
    """SSE events for one streamed request; the constant parts are serialised once."""

    __slots__ = ("_endpoint", "_first_prefix", "_head", "_prefix", "_suffix", "first")

    def __init__(self, endpoint: str, rid: str, created: int, model: str) -> None:
        self._endpoint = endpoint
        obj = b"chat.completion.chunk" if endpoint == "chat" else b"text_completion"
        self._head = (
            b'data: {"id":"'
            + rid.encode()
            + b'","object":"'
            + obj
            + b'","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"choices":'
        )
        if endpoint == "chat":
            self._prefix = self._head + b'[{"index":0,"delta":{"content":'
            # The first chat delta carries the role, as OpenAI's does.
            self._first_prefix = self._head + b'[{"index":0,"delta":{"role":"assistant","content":'
            self._suffix = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        else:
            self._prefix = self._first_prefix = self._head + b'[{"index":0,"text":'
            self._suffix = b',"logprobs":null,"finish_reason":null}]}\n\n'
        self.first = True

    def add_text(self, out: list[bytes], text: str) -> None:
        """Append one content event carrying ``text`` (every token ready at this write, joined
        by the caller) to ``out``, which the caller joins once with whatever else leaves in
        the same write."""
        if self.first:
            self.first = False
            out.append(self._first_prefix)
        else:
            out.append(self._prefix)
        out.append(orjson.dumps(text))
        out.append(self._suffix)

    def finish(self, finish: list[Any], include_usage: bool) -> bytes:
        reason = finish[0]
        if self._endpoint == "chat":
            delta = b'{"role":"assistant"}' if self.first else b"{}"
            choice = b'[{"index":0,"delta":' + delta + b',"logprobs":null,"finish_reason":'
        else:
            choice = b'[{"index":0,"text":"","logprobs":null,"finish_reason":'
        # The last chunk names the weight version that produced the stream (docs/rl.md).
        out = (
            self._head
            + choice
            + orjson.dumps(reason)
            + b'}],"weight_version":'
            + orjson.dumps(finish_version(finish))
            + b"}\n\n"
        )
        if include_usage:
            out += self._head + b'[],"usage":' + orjson.dumps(usage(finish)) + b"}\n\n"
        return out + DONE


def error_event(status: int, message: str) -> bytes:
    from drivetrain.runtime.frontend.errors import error_body

    return b"event: error\ndata: " + error_body(status, message, "stream_error") + b"\n\n"


def _base64_floats(vector: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32, base64 (what the openai client asks for)."""
    import base64
    import struct

    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_body(
    model: str, vectors: list[list[float]], prompt_tokens: int, encoding: str = "float"
) -> bytes:
    encode = _base64_floats if encoding == "base64" else None
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
                for i, v in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )
