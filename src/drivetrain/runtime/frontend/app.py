"""aiohttp application: the OpenAI routes, /health, /live, /metrics.

A request's life: route enabled? → body valid? → model known? → pick a live instance → open a
stream on its request-plane connection → wait for the first frame.  A failure before the first
frame quarantines that instance and tries another (the client never sees duplicate output), and
a request with no live instance left waits up to the retry window for one to register; after
the first frame, a streamed response ends with an ``event: error`` and no ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from drivetrain.runtime.frontend import responses
from drivetrain.runtime.frontend.errors import ApiError, error_response
from drivetrain.runtime.frontend.registry import ServedModel, ServingTable
from drivetrain.runtime.frontend.router import Router
from drivetrain.runtime.frontend.validate import parse_body
from drivetrain.runtime.metrics import FrontendMetrics
from drivetrain.runtime.transport import frames
from drivetrain.runtime.transport.client import ClientStream, StreamFailed

log = logging.getLogger(__name__)

RETRY_AFTER_S = "2"
MAX_ATTEMPTS = 3
#: How long a request waits for a live instance before its 503 (``--retry-window``).  Long enough
#: for a failover shadow to take over and be seen (lock, registration, one discovery poll: well
#: under a second here, docs/gms-failover.md) with room for a loaded machine; short enough that a
#: model that is really down answers 503 within a few seconds rather than holding clients.
DEFAULT_RETRY_WINDOW_S = 5.0
ENDPOINT_NAMES = {
    "chat": "chat_completions",
    "completions": "completions",
    "embeddings": "embeddings",
}
ROUTE_PATHS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@web.middleware
async def _errors_as_openai(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as an OpenAI error body: aiohttp's own 404/405/413 and our bugs too."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(ApiError(exc.status, exc.reason, None))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            ApiError(500, "internal error (see the frontend log)", "internal_error")
        )


async def _echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Echo ``x-request-id`` so callers can match responses and logs (as Dynamo does)."""
    request_id = request.headers.get("x-request-id")
    if request_id is not None:
        response.headers["x-request-id"] = request_id


