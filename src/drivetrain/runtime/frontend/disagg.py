"""Routing a request by its prompt: KV-aware choice, and disaggregated prefill then decode
(docs/kv-routing.md).

The pipeline's routing step (``Frontend._serve``) comes here instead of ``Frontend._open`` when
the frontend routes by KV (``--router kv``/``kv-approx``) or the model has prefill or decode
instances.  The prompt is tokenized once (``Frontend.prompt_route``, when the frontend has the
tokenizer files), then:

* **aggregated** (no prefill instance registered): one instance does everything, chosen by
  the KV router when there is one;
* **disaggregated**: a prefill instance (chosen by the KV router when enabled) computes the
  prompt's KV and answers with a result frame; then a decode instance continues from it (its
  request says ``"transferred": true``; the mocker waits for the KV transfer instead of a
  prefill).  A prefill instance that fails before answering is quarantined and the prefill is
  retried on another one (``Frontend._open``'s retries), so the client never sees it;
* **conditional**: a prompt whose uncached part (its tokens less the longest prefix a decode
  instance holds) is shorter than ``--disagg-threshold`` tokens skips the prefill instance and
  is prefilled where it decodes, as is every prompt when no prefill instance is live.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from drivetrain.runtime.frontend.errors import frame_error
from drivetrain.runtime.frontend.kv_router import Route
from drivetrain.runtime.transport import frames
from drivetrain.runtime.transport.client import ClientStream

if TYPE_CHECKING:
    from drivetrain.runtime.frontend.app import Frontend

PREFILL_DECODE = "prefill_decode"
DECODE_ONLY_CACHED = "decode_only_cached"  # conditional disaggregation: little left to prefill
DECODE_ONLY_NO_PREFILL = "decode_only_no_prefill"  # no live prefill instance
AGGREGATED = "aggregated"


def _copy(route: Route) -> Route:
    return Route(route.ids, route.hashes, route.block_size, route.prompt_tokens)


async def open_routed(
    frontend: Frontend,
    name: str,
    endpoint: str,
    body: dict[str, Any],
    deadline: float,
    routes: list[Route],
) -> tuple[ClientStream, tuple[str, Any], str | None]:
    """The stream, first frame and weight version of a request routed by its prompt (as
    ``Frontend._open``); each KV booking made is appended to ``routes`` (the caller gives them
    back when the request ends)."""
    model = frontend.table.models.get(name)
    if model is None:  # gone since admission: ``_open`` waits for it or answers 503
        return await frontend._open(name, endpoint, body, deadline)
    route = await frontend.prompt_route(model, endpoint, body)
    routes.append(route)
    metrics = frontend.metrics
    if not model.disaggregated:
        opened = await frontend._open(name, endpoint, body, deadline, route)
        metrics.kv_overlap.observe((name,), route.overlap)
        _prefilled(route)
        return opened
    path = PREFILL_DECODE
    now = asyncio.get_running_loop().time()
    if not model.live_targets(now, "prefill"):
        path = DECODE_ONLY_NO_PREFILL
    elif route.ids is not None and frontend.disagg_threshold > 0:
        decoders = [t.address for t in model.live_targets(now)]
        cached = 0
        if frontend.kv is not None and decoders:
            best = frontend.kv.index.overlaps(route.hashes, decoders)
            cached = max(best.values(), default=0) * route.block_size
        if route.prompt_tokens - cached < frontend.disagg_threshold:
            path = DECODE_ONLY_CACHED
    metrics.disagg[(name, path)] += 1
    if path != PREFILL_DECODE:
        opened = await frontend._open(name, endpoint, body, deadline, route)
        metrics.kv_overlap.observe((name,), route.overlap)
        _prefilled(route)
        return opened
    prefill, result, _ = await frontend._open(
        name, endpoint, body, deadline, route, role="prefill", op="prefill", extra={"of": endpoint}
    )
    metrics.kv_overlap.observe((name,), route.overlap)
    route.release()  # the prefill is over: nothing of it runs there any more
    if result[0] == frames.ERROR:
        raise frame_error(result[1])
    prefill.close()
    decode = _copy(route)
    routes.append(decode)
    opened = await frontend._open(
        name, endpoint, body, deadline, decode, role="decode", extra={"transferred": True}
    )
    _prefilled(decode)
    return opened


def _prefilled(route: Route) -> None:
    if route.ticket is not None:
        route.ticket.prefilled()
