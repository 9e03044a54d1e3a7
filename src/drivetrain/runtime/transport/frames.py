"""Frame encoding and incremental decoding (pure functions, no I/O).

Kinds sent by the frontend:  ``g`` a request (payload ``{"op", "body"}``; ``op`` is a route's
(``chat``, ``completions``, ``embeddings``), ``generate`` (token-in/token-out) or ``rl`` (the RL
API's control requests, docs/rl.md); ``"v"``: the weight version the frontend expects; when the
frontend tokenized the prompt ``"ids"``; ``op`` ``"prefill"`` with ``"of"`` the chat or
completions op asks a prefill instance for the prompt's KV; ``"transferred": true`` tells a
decode instance a prefill instance computed it), ``c`` cancel (payload ``None``), ``K`` on
stream id 0: send me your whole prefix cache (payload ``None``; docs/kv-routing.md).
Kinds sent by the worker:    ``d`` token data (payload ``[[text, n_tokens], ...]``; for
``generate`` ``[[token_ids, logprobs], ...]``),
``f`` finished (payload ``[finish_reason, prompt_tokens, completion_tokens, cached_tokens,
weight_version]``; older frontends read the first three),
``r`` a whole result (embeddings: ``[vectors, prompt_tokens]``; a prefill:
``[prompt_tokens, cached_tokens]``),
``x`` error (payload ``[status, message]``, or ``[status, message, code, param]``),
``l`` the worker's load, on stream id 0 (payload ``[requests in flight, capacity or null,
weight version]``; see docs/runtime.md, "Abuse and overload", and docs/rl.md),
``k`` a KV event, on stream id 0 (payload ``[seq, kind, [block hashes]]``, kind ``s`` stored,
``r`` removed, ``a`` the whole cache as of ``seq``; docs/kv-routing.md).
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from drivetrain.errors import DrivetrainError

HEADER = struct.Struct(">I")
# Twice the frontend's 32 MiB body limit, so that no accepted request can make a frame the
# worker refuses (a refused frame drops the whole connection, and every request on it).
MAX_FRAME = 64 * 1024 * 1024

REQUEST = "g"
CANCEL = "c"
DATA = "d"
FINISH = "f"
RESULT = "r"
ERROR = "x"
LOAD = "l"
KV_EVENT = "k"
KV_RESYNC = "K"
LOAD_STREAM = 0  # request streams are numbered from 1


def error_payload(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> list[Any]:
    """An ``x`` frame's payload; code and param only when there is one (older frontends read
    the first two)."""
    if code is None and param is None:
        return [status, message]
    return [status, message, code, param]


class FrameError(DrivetrainError, ValueError):
    """The peer sent something that is not a frame; the connection must be dropped."""


def encode(kind: str, stream_id: int, payload: Any) -> bytes:
    body = orjson.dumps((kind, stream_id, payload))
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Feed bytes as they arrive; get back every complete frame."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[list[Any]]:
        buf = self._buf
        buf += data
        frames: list[list[Any]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (size,) = HEADER.unpack_from(buf, pos)
            if size > MAX_FRAME:
                raise FrameError(f"frame of {size} bytes exceeds the {MAX_FRAME} byte limit")
            if end - pos - 4 < size:
                break
            try:
                frame = orjson.loads(memoryview(buf)[pos + 4 : pos + 4 + size])
            except orjson.JSONDecodeError as exc:
                raise FrameError(f"frame is not JSON: {exc}") from exc
            if not isinstance(frame, list) or len(frame) != 3:
                raise FrameError("frame is not a [kind, stream_id, payload] array")
            frames.append(frame)
            pos += 4 + size
        if pos:
            del buf[:pos]
        return frames
