"""The fleet transaction with workers as real processes: one is SIGKILLed in the middle of an
update (docs/rl.md).  The fleet must roll back, say which instance failed, keep serving the old
version on the others, and commit the next update without the dead one.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.paths import shared
from tests.runtime.serving_processes import CliProcess
from tests.runtime.serving_support import serving_stack

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def worker(tmp_path: Path, store_url: str, index: int, load_ms: int) -> CliProcess:
    return CliProcess(
        [
            "worker",
            "--engine",
            "mocker",
            "--model-name",
            "tiny",
            "--model-path",
            str(shared("models", "tiny")),
            "--speedup-ratio",
            "20",
            "--discovery",
            store_url,
            "--lease-ttl",
            "2",
            "--weight-load-ms",
            str(load_ms),
        ],
        "drivetrain worker ready",
        tmp_path / f"worker-{index}.log",
    )


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with session.post(url, json=body, headers=AUTH) as resp:
        return resp.status, await resp.json()


async def test_a_worker_killed_mid_update_rolls_the_fleet_back(tmp_path: Path) -> None:
    store_url = f"file://{tmp_path / 'discovery'}"
    workers = [worker(tmp_path, store_url, i, 1500) for i in range(3)]
    async with serving_stack(admin_token=TOKEN, store_url=store_url) as stack:
        try:
            for process in workers:
                await asyncio.to_thread(process.start)
            await stack.wait(
                lambda: len(getattr(stack.frontend.table.models.get("tiny"), "targets", [])) == 3
            )
            victim = workers[1]
            assert victim.process is not None
            victim_address = victim.line.split(" at ")[1].split(",")[0]
            admin = stack.frontend.admin_url
            body = {"model": "tiny", "version": "v1", "source": {"path": "/"}}
            async with aiohttp.ClientSession() as session:
                updating = asyncio.create_task(post(session, f"{admin}/v1/rl/update_weights", body))
                await asyncio.sleep(0.5)  # every worker is loading (1.5 s)
                victim.process.send_signal(signal.SIGKILL)
                status, answer = await updating
                assert status == 409, answer
                assert answer["status"] == "rolled_back"
                dead = [i for i in answer["instances"] if i["address"] == victim_address]
                assert dead and dead[0]["state"] == "unreachable"
                assert answer["failed"] == [dead[0]["instance_id"]]
                alive = [i for i in answer["instances"] if i["address"] != victim_address]
                assert {(i["weight_version"], i["state"]) for i in alive} == {("0", "serving")}
                for _ in range(6):
                    async with session.post(
                        stack.url + "/v1/chat/completions",
                        json={
                            "model": "tiny",
                            "messages": [{"role": "user", "content": "hi"}],
                            "max_tokens": 3,
                        },
                    ) as resp:
                        assert resp.status == 200
                        assert resp.headers["x-drivetrain-weight-version"] == "0"
                # The next update goes through without it (quarantined, then its lease ends).
                body["version"] = "v2"
                status, answer = await post(session, f"{admin}/v1/rl/update_weights", body)
                assert status == 200, answer
                assert {i["weight_version"] for i in answer["instances"]} == {"v2"}
                assert victim_address not in {i["address"] for i in answer["instances"]}
        finally:
            for process in workers:
                process.stop()
