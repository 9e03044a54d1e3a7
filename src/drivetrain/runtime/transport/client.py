"""Frontend side of the request plane: one persistent multiplexed connection per worker."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import Callable
from typing import Any

from drivetrain.errors import DrivetrainError
from drivetrain.runtime.eventloop import OnOneLoop
from drivetrain.runtime.transport import frames

_TERMINAL = (frames.FINISH, frames.RESULT, frames.ERROR)


class StreamFailed(DrivetrainError):
    """The worker could not be reached or dropped the stream.

    ``before_first`` is True when nothing had been received yet, so the request may be retried
    on another instance without the client seeing duplicate output.
    """

    def __init__(self, message: str, before_first: bool) -> None:
        super().__init__(message)
        self.before_first = before_first


class ClientStream:
    """Frames of one request, in order; ``next()`` raises ``StreamFailed`` or ``TimeoutError``."""

    __slots__ = ("_client", "_error", "_items", "_loop", "_timer", "_waiter", "received", "sid")

    def __init__(self, client: RequestPlaneClient, sid: int) -> None:
        self._client = client
        self._loop = client.loop
        self.sid = sid
        self._items: collections.deque[tuple[str, Any]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.received = False

    @property
    def address(self) -> str:
        """The worker's address (which instance answered)."""
        return self._client.address

    def set_deadline(self, when: float) -> None:
        """Fail with TimeoutError at loop time ``when`` unless finished before."""
        self._timer = self._loop.call_at(when, self._timeout)

    def _timeout(self) -> None:
        self._timer = None
        if self._error is None:
            self._fail(TimeoutError("request timed out"))
            self.cancel()

    def _feed(self, kind: str, payload: Any) -> None:
        self.received = True
        self._items.append((kind, payload))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> tuple[str, Any]:
        while not self._items:
            await self._wait()
        item = self._items.popleft()
        if item[0] in _TERMINAL:
            self.close()
        return item

    async def batch(self) -> list[tuple[str, Any]]:
        """Every frame received so far, at least one: frames that arrived together (one read
        from the worker) are handled together, so the frontend answers them with one write."""
        while not self._items:
            await self._wait()
        return self.ready()

    def ready(self) -> list[tuple[str, Any]]:
        """The frames already received (maybe none), without waiting."""
        items = list(self._items)
        self._items.clear()
        if items and items[-1][0] in _TERMINAL:  # a terminal frame is always the last
            self.close()
        return items

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def cancel(self) -> None:
        """Tell the worker to stop (client went away or timed out)."""
        if self._client.streams.pop(self.sid, None) is not None:
            self._client.send(frames.CANCEL, self.sid, None)
            self._client.stream_ended()
        self.close()

    def abort(self, status: int, message: str) -> None:
        """Stop the worker and end this stream with an error frame of our own (the frontend is
        shutting down): its reader answers the client as it answers a worker's error."""
        self.cancel()
        self._feed(frames.ERROR, frames.error_payload(status, message, "shutting_down"))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._client.streams.pop(self.sid, None) is not None:
            self._client.stream_ended()


class _Protocol(asyncio.Protocol):
    def __init__(self, client: RequestPlaneClient) -> None:
        self._client = client
        self._decoder = frames.FrameDecoder()

    def data_received(self, data: bytes) -> None:
        try:
            received = self._decoder.feed(data)
        except frames.FrameError as exc:
            self._client.drop(f"bad frame from worker: {exc}")
            return
        client = self._client
        streams = client.streams
        ended = False
        for kind, sid, payload in received:
            stream = streams.get(sid)
            if stream is not None:
                stream._feed(kind, payload)
                if kind in _TERMINAL:
                    del streams[sid]
                    ended = True
            elif kind == frames.LOAD:
                before = client.reported
                client.reported = payload
                ended = True
                # The weight version (third element, weightcontrol.py) decides routing.
                changed = len(payload) > 2 and (before is None or before[2:] != payload[2:])
                if changed and client.on_version is not None:
                    client.on_version()
            elif kind == frames.KV_EVENT and client.on_kv is not None:
                client.on_kv(payload)
        if ended and client.on_room is not None:
            client.on_room()

    def connection_lost(self, exc: Exception | None) -> None:
        client = self._client
        client.lost(f"connection to worker lost: {exc or 'closed by worker'}")
        if not client.closed and client.on_lost is not None:
            client.on_lost()


