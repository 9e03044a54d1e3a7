"""Worker side of the request plane: serve an ``Engine`` to any number of frontends.

Besides each request's frames, every connection carries the worker's load (``l`` frames:
requests in flight on this worker over all connections, and the engine's capacity), written
with the next frames a connection sends whenever it changed, and to every connection when a
request ends, so that each frontend routes around a worker at capacity (docs/runtime.md,
"Abuse and overload"), and the weight version it serves (``weightcontrol.py``: frontends route
by it).  Control requests of the RL API (op ``rl``) run beside the requests and are not counted
in flight; ``abort_running`` ends every running request with ``finish_reason: "abort"``.  An
engine with a prefix cache (the mocker) also sends its KV events (``k`` frames) to each
connection whose frontend subscribed with a ``K`` frame, starting with a snapshot
(docs/kv-routing.md).  Stopping drains: new requests are refused with a retryable error, the
running ones get ``drain`` seconds, then each still running ends with a 503 error frame.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from drivetrain.runtime.engines.base import (
    Chunk,
    Engine,
    EngineError,
    Finish,
    GeneratesTokens,
    ReportsCapacity,
    TakesPromptIds,
    Tokens,
    TokenTexts,
)
from drivetrain.runtime.kv.cache import KvEvent, PrefixCache
from drivetrain.runtime.transport import frames
from drivetrain.runtime.weightcontrol import WeightControl

# Error codes the frontend acts on: a draining worker's refusal is retried on another instance.
DRAINING = "worker_draining"
STOPPED = "worker_stopped"

log = logging.getLogger(__name__)


class _Connection(asyncio.Protocol):
    """One frontend connection; each request runs as its own task (a slow one blocks nobody)."""

    def __init__(self, engine: Engine, server: RequestPlaneServer) -> None:
        self._engine = engine
        self._server = server
        self._decoder = frames.FrameDecoder()
        self._transport: asyncio.Transport | None = None
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.control_tasks: dict[int, asyncio.Task[None]] = {}
        self.aborted: set[int] = set()
        # Coalescing: token text per stream and finished frames, written once per loop turn.
        self._pending: dict[int, list[tuple[str, int]]] = {}
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self.load_sent: tuple[int, int | None, str] | None = None
        # Whether this frontend asked for KV events (``K``): only a KV router does, so that
        # the others get no event traffic at all.
        self.kv_subscribed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self._server.connections.add(self)

    def _send_snapshot(self) -> None:
        cache = self._server.kv_cache
        if cache is not None:
            self.send_kv(cache.snapshot())

    def send_kv(self, event: KvEvent) -> None:
        self._out.append(frames.encode(frames.KV_EVENT, frames.LOAD_STREAM, event))
        self._schedule()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server.connections.discard(self)
        for task in [*self.tasks.values(), *self.control_tasks.values()]:
            task.cancel()
        self.tasks.clear()
        self.control_tasks.clear()

    def data_received(self, data: bytes) -> None:
        try:
            received = self._decoder.feed(data)
        except frames.FrameError as exc:
            log.warning("dropping frontend connection: %s", exc)
            if self._transport is not None:
                self._transport.close()
            return
        for kind, sid, payload in received:
            if kind == frames.REQUEST:
                if payload.get("op") == "rl":
                    self.control_tasks[sid] = self._loop.create_task(self._control(sid, payload))
                    continue
                if self._server.draining:
                    self._send(
                        frames.ERROR,
                        sid,
                        frames.error_payload(503, "the worker is shutting down", DRAINING),
                    )
                    continue
                task = self._loop.create_task(self._run(sid, payload))
                self.tasks[sid] = task
            elif kind == frames.CANCEL:
                running = self.tasks.pop(sid, None) or self.control_tasks.pop(sid, None)
                if running is not None:
                    running.cancel()
            elif kind == frames.KV_RESYNC:
                # A KV router subscribing (first time), or one that missed an event: it
                # (re)builds its view from this snapshot, then follows the events.
                self.kv_subscribed = True
                self._send_snapshot()

    def close(self) -> None:
        if self._transport is not None:
            self._flush()  # a finish frame may still wait for its call_soon
            self._transport.close()

    async def _control(self, sid: int, payload: dict[str, Any]) -> None:
        """A control request of the RL API (``weightcontrol.py``): one RESULT frame."""
        try:
            answer = await self._server.control.handle(payload["body"])
            self._send(frames.RESULT, sid, answer)
        except asyncio.CancelledError:
            pass
        except EngineError as exc:
            self._send(
                frames.ERROR,
                sid,
                frames.error_payload(exc.status, exc.message, exc.code, exc.param),
            )
        except Exception as exc:
            log.exception("control request failed on stream %s", sid)
            self._send(frames.ERROR, sid, [500, f"control error: {type(exc).__name__}: {exc}"])
        finally:
            self.control_tasks.pop(sid, None)

    async def _run(self, sid: int, payload: dict[str, Any]) -> None:
        control = self._server.control
        version = control.version
        try:
            op = payload["op"]
            body = payload["body"]
            # The RL API (weightcontrol.py): held while paused; refused when the frontend
            # expects another version.  Two attribute reads when neither applies.
            expected = payload.get("v")
            if control.paused or (expected is not None and expected != version):
                await control.admit(expected)
                version = control.version
            engine = self._engine
            takes_ids = self._server.takes_ids
            if op == "embeddings":
                result = await engine.embed(body)
                self._send(frames.RESULT, sid, [result.vectors, result.prompt_tokens])
            elif op == "generate":
                await self._run_tokens(sid, body, version)
            elif op == "prefill":
                if not takes_ids:
                    raise EngineError(400, "this engine does not serve disaggregated prefill")
                done = await cast(TakesPromptIds, engine).prefill(
                    payload["of"], body, payload.get("ids")
                )
                self._send(frames.RESULT, sid, [done.prompt_tokens, done.cached_tokens])
            elif takes_ids:
                # The engine pushes each batch's texts from its own clock; this task sleeps
                # until the request ends.
                finish = await cast(TakesPromptIds, engine).generate_into(
                    op,
                    body,
                    payload.get("ids"),
                    lambda texts: self._push_texts(sid, texts),
                    bool(payload.get("transferred")),
                )
                self._send_finish(sid, finish, version)
            else:
                async for item in engine.generate(op, body):
                    if isinstance(item, TokenTexts):
                        self._push_texts(sid, item.texts)
                    elif isinstance(item, Chunk):
                        self._push(sid, item.text, item.tokens)
                    else:
                        self._send_finish(sid, item, version)
        except asyncio.CancelledError:
            if sid in self.aborted:  # the RL API's pause or update with mode abort
                self._send(frames.FINISH, sid, ["abort", 0, 0, 0, version])
        except EngineError as exc:
            self._send(
                frames.ERROR,
                sid,
                frames.error_payload(exc.status, exc.message, exc.code, exc.param),
            )
        except Exception as exc:
            log.exception("engine failed on stream %s", sid)
            self._send(frames.ERROR, sid, [500, f"engine error: {type(exc).__name__}: {exc}"])
        finally:
            self.tasks.pop(sid, None)
            self.aborted.discard(sid)
            self._server.request_ended()

    async def _run_tokens(self, sid: int, body: dict[str, Any], version: str) -> None:
        """``/v1/generate``: DATA frames carry ``[token_ids, logprobs]`` pairs."""
        engine = self._engine
        if not isinstance(engine, GeneratesTokens):
            raise EngineError(501, "this engine does not serve /v1/generate", "not_implemented")
        async for item in engine.generate_tokens(body):
            if isinstance(item, Tokens):
                self._push(sid, item.ids, item.logprobs)
            else:
                self._send_finish(sid, item, version)

    def _send_finish(self, sid: int, finish: Finish, version: str) -> None:
        self._send(
            frames.FINISH,
            sid,
            [
                finish.finish_reason,
                finish.prompt_tokens,
                finish.completion_tokens,
                finish.cached_tokens,
                version,
            ],
        )

    def _push(self, sid: int, text: Any, tokens: Any) -> None:
        batch = self._pending.get(sid)
        if batch is None:
            self._pending[sid] = [(text, tokens)]
            self._schedule()
        else:
            batch.append((text, tokens))  # a tuple: orjson writes the same array, cheaper

    def _push_texts(self, sid: int, texts: list[str]) -> None:
        items = [(text, 1) for text in texts]  # one item per token, as ``_push`` makes them
        batch = self._pending.get(sid)
        if batch is None:
            self._pending[sid] = items
            self._schedule()
        else:
            batch.extend(items)

    def _send(self, kind: str, sid: int, payload: Any) -> None:
        batch = self._pending.pop(sid, None)
        if batch is not None:
            self._out.append(frames.encode(frames.DATA, sid, batch))
        self._out.append(frames.encode(kind, sid, payload))
        self._schedule()

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if self._pending:
            for sid, batch in self._pending.items():
                out.append(frames.encode(frames.DATA, sid, batch))
            self._pending = {}
        load = self._server.load()
        if load != self.load_sent:
            self.load_sent = load
            out.append(frames.encode(frames.LOAD, frames.LOAD_STREAM, load))
        self._out = []
        if out and self._transport is not None:
            self._transport.write(b"".join(out))

    def abort_running(self) -> int:
        """End every running request with ``finish_reason: "abort"`` (the RL API)."""
        for sid, task in self.tasks.items():
            self.aborted.add(sid)
            task.cancel()
        return len(self.tasks)

    def abort_all(self, status: int, message: str) -> None:
        """End every running request with an error frame (the drain ran out)."""
        for sid, task in list(self.tasks.items()):
            self._send(frames.ERROR, sid, frames.error_payload(status, message, STOPPED))
            task.cancel()
        self.tasks.clear()


class RequestPlaneServer:
    """Listen on host:port (port 0 = any free one) and serve ``engine``."""

    def __init__(
        self,
        engine: Engine,
        host: str = "127.0.0.1",
        port: int = 0,
        control: WeightControl | None = None,
    ) -> None:
        self.engine = engine
        self.control = control or WeightControl(engine)
        self.control.attach(self)
        self.host = host
        self.port = port
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self.draining = False
        self._capacity = engine.capacity if isinstance(engine, ReportsCapacity) else None
        # Checked once: a runtime protocol check costs microseconds, too much per request.
        self.takes_ids = isinstance(engine, TakesPromptIds)
        # An engine with a prefix cache: its events go to every connected frontend.
        cache = getattr(engine, "kv_cache", None)
        self.kv_cache = cache if isinstance(cache, PrefixCache) else None
        if self.kv_cache is not None:
            self.kv_cache.listeners.append(self._broadcast_kv)

    def _broadcast_kv(self, event: KvEvent) -> None:
        for conn in self.connections:
            if conn.kv_subscribed:
                conn.send_kv(event)

    def load(self) -> tuple[int, int | None, str]:
        """What the ``l`` frames say: requests in flight, the engine's capacity now, and the
        weight version this worker serves."""
        capacity = self._capacity() if self._capacity is not None else None
        return self.in_flight, capacity, self.control.version

    def abort_running(self) -> int:
        return sum(conn.abort_running() for conn in list(self.connections))

    def request_ended(self) -> None:
        """Every connection learns the new load, idle ones too (their frontends may be waiting
        for room on this worker); a connection that already flushes this turn carries it."""
        for conn in self.connections:
            conn._schedule()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self.engine, self), self.host, self.port
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    @property
    def in_flight(self) -> int:
        return sum(len(conn.tasks) for conn in self.connections)

    async def stop(self, drain: float = 0.0) -> None:
        """Stop accepting connections and refuse new requests (retryable); let running requests
        finish for up to ``drain`` s; end the rest with a 503 error frame; then hang up."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self.in_flight:
            log.warning(
                "%d requests still running after the %gs drain: ending them", self.in_flight, drain
            )
        for conn in list(self.connections):
            conn.abort_all(
                503, f"the worker stopped before the request finished ({drain:g} s drain)"
            )
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