class Frontend:
    def __init__(
        self,
        table: ServingTable,
        router: Router,
        request_timeout: float = 600.0,
        metrics: FrontendMetrics | None = None,
        scope_description: str = "every namespace",
        retry_window: float = DEFAULT_RETRY_WINDOW_S,
    ) -> None:
        self.table = table
        self.router = router
        self.request_timeout = request_timeout
        self.retry_window = retry_window
        self.metrics = metrics or FrontendMetrics()
        self.metrics.instances_source = table.instance_counts
        self.scope_description = scope_description
        self.shutting_down = False

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[_errors_as_openai], client_max_size=32 * 1024 * 1024)
        app.on_response_prepare.append(_echo_request_id)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model:.+}", self.get_model)
        app.router.add_post(ROUTE_PATHS["chat"], self.chat)
        app.router.add_post(ROUTE_PATHS["completions"], self.completions)
        app.router.add_post(ROUTE_PATHS["embeddings"], self.embeddings)
        app.router.add_get("/health", self.health)
        app.router.add_get("/live", self.live)
        app.router.add_get("/metrics", self.prometheus)
        return app

    # ---- system routes -------------------------------------------------------------------

    def _model_object(self, model: ServedModel) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": model.name,
            "object": "model",
            "created": model.created,
            "owned_by": "drivetrain",
            "model_types": sorted(model.model_types),
        }
        if model.context_length:
            obj["context_window"] = model.context_length
        if model.max_output_tokens:
            obj["max_output_tokens"] = model.max_output_tokens
        return obj

    async def list_models(self, request: web.Request) -> web.Response:
        data = [self._model_object(m) for _, m in sorted(self.table.models.items())]
        return _json({"object": "list", "data": data})

    async def get_model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        model = self.table.models.get(name)
        if model is None:
            raise ApiError(404, f"The model `{name}` does not exist.", "model_not_found", "model")
        return _json(self._model_object(model))

    async def health(self, request: web.Request) -> web.Response:
        instances = [r.model_dump() for _, r in sorted(self.table.instances.items())]
        return _json(
            {
                "status": "healthy",
                "scope": self.scope_description,
                "models": sorted(self.table.models),
                "instances": instances,
            }
        )

    async def live(self, request: web.Request) -> web.Response:
        if self.shutting_down:
            return _json({"status": "shutting_down", "message": "Service is shutting down"}, 503)
        return _json({"status": "live", "message": "Service is live"})

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    # ---- inference routes ----------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "completions")

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "embeddings")

    async def _serve(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        """One request's pipeline: (1) admit: route enabled, body valid, model known; (2) route:
        pick a live instance and open a stream, retrying others until the first frame
        (``_open``); (3) respond: embeddings, unary, or SSE with one write per batch of frames.
        A per-model step (a queue, a pause) belongs between 1 and 2, with its state on
        ``ServedModel.state``; a smarter choice of instance belongs in the router (2)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        label = ENDPOINT_NAMES[endpoint]
        try:
            if endpoint not in self.table.enabled:
                raise ApiError(
                    404,
                    f"{ROUTE_PATHS[endpoint]} is not enabled: "
                    f"no model of type '{endpoint}' is registered",
                    "endpoint_disabled",
                )
            body = parse_body(await request.read(), endpoint)
            name = body["model"]
            model = self.table.models.get(name)
            if model is None or endpoint not in model.model_types:
                raise ApiError(
                    404, f"The model `{name}` does not exist.", "model_not_found", "model"
                )
        except ApiError as err:
            # Counted under model "" so that made-up names cannot grow the label set.
            self.metrics.request_done("", label, err.status, False)
            raise
        stream_flag = bool(body.get("stream")) and endpoint != "embeddings"
        metrics = self.metrics
        metrics.inflight[name] += 1
        status = 500
        stream: ClientStream | None = None
        try:
            stream, first = await self._open(model, endpoint, body, started + self.request_timeout)
            if endpoint == "embeddings":
                return self._embeddings_response(name, body, first)
            if stream_flag:
                streamed, status = await self._stream_response(
                    request, endpoint, name, body, stream, first, started
                )
                return streamed
            response = await self._unary_response(endpoint, name, stream, first, started)
            status = response.status
            return response
        except ApiError as err:
            status = err.status
            raise
        finally:
            if stream is not None:
                stream.cancel()  # no-op when it finished; stops the worker when we were cancelled
            metrics.inflight[name] -= 1
            metrics.request_done(name, label, status, stream_flag)
            metrics.duration.observe((name, label), loop.time() - started)

    async def _open(
        self, model: ServedModel, endpoint: str, body: dict[str, Any], deadline: float
    ) -> tuple[ClientStream, tuple[str, Any]]:
        """A stream and its first frame, retrying other instances while nothing was received.

        When no untried live instance is left, the request waits up to ``retry_window`` seconds
        (from the first time it found none) for the routing table to offer one: a failover
        shadow registering, a quarantine ending, a worker starting.  Only then is it a 503.
        """
        loop = asyncio.get_running_loop()
        name = model.name
        tried: set[str] = set()
        last_error = ""
        window_ends: float | None = None
        attempts = 0
        while attempts < MAX_ATTEMPTS:
            now = loop.time()
            current = self.table.models.get(name)  # rebuilt on every discovery change
            targets = current.targets if current is not None else []
            live = current.live_targets(now) if current is not None else []
            candidates = [t for t in live if t.instance_id not in tried]
            if not candidates:
                if window_ends is None:
                    window_ends = min(now + self.retry_window, deadline)
                if now >= window_ends:
                    break
                # Wake at the next rebuild, or when the first quarantine here ends.
                wake = min([window_ends, *(t.down_until for t in targets if t.down_until > now)])
                await self.table.wait_for_change(wake - now)
                continue
            attempts += 1
            target = self.router.pick(name, candidates)
            tried.add(target.instance_id)
            stream: ClientStream | None = None
            try:
                stream = await target.client.open(endpoint, body)
                stream.set_deadline(deadline)
                first = await stream.next()
                return stream, first
            except StreamFailed as exc:
                if stream is not None:
                    stream.close()
                if not exc.before_first:
                    raise ApiError(502, f"worker failed: {exc}", "worker_error") from None
                last_error = str(exc)
                log.warning("instance %s failed before the first token: %s", target.address, exc)
                self.table.quarantine(target, loop.time())
                self.metrics.retries[name] += 1
            except TimeoutError:
                raise ApiError(504, "request timed out before the first token", "timeout") from None
        detail = f" (last error: {last_error})" if last_error else ""
        raise ApiError(
            503,
            f"Model `{name}` has no live instance right now{detail}",
            "model_unavailable",
            headers={"Retry-After": RETRY_AFTER_S},
        )

    def _embeddings_response(
        self, name: str, body: dict[str, Any], first: tuple[str, Any]
    ) -> web.Response:
        kind, payload = first
        if kind == frames.ERROR:
            status, message = payload
            raise ApiError(status, message, "worker_error")
        vectors, prompt_tokens = payload
        encoding = body.get("encoding_format") or "float"
        return web.Response(
            body=responses.embeddings_body(name, vectors, prompt_tokens, encoding),
            content_type="application/json",
        )

    async def _unary_response(
        self, endpoint: str, name: str, stream: ClientStream, first: tuple[str, Any], started: float
    ) -> web.Response:
        kind, payload = first
        pieces: list[str] = []
        tokens = 0
        loop = asyncio.get_running_loop()
        ttft_seen = False
        try:
            while True:
                if kind == frames.DATA:
                    if not ttft_seen:
                        self.metrics.ttft.observe((name,), loop.time() - started)
                        ttft_seen = True
                    for text, n in payload:
                        pieces.append(text)
                        tokens += n
                elif kind == frames.FINISH:
                    self.metrics.output_tokens[name] += tokens
                    rid = responses.request_id(endpoint)
                    return web.Response(
                        body=responses.unary_body(
                            endpoint, rid, int(time.time()), name, "".join(pieces), payload
                        ),
                        content_type="application/json",
                    )
                elif kind == frames.ERROR:
                    status, message = payload
                    raise ApiError(status, message, "worker_error")
                kind, payload = await stream.next()
        except StreamFailed as exc:
            raise ApiError(502, f"worker failed mid-request: {exc}", "worker_error") from None
        except TimeoutError:
            raise ApiError(504, "request timed out", "timeout") from None

    async def _stream_response(
        self,
        request: web.Request,
        endpoint: str,
        name: str,
        body: dict[str, Any],
        stream: ClientStream,
        first: tuple[str, Any],
        started: float,
    ) -> tuple[web.StreamResponse, int]:
        """Send the SSE stream; returns it and the status to count (200, or 499: client left)."""
        kind, payload = first
        if kind == frames.ERROR:
            # Nothing sent yet: a plain JSON error with the worker's status is more useful.
            status, message = payload
            raise ApiError(status, message, "worker_error")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        writer = responses.ChunkWriter(
            endpoint, responses.request_id(endpoint), int(time.time()), name
        )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        loop = asyncio.get_running_loop()
        metrics = self.metrics
        key = (name,)
        last = started
        tokens = 0
        # Frames that are already here leave together: one SSE write per batch of frames that
        # arrived in one event-loop turn (never waiting for more).
        frames_now = [first, *stream.ready()]
        try:
            while True:
                out: list[bytes] = []
                done = False
                for kind, payload in frames_now:
                    if kind == frames.DATA:
                        now = loop.time()
                        if tokens == 0:
                            metrics.ttft.observe(key, now - started)
                        else:
                            metrics.itl.observe(key, now - last)
                        n = len(payload)
                        if n > 1:
                            metrics.itl.observe_many(key, 0.0, n - 1)
                        last = now
                        tokens += n
                        writer.add_tokens(out, payload)
                    elif kind == frames.FINISH:
                        out.append(writer.finish(payload, include_usage))
                        done = True
                    elif kind == frames.ERROR:
                        status, message = payload
                        out.append(responses.error_event(status, message))
                        done = True
                if out:
                    await response.write(out[0] if len(out) == 1 else b"".join(out))
                if done:
                    break
                frames_now = await stream.batch()
        except (StreamFailed, TimeoutError) as exc:
            message = (
                "request timed out" if isinstance(exc, TimeoutError) else f"worker failed: {exc}"
            )
            with contextlib.suppress(ConnectionError):
                await response.write(
                    responses.error_event(502 if isinstance(exc, StreamFailed) else 504, message)
                )
        except ConnectionError:
            stream.cancel()  # the client went away: stop the worker generating for nobody
            metrics.output_tokens[name] += tokens
            return response, 499
        metrics.output_tokens[name] += tokens
        try:
            await response.write_eof()
        except ConnectionError:
            return response, 499
        return response, 200
