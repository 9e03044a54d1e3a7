"""``http`` engine: fronts an existing OpenAI-compatible server (vLLM, SGLang, ...).

Every chat/completions request is sent upstream with ``stream: true`` (and
``stream_options.include_usage``) whatever the client asked, so the frontend can stream or
aggregate as it likes and usage counts come from the upstream server.  The upstream model name
is ``--upstream-model`` or, by default, the registered model name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from drivetrain.runtime.engines.base import (
    Chunk,
    Embeddings,
    EngineError,
    Finish,
    ModelInfo,
    ModelType,
    Op,
)

_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


def _upstream_error(status: int, raw: bytes) -> EngineError:
    try:
        body = orjson.loads(raw)
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (orjson.JSONDecodeError, AttributeError):
        message = raw[:200].decode(errors="replace")
    return EngineError(status if 400 <= status < 600 else 502, f"upstream: {message}")


class HttpEngine:
    def __init__(
        self,
        upstream: str,
        model: str,
        model_types: tuple[ModelType, ...] = ("chat", "completions"),
        timeout: float = 600.0,
    ) -> None:
        if not upstream.startswith(("http://", "https://")):
            raise ValueError(f"--upstream: expected an http:// or https:// URL, got {upstream!r}")
        self._base = upstream.rstrip("/")
        if self._base.endswith("/v1"):
            self._base = self._base[:-3]
        self._model = model
        self._model_types = model_types
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def info(self) -> ModelInfo:
        return ModelInfo(model_types=self._model_types)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise EngineError(503, "http engine is not started")
        return self._session

    async def generate(self, op: Op, body: dict[str, Any]) -> AsyncIterator[Chunk | Finish]:
        payload = dict(body, model=self._model, stream=True)
        payload["stream_options"] = {"include_usage": True}
        finish_reason = "stop"
        prompt_tokens = completion_tokens = 0
        counted = 0
        try:
            async with self._http().post(self._base + _PATHS[op], json=payload) as resp:
                if resp.status != 200:
                    raise _upstream_error(resp.status, await resp.read())
                async for raw_line in resp.content:
                    line = raw_line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        break
                    event = orjson.loads(data)
                    if "error" in event:
                        raise _upstream_error(502, data)
                    usage = event.get("usage")
                    if usage:
                        prompt_tokens = usage.get("prompt_tokens", 0)
                        completion_tokens = usage.get("completion_tokens", 0)
                    for choice in event.get("choices") or ():
                        piece = (
                            (choice.get("delta") or {}).get("content")
                            if op == "chat"
                            else choice.get("text")
                        )
                        if piece:
                            counted += 1
                            yield Chunk(piece, 1)
                        if choice.get("finish_reason"):
                            finish_reason = choice["finish_reason"]
        except aiohttp.ClientError as exc:
            raise EngineError(502, f"upstream {self._base} failed: {exc}") from exc
        yield Finish(finish_reason, prompt_tokens, completion_tokens or counted)

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        payload = dict(body, model=self._model)
        try:
            async with self._http().post(self._base + "/v1/embeddings", json=payload) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise _upstream_error(resp.status, raw)
        except aiohttp.ClientError as exc:
            raise EngineError(502, f"upstream {self._base} failed: {exc}") from exc
        result = orjson.loads(raw)
        vectors = [item["embedding"] for item in sorted(result["data"], key=lambda d: d["index"])]
        return Embeddings(vectors, (result.get("usage") or {}).get("prompt_tokens", 0))
