"""Engine failover in drivetrain's runtime: the lock, the shadow, and the frontend's side.

Real flocks (held by real processes, dropped by the kernel at SIGKILL), real workers and
registrations on a memory store, a real frontend and request plane.  The same through the CLI
as separate processes is in test_failover_processes.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from drivetrain.runtime.engines.echo import EchoEngine
from drivetrain.runtime.failover import FailoverLock, FailoverLockError
from drivetrain.runtime.frontend.admission import DEFAULT_RETRY_WINDOW_S
from drivetrain.runtime.worker import RunningWorker, WorkerConfig
from tests.runtime.serving_support import (
    Stack,
    chat_body,
    closed_port_address,
    serving_stack,
)

# ---- the lock ----------------------------------------------------------------------------------


async def test_one_holder_at_a_time_and_the_waiter_gets_it_when_released(tmp_path: Path) -> None:
    path = str(tmp_path / "failover.lock")
    active, shadow = FailoverLock(path), FailoverLock(path)
    assert active.try_acquire()
    assert not shadow.try_acquire()
    waiting = asyncio.create_task(shadow.acquire())
    await asyncio.sleep(0.2)
    assert not waiting.done()  # blocked in the kernel, not spinning to a wrong answer
    active.release()
    await asyncio.wait_for(waiting, 5)
    assert shadow.held
    assert not FailoverLock(path).try_acquire()
    shadow.release()


async def test_the_kernel_hands_the_lock_over_when_its_holder_is_sigkilled(tmp_path: Path) -> None:
    path = tmp_path / "failover.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = FailoverLock(str(path))
        waiting = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.2)
        assert not waiting.done()
        holder.send_signal(signal.SIGKILL)
        await asyncio.wait_for(waiting, 5)
        assert lock.held
        lock.release()
    finally:
        holder.kill()
        holder.wait()


async def test_an_abandoned_wait_holds_nothing_afterwards(tmp_path: Path) -> None:
    path = str(tmp_path / "failover.lock")
    active, shadow = FailoverLock(path), FailoverLock(path)
    assert active.try_acquire()
    waiting = asyncio.create_task(shadow.acquire())
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    active.release()
    await asyncio.sleep(0.2)  # the abandoned kernel call may have been granted and dropped
    third = FailoverLock(path)
    assert third.try_acquire()
    third.release()


def test_a_lock_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FailoverLockError, match=r"failover lock .*/nope/lock: cannot open"):
        FailoverLock(str(tmp_path / "nope" / "lock")).try_acquire()


# ---- the worker: active and shadow --------------------------------------------------------------


def failover_worker(stack: Stack, lock: str, engine: object | None = None) -> RunningWorker:
    return RunningWorker(
        WorkerConfig(model_name="tiny", lease_ttl=5, failover_lock=lock),
        engine or EchoEngine(),  # type: ignore[arg-type]
        store=stack.store,
    )


async def test_the_shadow_is_warm_but_unregistered_until_the_active_stops(tmp_path: Path) -> None:
    lock = str(tmp_path / "failover.lock")
    async with serving_stack() as stack:
        active = failover_worker(stack, lock)
        shadow = failover_worker(stack, lock)
        await active.start()
        await shadow.start()
        try:
            assert active.registered.is_set() and not active.standby.is_set()
            assert shadow.standby.is_set() and not shadow.registered.is_set()
            assert shadow.server.port  # listening already: nothing to bind at takeover
            await stack.wait_routable("tiny", active.instance_id)
            assert set(stack.frontend.table.instances) == {active.instance_id}
            holder = FailoverLock(lock).holder()
            assert holder is not None and holder["instance_id"] == active.instance_id

            await active.stop()
            await asyncio.wait_for(shadow.registered.wait(), 5)
            assert not shadow.standby.is_set()
            await stack.wait_routable("tiny", shadow.instance_id)
            reply = await stack.client().chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "after"}]
            )
            assert reply.choices[0].message.content == "after"
            assert FailoverLock(lock).holder()["instance_id"] == shadow.instance_id  # type: ignore[index]
        finally:
            await shadow.stop()
            await active.stop()


async def test_a_stopped_shadow_gives_up_its_wait(tmp_path: Path) -> None:
    lock = str(tmp_path / "failover.lock")
    async with serving_stack() as stack:
        active = failover_worker(stack, lock)
        shadow = failover_worker(stack, lock)
        await active.start()
        await shadow.start()
        await shadow.stop()
        await active.stop()
        assert not shadow.registered.is_set()
        assert FailoverLock(lock).try_acquire()  # nothing is left holding it


# ---- the frontend: the retry window and quarantine on a dropped connection ----------------------


async def post_chat(url: str, **extra: object) -> tuple[int, dict, float]:
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=chat_body(**extra)) as resp,
    ):
        return resp.status, await resp.json(), time.monotonic() - started


async def test_a_request_waits_in_the_retry_window_for_an_instance_to_register() -> None:
    async with serving_stack(retry_window=30.0) as stack:
        # The model is known (its card), but its only instance is dead: the request must wait.
        await stack.add_records("tiny", closed_port_address(), ["chat"])
        request = asyncio.create_task(post_chat(stack.url))
        await asyncio.sleep(0.5)
        assert not request.done()
        await stack.add_worker(EchoEngine())
        status, body, _ = await asyncio.wait_for(request, 10)
        assert status == 200
        assert body["choices"][0]["message"]["content"] == "hello there"


async def test_after_the_retry_window_it_is_a_503_and_without_one_at_once() -> None:
    async with serving_stack(retry_window=1.0) as stack:
        await stack.add_records("tiny", closed_port_address(), ["chat"])
        status, body, waited = await post_chat(stack.url)
        assert status == 503
        assert body["error"]["code"] == "model_unavailable"
        assert "cannot connect" in body["error"]["message"]  # the last error is named
        assert waited >= 1.0
    async with serving_stack(retry_window=0.0) as stack:
        await stack.add_records("tiny", closed_port_address(), ["chat"])
        status, _, _ = await post_chat(stack.url)
        assert status == 503


async def test_the_retry_window_never_outlasts_the_request_timeout() -> None:
    async with serving_stack(retry_window=30.0, request_timeout=1.0) as stack:
        await stack.add_records("tiny", closed_port_address(), ["chat"])
        status, _, waited = await post_chat(stack.url)
        assert status == 503
        assert waited < 10.0


async def test_a_dropped_connection_quarantines_its_instance_without_a_failed_request() -> None:
    async with serving_stack(retry_window=30.0) as stack:
        dying = await stack.add_worker(EchoEngine())
        status, _, _ = await post_chat(stack.url)  # opens the frontend's connection to it
        assert status == 200
        assert stack.frontend.frontend.metrics.retries["tiny"] == 0
        # The worker's side hangs up while its records stay (as after a SIGKILL, until the
        # lease expires): no request is in flight, yet the instance is out of rotation at once.
        await dying.server.stop()

        def quarantined() -> bool:
            now = asyncio.get_running_loop().time()
            targets = stack.frontend.table.models["tiny"].targets
            return [t.down_until > now for t in targets] == [True]

        await stack.wait(quarantined)
        assert dying.instance_id in stack.frontend.table.instances  # still registered
        request = asyncio.create_task(post_chat(stack.url, text="later"))
        await asyncio.sleep(0.3)
        assert not request.done()  # waiting in the window, not sent to the dead address
        await stack.add_worker(EchoEngine())
        status, body, _ = await asyncio.wait_for(request, 10)
        assert status == 200
        assert body["choices"][0]["message"]["content"] == "later"
        assert stack.frontend.frontend.metrics.retries["tiny"] == 0  # never tried the dead one


async def test_a_request_waiting_in_the_window_wakes_when_a_quarantine_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from drivetrain.runtime.frontend import registry

    monkeypatch.setattr(registry, "QUARANTINE_S", 0.5)
    async with serving_stack(retry_window=30.0) as stack:
        await stack.add_worker(EchoEngine())
        status, _, _ = await post_chat(stack.url)
        assert status == 200
        # The connection drops but the worker lives on (a network blip): quarantined, and no
        # discovery change will come to wake a waiting request; the quarantine's end must.
        (target,) = stack.frontend.table.models["tiny"].targets
        target.client.drop("a blip")
        await stack.wait(lambda: target.down_until > asyncio.get_running_loop().time())
        status, body, waited = await post_chat(stack.url, text="back")
        assert status == 200
        assert body["choices"][0]["message"]["content"] == "back"
        assert waited < 10.0


def test_the_cli_default_window_is_the_frontends() -> None:
    import inspect

    from drivetrain.cli.runtime_cmds import frontend

    option = inspect.signature(frontend).parameters["retry_window"].default
    assert option.default == DEFAULT_RETRY_WINDOW_S


def test_a_process_holding_the_lock_shows_in_proc_locks(tmp_path: Path) -> None:
    """The lock is a real flock: the kernel lists it against the holder's pid."""
    lock = FailoverLock(str(tmp_path / "failover.lock"))
    assert lock.try_acquire()
    try:
        inode = os.stat(lock.path).st_ino
        locks = Path("/proc/locks").read_text()
        assert any(
            "FLOCK" in line and f" {os.getpid()} " in line and line.split()[5].endswith(f":{inode}")
            for line in locks.splitlines()
        )
    finally:
        lock.release()
