"""``http`` engine: fronts an existing OpenAI-compatible server (vLLM, SGLang, ...).

Every chat/completions request is sent upstream with ``stream: true`` (and
``stream_options.include_usage``) whatever the client asked, so the frontend can stream or
aggregate as it likes and usage counts come from the upstream server.  Everything else in the
body (``messages``, sampling fields, ``stop``...) goes upstream unchanged: the upstream applies
its own chat template.  The upstream model name is ``--upstream-model``, else the registered
model name, which itself defaults to the first model the upstream lists in ``/v1/models``.

As a sidecar the engine tells the worker whether the upstream answers (``upstream_ready``) and
what it serves (``resolve_model``): the worker registers only while it answers
(``runtime/worker.py``).  A request that cannot reach the
upstream sets ``trouble`` so the worker checks again at once instead of waiting for its next poll.
"""

from __future__ import annotations

import asyncio
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
    WeightsDelegated,
)
from drivetrain.runtime.engines.upstream_weights import UpstreamWeights

_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
DEFAULT_HEALTH_INTERVAL = 1.0


def _upstream_error(status: int, raw: bytes) -> EngineError:
    try:
        body = orjson.loads(raw)
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (orjson.JSONDecodeError, AttributeError):
        message = raw[:200].decode(errors="replace")
    return EngineError(status if 400 <= status < 600 else 502, f"upstream: {message}")


class HttpEngine(WeightsDelegated):
    def __init__(
        self,
        upstream: str,
        model: str | None,
        model_types: tuple[ModelType, ...] = ("chat", "completions"),
        timeout: float = 600.0,
        health_interval: float = DEFAULT_HEALTH_INTERVAL,
        context_length: int | None = None,
        max_num_seqs: int | None = None,
        upstream_api: str = "vllm",
    ) -> None:
        if not upstream.startswith(("http://", "https://")):
            raise ValueError(f"--upstream: expected an http:// or https:// URL, got {upstream!r}")
        self._base = upstream.rstrip("/")
        if self._base.endswith("/v1"):
            self._base = self._base[:-3]
        if health_interval <= 0:
            raise ValueError(f"--health-interval: expected seconds > 0, got {health_interval}")
        if context_length is not None and context_length < 1:
            raise ValueError(f"--context-length: expected at least 1, got {context_length}")
        if max_num_seqs is not None and max_num_seqs < 1:
            raise ValueError(f"--max-num-seqs: expected at least 1, got {max_num_seqs}")
        self._model = model
        self._model_types = model_types
        self._context_flag = context_length
        self._context = context_length
        self._max_num_seqs = max_num_seqs
        self._timeout = timeout
        self.health_interval = health_interval
        self._session: aiohttp.ClientSession | None = None
        self.trouble = asyncio.Event()
        self.weights = UpstreamWeights(self._base, upstream_api, self._http)

    @property
    def upstream(self) -> str:
        return self._base

    @property
    def model(self) -> str | None:
        """The model name sent upstream (None until ``resolve_model`` read it from upstream)."""
        return self._model

    def info(self) -> ModelInfo:
        return ModelInfo(
            model_types=self._model_types,
            context_length=self._context,
            capacity=self._max_num_seqs,
        )

    def capacity(self) -> int | None:
        """``--max-num-seqs``: the upstream's batch limit as given (the upstream is not asked)."""
        return self._max_num_seqs

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def upstream_ready(self) -> bool:
        """Whether the upstream answers: ``/health`` 200, or ``/v1/models`` 200 for a server
        without ``/health``.  Each call waits at most one health interval (and 2 s at most)."""
        timeout = aiohttp.ClientTimeout(total=min(self.health_interval, 2.0))
        try:
            async with self._http().get(self._base + "/health", timeout=timeout) as resp:
                if resp.status == 200:
                    return True
                if resp.status not in (404, 405):
                    return False
            async with self._http().get(self._base + "/v1/models", timeout=timeout) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def resolve_model(self) -> str:
        """The model name sent upstream: the one given, else the first ``/v1/models`` lists."""
        if self._model is None:
            self._model = (await self.upstream_models())[0]
        return self._model

    async def describe(self) -> None:
        """Read the model's context length from the upstream's ``/v1/models`` (vLLM and SGLang
        list ``max_model_len``) unless ``--context-length`` gave it; unknown when it lists none."""
        if self._context_flag is not None:
            return
        for entry in await self._model_entries():
            if entry.get("id") == self._model:
                for key in ("max_model_len", "context_length", "context_window"):
                    value = entry.get(key)
                    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                        self._context = value
                        return

    async def upstream_models(self) -> list[str]:
        """The model ids the upstream lists; EngineError(502) when it does not answer or lists
        none."""
        ids = [str(m["id"]) for m in await self._model_entries()]
        if not ids:
            raise EngineError(502, f"upstream {self._base}/v1/models lists no model")
        return ids

    async def _model_entries(self) -> list[dict[str, Any]]:
        """The entries of the upstream's ``/v1/models``; EngineError(502) when it does not
        answer with one."""
        try:
            timeout = aiohttp.ClientTimeout(total=10.0)
            async with self._http().get(self._base + "/v1/models", timeout=timeout) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise _upstream_error(resp.status, raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineError(502, f"upstream {self._base} failed: {exc}") from exc
        try:
            entries = orjson.loads(raw)["data"]
            if not all(isinstance(m, dict) and "id" in m for m in entries):
                raise TypeError("an entry without an id")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise EngineError(502, f"upstream {self._base}/v1/models: unexpected body") from exc
        return list(entries)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise EngineError(503, "http engine is not started")
        return self._session

    async def generate(self, op: Op, body: dict[str, Any]) -> AsyncIterator[Chunk | Finish]:
        payload = dict(body, model=self._model or body.get("model"), stream=True)
        payload["stream_options"] = {"include_usage": True}
        finish_reason: str | None = None
        prompt_tokens = completion_tokens = cached_tokens = 0
        counted = 0
        done = False
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
                        done = True
                        break
                    event = orjson.loads(data)
                    if "error" in event:
                        raise _upstream_error(502, data)
                    usage = event.get("usage")
                    if usage:
                        prompt_tokens = usage.get("prompt_tokens", 0)
                        completion_tokens = usage.get("completion_tokens", 0)
                        # vLLM and SGLang report their prefix-cache hits as OpenAI does.
                        details = usage.get("prompt_tokens_details") or {}
                        cached_tokens = details.get("cached_tokens") or 0
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
            self.trouble.set()
            raise EngineError(502, f"upstream {self._base} failed: {exc}") from exc
        if finish_reason is None and not done:
            # Not every server sends [DONE] (transformers serve does not), but each one ends with
            # a finish_reason or [DONE]; a stream with neither was cut.
            self.trouble.set()
            raise EngineError(502, f"upstream {self._base} ended the stream before it finished")
        yield Finish(
            finish_reason or "stop", prompt_tokens, completion_tokens or counted, cached_tokens
        )

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        payload = dict(body, model=self._model or body.get("model"))
        try:
            async with self._http().post(self._base + "/v1/embeddings", json=payload) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise _upstream_error(resp.status, raw)
        except aiohttp.ClientError as exc:
            self.trouble.set()
            raise EngineError(502, f"upstream {self._base} failed: {exc}") from exc
        result = orjson.loads(raw)
        vectors = [item["embedding"] for item in sorted(result["data"], key=lambda d: d["index"])]
        return Embeddings(vectors, (result.get("usage") or {}).get("prompt_tokens", 0))
