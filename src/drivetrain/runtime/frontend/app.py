"""aiohttp application: the OpenAI routes, /health, /live, /metrics.

A request's life: route enabled? → body valid? → model known? → fits the context? (counted here
when the tokenizer is readable, ``tokens.py``) → admitted (the model's queue, ``admission.py``)
→ pick a live instance with room → open a stream on its request-plane connection → wait for the
first frame.  A failure before the first frame quarantines that instance and tries another (the
client never sees duplicate output); with none left it waits up to the retry window for one to
come (a failover); after the first frame, a streamed response ends with an ``event: error`` and
no ``[DONE]``.  A client that goes away cancels its handler (aiohttp's ``handler_cancellation``,
set by ``server.py``), and with it the work on the worker.  ``drain()`` stops admitting, lets
requests in flight finish for a bounded time, then ends the rest with a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from drivetrain.runtime.engines.base import EngineError
from drivetrain.runtime.eventloop import OnOneLoop
from drivetrain.runtime.frontend import generate, responses
from drivetrain.runtime.frontend.admission import Rejected
from drivetrain.runtime.frontend.disagg import open_routed
from drivetrain.runtime.frontend.errors import (
    ApiError,
    errors_as_openai,
    frame_error,
)
from drivetrain.runtime.frontend.kv_router import KvRouter, Route, make_route
from drivetrain.runtime.frontend.prompt_ids import PromptIds
from drivetrain.runtime.frontend.registry import ServedModel, ServingTable
from drivetrain.runtime.frontend.router import Router
from drivetrain.runtime.frontend.tokens import PromptTokens, api_error
from drivetrain.runtime.frontend.validate import parse_body
from drivetrain.runtime.metrics import FrontendMetrics
from drivetrain.runtime.transport import frames
from drivetrain.runtime.transport.client import ClientStream, StreamFailed
from drivetrain.runtime.transport.server import DRAINING
from drivetrain.runtime.weightcontrol import MISMATCH

log = logging.getLogger(__name__)

RETRY_AFTER_S = "2"
MAX_ATTEMPTS = 3
SHUTTING_DOWN = "the frontend is shutting down"
#: every response names the weight version that produced it (docs/rl.md)
VERSION_HEADER = "x-drivetrain-weight-version"
ENDPOINT_NAMES = {
    "chat": "chat_completions",
    "completions": "completions",
    "embeddings": "embeddings",
    "generate": "generate",
}
ROUTE_PATHS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "generate": "/v1/generate",
}
#: the model type a route needs, where it is not the route's own name: token-in/token-out
#: serves the models that serve completions
MODEL_TYPE = {"generate": "completions"}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Echo ``x-request-id`` so callers can match responses and logs (as Dynamo does)."""
    request_id = request.headers.get("x-request-id")
    if request_id is not None:
        response.headers["x-request-id"] = request_id


class _EventStream(web.StreamResponse):
    """An SSE response whose headers leave with its first events, in one write.

    The first frame is already here when the response starts (``_open`` waited for it), so
    holding the headers back delays nothing; it spares the client one wake-up and the frontend
    one syscall per response (aiohttp buffers them until the first write, as ``web.Response``
    does)."""

    _send_headers_immediately = False