class RequestPlaneClient(OnOneLoop):
    """Requests to one worker address ``host:port`` over one lazily opened connection."""

    def __init__(self, address: str, connect_timeout: float = 3.0) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self._host = host.strip("[]")
        self._port = int(port)
        self._connect_timeout = connect_timeout
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self.streams: dict[int, ClientStream] = {}
        self.closed = False
        #: called when the worker's side drops the connection (not when this client closes it)
        self.on_lost: Callable[[], None] | None = None
        # The worker's last ``l`` frame: [requests in flight there, its capacity or None, the
        # weight version it serves].
        self.reported: list[Any] | None = None
        #: called when the worker reports another weight version (routing depends on it)
        self.on_version: Callable[[], None] | None = None
        # Called when a stream of this client ended or the worker reported its load: room may
        # have opened on the worker (the frontend's admission queues wait for that).
        self.on_room: Callable[[], None] | None = None
        # Called with each KV event ``[seq, kind, hashes]`` the worker sends, and with None when
        # the connection is lost (what the worker caches is unknown until it reconnects).
        self.on_kv: Callable[[list[Any] | None], None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self.streams)

    @property
    def weight_version(self) -> str | None:
        """The version the worker last reported (None before its first report)."""
        reported = self.reported
        return reported[2] if reported is not None and len(reported) > 2 else None

    def stream_ended(self) -> None:
        if self.on_room is not None:
            self.on_room()

    async def open(
        self,
        op: str,
        body: dict[str, Any],
        extra: dict[str, Any] | None = None,
        expected_version: str | None = None,
    ) -> ClientStream:
        """Send a request; raises StreamFailed(before_first=True) if the worker is unreachable.

        The stream counts in ``in_flight`` from the start, before a first connection is made,
        so that requests admitted together see each other when they look for room.
        ``expected_version``: the worker refuses the request (retryable) unless it serves this
        weight version (docs/rl.md, version-aware routing)."""
        sid = next(self._ids)
        stream = ClientStream(self, sid)
        self.streams[sid] = stream
        if self._transport is None:
            try:
                await self._connect()
            except BaseException:
                if self.streams.pop(sid, None) is not None:
                    self.stream_ended()
                raise
        payload: dict[str, Any] = {"op": op, "body": body}
        if extra:
            payload.update(extra)  # the prompt's ids, a prefill's op (docs/kv-routing.md)
        if expected_version is not None:
            payload["v"] = expected_version
        self.send(frames.REQUEST, sid, payload)
        return stream

    def request_kv_snapshot(self) -> None:
        """Ask the worker for its whole prefix cache (a KV event was lost or out of order)."""
        if self._transport is not None:
            self.send(frames.KV_RESYNC, frames.LOAD_STREAM, None)

    async def connect(self) -> None:
        """Open the connection now (the KV router wants every worker's events from the start);
        a failure is left for the first request to meet."""
        if self._transport is None and not self.closed:
            with contextlib.suppress(StreamFailed):
                await self._connect()

    async def _connect(self) -> None:
        if self.closed:
            raise StreamFailed(f"client for {self.address} is closed", before_first=True)
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._do_connect())
        task = self._connecting
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._connecting is task:
                self._connecting = None

    async def _do_connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                transport, _ = await loop.create_connection(
                    lambda: _Protocol(self), self._host, self._port
                )
        except (OSError, TimeoutError) as exc:
            raise StreamFailed(
                f"cannot connect to worker {self.address}: {exc or 'timed out'}", before_first=True
            ) from exc
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        if self.on_kv is not None:
            self.request_kv_snapshot()  # a KV router: subscribe, from a snapshot of the cache

    def send(self, kind: str, sid: int, payload: Any) -> None:
        self._out.append(frames.encode(kind, sid, payload))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if self._transport is not None and out:
            self._transport.write(b"".join(out))

    def drop(self, reason: str) -> None:
        if self._transport is not None:
            self._transport.abort()
        self.lost(reason)

    def lost(self, reason: str) -> None:
        self._transport = None
        self._out = []
        self.reported = None  # whatever answers at this address next starts afresh
        if self.on_kv is not None:
            self.on_kv(None)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream._fail(StreamFailed(reason, before_first=not stream.received))
        if streams:
            self.stream_ended()

    async def close_when_idle(self, timeout: float) -> None:
        """No new requests; the ones running may finish (up to ``timeout`` s), then close.

        Used when an instance leaves discovery: a worker shutting down gracefully deregisters
        first and still finishes what it is generating.
        """
        self.closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.streams and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await self.close()

    async def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()
        self.lost("client closed")
