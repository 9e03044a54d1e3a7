"""Is the graph serving yet, and the status table shown once it is.

The poll uses aiohttp, a runtime dependency already (the frontend is built on it), so that
``drivetrain up`` needs nothing a plain install lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence

import aiohttp
from rich.table import Table

from drivetrain.local.plan import MAIN_CONTAINER, ProcessSpec
from drivetrain.local.supervisor import ReplicaState


def expected_models(specs: Iterable[ProcessSpec]) -> set[str]:
    """Models the graph's workers announce (their ``--model-name``)."""
    return {m for s in specs for m in s.models}


def serves_all(listed: set[str], expected: set[str]) -> bool:
    """The frontend serves the graph: every expected model, or any model when the workers'
    names are not known from their flags (an ``http`` engine that reads them upstream)."""
    return expected <= listed if expected else bool(listed)


async def listed_models(session: aiohttp.ClientSession, url: str) -> set[str]:
    try:
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with session.get(f"{url}/v1/models", timeout=timeout) as resp:
            body = await resp.json(content_type=None) if resp.status == 200 else {}
        data = body.get("data") or []
    except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
        return set()
    return {m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)}


async def live_instances(session: aiohttp.ClientSession, url: str) -> int:
    """How many worker instances the frontend routes to (its ``/health``)."""
    try:
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with session.get(f"{url}/health", timeout=timeout) as resp:
            body = await resp.json(content_type=None)
        return len(body.get("instances") or [])
    except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
        return 0


async def wait_until_serving(
    url: str,
    expected: set[str],
    stopping: asyncio.Event,
    workers: int = 0,
    interval: float = 0.25,
) -> set[str] | None:
    """Poll ``url`` until it serves ``expected`` through at least ``workers`` instances (every
    worker process of the graph registered, so "ready" means every replica serves); None if
    ``stopping`` is set first."""
    async with aiohttp.ClientSession() as session:
        while not stopping.is_set():
            listed = await listed_models(session, url)
            if serves_all(listed, expected) and (
                workers == 0 or await live_instances(session, url) >= workers
            ):
                return listed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)
    return None


def status_table(replicas: Sequence[ReplicaState], urls: Sequence[str], models: set[str]) -> Table:
    title = f"serving {', '.join(sorted(models))} at {', '.join(urls)}"
    table = Table(title=title, title_justify="left")
    for column in ("service", "replica", "type", "pid", "state", "restarts", "listens"):
        table.add_column(column)
    for r in replicas:
        spec = r.spec
        table.add_row(
            spec.service,
            str(spec.replica)
            if spec.container == MAIN_CONTAINER
            else f"{spec.replica} {spec.container}",
            spec.component_type,
            str(r.pid or "-"),
            r.state,
            str(r.restarts),
            f"port {spec.port}" if spec.port else "-",
        )
    return table
