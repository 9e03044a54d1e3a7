"""The supervisor with real child processes: logs, restarts, give-up and orphan-free stops."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from drivetrain.local.backoff import RestartPolicy
from drivetrain.local.logs import LogSink
from drivetrain.local.supervisor import Supervisor
from tests.local.procs import alive, python_spec
from tests.waiting import eventually_async

FAST = RestartPolicy(initial_delay=0.05, max_delay=0.1, fast_crash_window=30, max_fast_crashes=3)
SLEEPER = "import time; print('up', flush=True); time.sleep(600)"


def sink() -> tuple[LogSink, io.StringIO]:
    out = io.StringIO()
    return LogSink(out, colour=False), out


async def test_child_output_is_prefixed_with_service_and_replica() -> None:
    log, out = sink()
    sup = Supervisor([python_spec("print('hello')", "Frontend", 0)], log, FAST)
    task = asyncio.create_task(sup.run())
    await eventually_async(lambda: "hello" in out.getvalue())
    sup.stop()
    await task
    assert "Frontend/0 | hello\n" in out.getvalue()


async def test_a_crashing_process_is_restarted_then_given_up_with_exit_1() -> None:
    log, out = sink()
    sup = Supervisor([python_spec("import sys; sys.exit(3)", "worker", 1)], log, FAST)
    code = await asyncio.wait_for(sup.run(), 30)
    assert code == 1
    assert sup.replicas[0].restarts == FAST.max_fast_crashes - 1
    assert sup.failure is not None
    assert "worker/1 exited 3 times in a row" in sup.failure
    assert "last exit code 3" in sup.failure
    assert "restarting in" in out.getvalue()


async def test_giving_up_on_one_replica_stops_the_others() -> None:
    log, _ = sink()
    sup = Supervisor(
        [python_spec(SLEEPER, "frontend"), python_spec("raise SystemExit(2)", "worker")],
        log,
        FAST,
    )
    code = await asyncio.wait_for(sup.run(), 30)
    assert code == 1
    sleeper_pid = sup.replicas[0].pid
    assert sleeper_pid is not None and not alive(sleeper_pid)


async def test_stop_terminates_every_child_and_its_own_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('up', flush=True); time.sleep(600)\n"
    )
    log, out = sink()
    sup = Supervisor([python_spec(code, "a"), python_spec(SLEEPER, "b")], log, FAST, grace=5)
    task = asyncio.create_task(sup.run())
    await eventually_async(lambda: out.getvalue().count("| up") == 2 and pidfile.exists())
    pids = [r.pid for r in sup.replicas] + [int(pidfile.read_text())]
    assert all(pid is not None and alive(pid) for pid in pids)
    sup.stop()
    assert await task == 0
    assert [pid for pid in pids if pid is not None and alive(pid)] == []
    assert {r.state for r in sup.replicas} == {"stopped"}


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period() -> None:
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True); time.sleep(600)\n"
    )
    log, out = sink()
    sup = Supervisor([python_spec(stubborn, "stubborn")], log, FAST, grace=0.5)
    task = asyncio.create_task(sup.run())
    await eventually_async(lambda: "| up" in out.getvalue())
    pid = sup.replicas[0].pid
    sup.stop()
    await task
    assert pid is not None and not alive(pid)
    assert "stubborn/0 still running after 0.5 s; SIGKILL" in out.getvalue()


async def test_a_process_that_exits_is_started_again() -> None:
    log, out = sink()
    sup = Supervisor([python_spec("print('run', flush=True)", "once")], log, FAST)
    task = asyncio.create_task(sup.run())
    await eventually_async(lambda: out.getvalue().count("once/0 | run") >= 2)
    sup.stop()
    await task
    assert sup.replicas[0].restarts >= 1
