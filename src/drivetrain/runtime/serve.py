"""Running a frontend or a worker until told to stop: the CLI's and the Python API's entry.

``run_frontend`` and ``run_worker`` start the server, call ``on_ready`` once it listens (and, for
a worker, is registered), wait for ``stop`` (default: SIGTERM or SIGINT), and stop it in the
order docs/runtime.md describes.  A failure to start raises before ``on_ready``, with nothing
left running.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol, TypeVar

from drivetrain.runtime.engines.base import Engine
from drivetrain.runtime.frontend.server import FrontendConfig, RunningFrontend
from drivetrain.runtime.worker import RunningWorker, WorkerConfig

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Running(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


R = TypeVar("R", bound=_Running)


async def _serve(
    running: R,
    stop: asyncio.Event | None,
    on_ready: Callable[[R], None] | None,
    ready: asyncio.Event | None = None,
    crashed: asyncio.Event | None = None,
) -> None:
    """Start ``running``, wait for ``stop`` (default: a signal), stop it; nothing is left
    running when the start fails. ``ready`` (default: the start returning) is what ``on_ready``
    waits for; it is not called when ``stop`` comes first.  ``crashed`` ends the wait like
    ``stop`` (the caller raises what went wrong).

    The signal handlers go in before the start: a SIGTERM that arrives between "ready" and the
    wait (a supervisor reacting to the ready line) must stop the server gracefully, not kill
    the process with the default action.
    """
    loop = asyncio.get_running_loop()
    own_signals = stop is None
    if stop is None:
        stop = asyncio.Event()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await running.start()
        except BaseException:
            await running.stop()
            raise
        ends = [stop] if crashed is None else [stop, crashed]
        try:
            if on_ready is not None:
                if ready is not None and not ready.is_set():
                    await _first(ready, *ends)
                if not any(e.is_set() for e in ends):
                    on_ready(running)
            await _first(*ends)
        finally:
            await running.stop()
    finally:
        if own_signals:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def run_frontend(
    config: FrontendConfig,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[RunningFrontend], None] | None = None,
) -> None:
    """Serve the OpenAI-compatible frontend until ``stop`` is set (default: a signal)."""
    await _serve(RunningFrontend(config), stop, on_ready)


async def run_worker(
    config: WorkerConfig,
    engine: Engine,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[RunningWorker], None] | None = None,
    on_standby: Callable[[RunningWorker], None] | None = None,
) -> None:
    """Serve ``engine`` and keep it registered in discovery until ``stop`` is set;
    ``on_ready`` once registered (a sidecar registers once its upstream answers; a failover
    shadow once it took the lock), ``on_standby`` when it is a warmed shadow waiting for it."""
    running = RunningWorker(config, engine)
    announce = (
        asyncio.ensure_future(_call_when_set(running.standby, on_standby, running))
        if on_standby is not None
        else None
    )
    try:
        await _serve(running, stop, on_ready, ready=running.registered, crashed=running.crashed)
    finally:
        if announce is not None:
            announce.cancel()
    if running.failure is not None:
        raise running.failure


async def _call_when_set(
    event: asyncio.Event, callback: Callable[[RunningWorker], None], running: RunningWorker
) -> None:
    await event.wait()
    callback(running)
