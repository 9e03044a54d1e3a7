"""Fleet updates under concurrent streaming load (docs/rl.md, "The fleet transaction").

8 mocker workers, clients streaming chat completions without pause, and fleet updates one after
the other.  Checked on every response: it names one version (the header and the last chunk
agree); the versions one client sees never go back; no request started after a commit returned
is answered by an older version.  50 updates in a row (``RL_UPDATES`` sets another count): a
few seconds here, so the acceptance's run is part of ``make test``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass

import aiohttp

from drivetrain.runtime.engines.mocker import MockerEngine
from tests.paths import shared
from tests.runtime.serving_support import serving_stack

TOKEN = "test-admin-token"
UPDATES = int(os.environ.get("RL_UPDATES", "50"))
WORKERS = 8
CLIENTS = 12


@dataclass(frozen=True)
class Seen:
    client: int
    started: float
    header: int
    body: int


async def stream_once(session: aiohttp.ClientSession, url: str, client: int) -> Seen:
    started = time.monotonic()
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 6,
        "stream": True,
    }
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        header = int(resp.headers["x-drivetrain-weight-version"])
        last = None
        async for line in resp.content:
            if line.startswith(b"data: {"):
                last = json.loads(line[6:])
    assert last is not None and "weight_version" in last, last
    return Seen(client, started, header, int(last["weight_version"]))


async def test_fleet_updates_under_streaming_load_never_mix_versions() -> None:
    async with serving_stack(admin_token=TOKEN, request_timeout=60) as stack:
        for _ in range(WORKERS):
            engine = MockerEngine(
                model_path=str(shared("models", "tiny")), speedup_ratio=50, weight_load_s=0.01
            )
            await stack.add_worker(engine)
        seen: list[Seen] = []
        commits: list[tuple[float, int]] = []  # (when the update call returned, version)
        stop = asyncio.Event()

        async def client(index: int, session: aiohttp.ClientSession) -> None:
            while not stop.is_set():
                seen.append(await stream_once(session, stack.url, index))

        connector = aiohttp.TCPConnector(limit=CLIENTS + 4)
        async with aiohttp.ClientSession(connector=connector) as session:
            clients = [asyncio.create_task(client(i, session)) for i in range(CLIENTS)]
            await asyncio.sleep(0.3)
            for version in range(1, UPDATES + 1):
                async with session.post(
                    f"{stack.frontend.admin_url}/v1/rl/update_weights",
                    json={"model": "tiny", "version": str(version), "source": {"path": "/"}},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as resp:
                    answer = await resp.json()
                    assert resp.status == 200, answer
                commits.append((time.monotonic(), version))
                await asyncio.sleep(0.05)  # some traffic on each version
            await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*clients)

    assert len(seen) > UPDATES * 5, len(seen)
    # One version per response.
    assert all(s.header == s.body for s in seen)
    # Monotonic per client (responses in the order each client sent them).
    for index in range(CLIENTS):
        versions = [s.body for s in seen if s.client == index]
        assert versions == sorted(versions), (index, versions)
    # After a commit returned, no request that started later gets an older version.
    for when, version in commits:
        late = [s for s in seen if s.started > when and s.body < version]
        assert not late, (version, late[:3])
    # Traffic saw most versions (it ran through the updates, not around them).
    assert len({s.body for s in seen}) >= UPDATES // 2
