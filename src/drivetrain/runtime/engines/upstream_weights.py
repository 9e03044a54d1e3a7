"""Weight updates of an upstream engine (the ``http`` engine's): the RL API mapped onto vLLM's
or SGLang's own routes (docs/rl.md, "Engines").

==============  ===============================================  =============================
step            vLLM (``--upstream-api vllm``)                   SGLang (``--upstream-api sglang``)
==============  ===============================================  =============================
hold            ``POST /pause?mode=wait``                        ``POST /pause_generation``
load ``path``   ``POST /collective_rpc`` method ``reload_weights``  ``POST /update_weights_from_disk``
                with ``{"weights_path": path}`` (dev mode)        ``{"model_path": path}``
go on           ``POST /resume``                                 ``POST /continue_generation``
==============  ===============================================  =============================

The worker has no request running on the upstream when it loads (it holds its own first), so
the upstream's pause only keeps other clients of the same server out.  The upstream loads in
place and keeps no copy: going back is loading the last committed path again; with none known
it is impossible, and the worker stays out of routing until the next update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from drivetrain.runtime.engines.base import EngineError, WeightSource
from drivetrain.runtime.engines.simweights import nccl_not_implemented

UPSTREAM_APIS = ("vllm", "sglang")


class UpstreamWeights:
    def __init__(self, base: str, api: str, session: Callable[[], aiohttp.ClientSession]) -> None:
        if api not in UPSTREAM_APIS:
            raise ValueError(f"--upstream-api: expected vllm or sglang, got {api!r}")
        self.base = base
        self.api = api
        self._session = session
        self.committed_path: str | None = None  # what a rollback loads again
        self._loaded: str | None = None

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            async with self._session().post(self.base + path, json=body) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise EngineError(
                        502, f"upstream {path}: {resp.status} {raw[:200]!r}", "upstream_error"
                    )
                try:
                    return await resp.json(content_type=None)
                except ValueError:
                    return None
        except aiohttp.ClientError as exc:
            raise EngineError(502, f"upstream {path}: {exc}", "upstream_error") from None

    async def _load(self, path: str) -> None:
        if self.api == "sglang":
            await self._post("/pause_generation")
            try:
                answer = await self._post("/update_weights_from_disk", {"model_path": path})
            finally:
                await self._post("/continue_generation")
            if isinstance(answer, dict) and answer.get("success") is False:
                raise EngineError(
                    400, f"upstream refused {path}: {answer.get('message')}", "bad_weights"
                )
            return
        await self._post("/pause?mode=wait")
        try:
            await self._post(
                "/collective_rpc",
                {"method": "reload_weights", "kwargs": {"weights_path": path}},
            )
        finally:
            await self._post("/resume")

    async def load_weights(self, version: str, source: WeightSource) -> None:
        if source.nccl is not None or source.path is None:
            raise nccl_not_implemented()
        await self._load(source.path)
        self._loaded = source.path

    async def restore_weights(self) -> bool:
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return True  # the load failed before anything changed upstream
        if self.committed_path is None:
            return False
        try:
            await self._load(self.committed_path)
        except EngineError:
            return False
        return True

    def keep_weights(self) -> None:
        if self._loaded is not None:
            self.committed_path = self._loaded
        self._loaded = None