class Frontend(OnOneLoop):
    def __init__(
        self,
        table: ServingTable,
        router: Router,
        request_timeout: float = 600.0,
        metrics: FrontendMetrics | None = None,
        scope_description: str = "every namespace",
        tokens: PromptTokens | None = None,
        kv: KvRouter | None = None,
        disagg_threshold: int = 0,
        event_per_token: bool = False,
    ) -> None:
        self.table = table
        self.router = router
        self.request_timeout = request_timeout
        self.metrics = metrics or FrontendMetrics()
        self.metrics.instances_source = table.instance_counts
        self.metrics.queued_source = table.queued
        self.scope_description = scope_description
        self.tokens = tokens or PromptTokens()
        self.shutting_down = False
        #: ``--router kv``/``kv-approx`` (None: ``router`` alone chooses)
        self.kv = kv
        #: disaggregated serving: prompts with fewer uncached tokens skip the prefill instance
        self.disagg_threshold = disagg_threshold
        #: ``--event-per-token``: one SSE content event per token, not one per write
        self.event_per_token = event_per_token
        self.prompt_ids = kv.prompt_ids if kv is not None else PromptIds()
        self.metrics.kv_blocks_source = kv.index.block_counts if kv is not None else dict

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[errors_as_openai], client_max_size=32 * 1024 * 1024)
        app.on_response_prepare.append(_echo_request_id)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model:.+}", self.get_model)
        app.router.add_post(ROUTE_PATHS["chat"], self.chat)
        app.router.add_post(ROUTE_PATHS["completions"], self.completions)
        app.router.add_post(ROUTE_PATHS["embeddings"], self.embeddings)
        app.router.add_post(ROUTE_PATHS["generate"], self.generate)
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
        instances = []
        for _, record in sorted(self.table.instances.items()):
            entry = record.model_dump()
            client = self.table.client_for(record.address)
            # The worker's own count of requests in flight (its last load report, every
            # frontend's requests) and this frontend's requests on it.
            reported = client.reported if client is not None else None
            entry["active"] = reported[0] if reported is not None else None
            entry["in_flight"] = client.in_flight if client is not None else 0
            instances.append(entry)
        return _json(
            {
                "status": "healthy",
                "scope": self.scope_description,
                "models": sorted(self.table.models),
                "instances": instances,
                "queued": {name: n for name, n in sorted(self.table.queued().items()) if n},
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

    async def generate(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "generate")

    async def _serve(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        """One request's pipeline: (1) check: not shutting down, route enabled, body valid,
        model known, prompt within the context (``tokens.py``); (2) admit: the model's queue
        (``admission.py``), the one per-model step (the RL API's pause holds requests there
        too); (3) route: pick a live instance with room and open a stream, retrying others
        until the first frame (``_open``; by the prompt's KV blocks, and prefill then decode
        for a disaggregated model, in ``disagg.open_routed``); (4) respond: embeddings, unary,
        or SSE with one write per batch of frames."""
        loop = self.loop
        started = loop.time()
        deadline = started + self.request_timeout
        label = ENDPOINT_NAMES[endpoint]
        table = self.table
        metrics = self.metrics
        try:
            if self.shutting_down:
                metrics.rejected[("", "shutting_down")] += 1
                raise ApiError(
                    503, SHUTTING_DOWN, "shutting_down", headers={"Retry-After": RETRY_AFTER_S}
                )
            model_type = MODEL_TYPE.get(endpoint, endpoint)
            if not table.serves(model_type):
                raise ApiError(
                    404,
                    f"{ROUTE_PATHS[endpoint]} is not enabled: "
                    f"no model of type '{model_type}' is registered",
                    "endpoint_disabled",
                )
            raw = await request.read()
            body = parse_body(raw, endpoint)
            name = body["model"]
            model = table.models.get(name)
            state = model.state if model is not None else table.state(name)
            if state is None or model_type not in state.model_types:
                raise ApiError(
                    404, f"The model `{name}` does not exist.", "model_not_found", "model"
                )
        except ApiError as err:
            # Counted under model "" so that made-up names cannot grow the label set.
            metrics.request_done("", label, err.status, False)
            raise
        stream_flag = bool(body.get("stream")) and endpoint != "embeddings"
        metrics.inflight[name] += 1
        status = 500
        stream: ClientStream | None = None
        routes: list[Route] = []  # KV routing's bookings, given back when the request ends
        try:
            if endpoint == "generate":
                generate.check_context(model.context_length if model else None, body)
            elif model is not None:
                await self.tokens.check(
                    name, model.tokenizer, model.context_length, endpoint, body, len(raw)
                )
            try:
                await state.gate.admit(deadline)
            except Rejected as rejected:
                metrics.rejected[(name, rejected.reason)] += 1
                raise self._rejection(rejected) from None
            if endpoint not in ("embeddings", "generate") and (
                self.kv is not None or (model is not None and model.disaggregated)
            ):
                # KV routing and disaggregation (docs/kv-routing.md): their own step.
                stream, first, version = await open_routed(
                    self, name, endpoint, body, deadline, routes
                )
            else:
                stream, first, version = await self._open(name, endpoint, body, deadline)
            if endpoint == "embeddings":
                response = self._embeddings_response(name, body, first)
            elif endpoint == "generate" and stream_flag:
                headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
                if version is not None:
                    headers[VERSION_HEADER] = version
                streamed, status = await generate.streamed(request, name, stream, first, headers)
                return streamed
            elif endpoint == "generate":
                response = await generate.unary(name, stream, first)
            elif stream_flag:
                streamed, status = await self._stream_response(
                    request, endpoint, name, body, stream, first, started, version
                )
                return streamed
            else:
                response = await self._unary_response(endpoint, name, stream, first, started)
            if version is not None:
                response.headers[VERSION_HEADER] = version
            status = response.status
            return response
        except ApiError as err:
            status = err.status
            if err.code == "context_length_exceeded":
                metrics.rejected[(name, "context_length")] += 1
            raise
        except TimeoutError:
            status = 504
            raise ApiError(504, "request timed out before it was routed", "timeout") from None
        except asyncio.CancelledError:
            status = 499  # the client went away (the finally below stops the worker)
            raise
        finally:
            if stream is not None:
                stream.cancel()  # no-op when it finished; stops the worker when we were cancelled
            for route in routes:
                route.release()
            metrics.inflight[name] -= 1
            metrics.request_done(name, label, status, stream_flag)
            metrics.duration.observe((name, label), loop.time() - started)

    def _rejection(self, rejected: Rejected) -> ApiError:
        config = self.table.admission
        if rejected.overloaded:
            return ApiError(
                config.overload_status,
                rejected.message,
                "model_overloaded",
                headers={"Retry-After": str(config.retry_after)},
            )
        code = "shutting_down" if rejected.reason == "shutting_down" else "model_unavailable"
        return ApiError(503, rejected.message, code, headers={"Retry-After": RETRY_AFTER_S})

    async def prompt_route(self, model: ServedModel, endpoint: str, body: dict[str, Any]) -> Route:
        """The prompt's ids and block hashes when this frontend has the model's tokenizer files
        (the one tokenization rule, ``tokens.py``), else a route without them."""
        counter = await self.tokens.counter(model.name, model.tokenizer)
        ids = None
        if counter is not None:
            try:
                ids = await self.prompt_ids.ids(counter, endpoint, body)
            except EngineError as exc:  # a chat template that refuses the messages
                raise api_error(exc) from None
        return make_route(ids, model.kv_block_size)

    async def _open(
        self,
        name: str,
        endpoint: str,
        body: dict[str, Any],
        deadline: float,
        route: Route | None = None,
        role: str | None = None,
        op: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[ClientStream, tuple[str, Any], str | None]:
        """A stream, its first frame and the weight version it runs on, retrying other
        instances while nothing was received.

        With a ``route`` the KV router chooses (``kv_router.py``) and the prompt's ids go with
        the request; ``role`` picks a disaggregated model's prefill or decode instances; ``op``
        (default: ``endpoint``) and ``extra``: the request frame's op and more of its payload
        (``disagg.py``).

        Instances with room come first (the router picks among them).  When no untried live
        instance is left, the request waits up to the retry window (``AdmissionConfig``, from
        the first time it found none) for the routing table to offer one: a failover shadow
        registering, a quarantine ending, a worker starting.  Only then is it a 503.  An
        instance that refuses the request because it serves another weight version than the
        committed one (it lags behind a commit, docs/rl.md) is no failure: it is skipped
        without quarantine and without counting as an attempt.
        """
        loop = self.loop
        tried: set[str] = set()
        last_error = ""
        window_ends: float | None = None
        attempts = 0
        while attempts < MAX_ATTEMPTS and not self.shutting_down:
            now = loop.time()
            current = self.table.models.get(name)  # rebuilt on every discovery change
            committed = current.state.committed if current is not None else None
            targets = current.targets if current is not None else []
            live = current.live_targets(now, role) if current is not None else []
            untried = [t for t in live if t.instance_id not in tried]
            if not untried:
                if window_ends is None:
                    window_ends = min(now + self.table.admission.retry_window, deadline)
                if now >= window_ends:
                    break
                # Wake at the next rebuild, or when the first quarantine here ends.
                wake = min([window_ends, *(t.down_until for t in targets if t.down_until > now)])
                await self.table.wait_for_change(wake - now)
                continue
            attempts += 1
            candidates = [t for t in untried if t.has_room()] or untried
            if route is None or self.kv is None:
                target = self.router.pick(name, candidates)
            else:
                target = self.kv.pick(candidates, route, now)
            tried.add(target.instance_id)
            stream: ClientStream | None = None
            try:
                payload = extra
                if route is not None and route.ids is not None:
                    payload = {**(extra or {}), "ids": route.ids}  # not tokenized again there
                stream = await target.client.open(op or endpoint, body, payload, committed)
                stream.set_deadline(deadline)
                first = await stream.next()
                if first[0] == frames.ERROR and len(first[1]) > 2:
                    code = first[1][2]
                    if code == DRAINING:
                        raise StreamFailed(f"instance {target.address} is draining", True)
                    if code == MISMATCH:
                        attempts -= 1  # its version is known now: routing skips it
                        continue
                # The worker accepted the committed version it was sent (when there is one);
                # else its load reports say which version it serves, which cannot change while
                # a request runs there (weightcontrol.py).
                return stream, first, committed or target.client.weight_version
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
            except BaseException:
                if stream is not None:
                    stream.cancel()  # the client left before the first frame: stop the worker
                raise
        if self.shutting_down:
            raise ApiError(503, SHUTTING_DOWN, "shutting_down", headers={"Retry-After": "1"})
        # No live instance (the wait for one may have been cut short by the request's own
        # deadline): a 503 that says so, not a timeout that would hide why.
        self.metrics.rejected[(name, "no_instance")] += 1
        detail = f" (last error: {last_error})" if last_error else ""
        raise ApiError(
            503,
            f"Model `{name}` has no live instance right now{detail}",
            "model_unavailable",
            headers={"Retry-After": RETRY_AFTER_S},
        )

    # ---- stopping ------------------------------------------------------------------------

    def stop_admitting(self) -> None:
        """``/live`` answers 503, new requests and queued ones get 503 (``shutting_down``)."""
        self.shutting_down = True
        self.table.close_gates(SHUTTING_DOWN)

    async def drain(self, timeout: float) -> int:
        """Stop admitting, let requests in flight finish for up to ``timeout`` s, then end
        those still running with a 503 (an error event for a stream that started); returns
        how many were ended that way."""
        self.stop_admitting()
        loop = self.loop
        deadline = loop.time() + timeout
        inflight = self.metrics.inflight
        while any(inflight.values()) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        ended = 0
        for client in self.table.clients():
            for stream in list(client.streams.values()):
                stream.abort(503, f"{SHUTTING_DOWN} (its {timeout:g} s drain ran out)")
                ended += 1
        # Their handlers now write the error and return; give them a moment to.
        grace = loop.time() + 1.0
        while any(inflight.values()) and loop.time() < grace:
            await asyncio.sleep(0.01)
        return ended

    def _embeddings_response(
        self, name: str, body: dict[str, Any], first: tuple[str, Any]
    ) -> web.Response:
        kind, payload = first
        if kind == frames.ERROR:
            raise frame_error(payload)
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
        loop = self.loop
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
                    if len(payload) > 3:
                        self.metrics.prompt_cache(stream.address, payload[1], payload[3])
                    rid = responses.request_id(endpoint)
                    return web.Response(
                        body=responses.unary_body(
                            endpoint, rid, int(time.time()), name, "".join(pieces), payload
                        ),
                        content_type="application/json",
                    )
                elif kind == frames.ERROR:
                    raise frame_error(payload)
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
        version: str | None = None,
    ) -> tuple[web.StreamResponse, int]:
        """Send the SSE stream; returns it and the status to count (200, or 499: client left)."""
        kind, payload = first
        if kind == frames.ERROR:
            # Nothing sent yet: a plain JSON error with the worker's status is more useful.
            raise frame_error(payload)
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        if version is not None:
            headers[VERSION_HEADER] = version
        response = _EventStream(headers=headers)
        await response.prepare(request)
        writer = responses.ChunkWriter(
            endpoint, responses.request_id(endpoint), int(time.time()), name
        )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        loop = self.loop
        metrics = self.metrics
        key = (name,)
        last = started
        tokens = 0
        per_token = self.event_per_token
        # Frames that are already here leave together (never waiting for more): one SSE write
        # per batch of frames that arrived in one event-loop turn, and one content event per
        # write carrying every token text of the batch, as vLLM's deltas do when several tokens
        # are ready at once.  At low load that is one token per event; under load it spares
        # the client most of its per-event work (docs/performance.md).
        frames_now = [first, *stream.ready()]
        try:
            while True:
                out: list[bytes] = []
                texts: list[str] = []
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
                        if per_token:
                            for text, _n in payload:
                                writer.add_text(out, text)
                        else:
                            texts.extend([text for text, _n in payload])
                        continue
                    if texts:
                        writer.add_text(out, "".join(texts))
                        texts = []
                    if kind == frames.FINISH:
                        out.append(writer.finish(payload, include_usage))
                        if len(payload) > 3:
                            metrics.prompt_cache(stream.address, payload[1], payload[3])
                        done = True
                    elif kind == frames.ERROR:
                        out.append(responses.error_event(payload[0], payload[1]))
                        done = True
                if texts:
                    writer.add_text(out, "".join(texts))
                data = out[0] if len(out) == 1 else b"".join(out)
                if done:
                    # The last events and the end of the chunked body leave in one write.
                    await response.write_eof(data)
                    break
                if data:
                    await response.write(data)
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
