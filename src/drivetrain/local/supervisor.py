"""Run process specs, restart the ones that crash, and stop them all without orphans.

Each child is started in its own session, hence its own process group, so that

* a terminal's Ctrl-C reaches only ``up``, which then stops the children in order
  (SIGTERM to each group, SIGKILL to what is left after the grace period), and
* anything a child forked is stopped with it (signals go to the whole group).

On Linux each child also gets ``PR_SET_PDEATHSIG=SIGKILL``: if ``up`` itself is SIGKILLed,
the kernel kills its children rather than leaving them running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drivetrain.local.backoff import RestartPolicy
from drivetrain.local.logs import LogSink
from drivetrain.local.plan import ProcessSpec

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ReplicaState:
    spec: ProcessSpec
    pid: int | None = None
    state: str = "starting"  # starting | running | restarting | failed | stopped | exited
    restarts: int = 0
    last_exit: int | None = None
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        log: LogSink,
        policy: RestartPolicy | None = None,
        grace: float = 5.0,
    ) -> None:
        self.replicas = [ReplicaState(s) for s in specs]
        self.log = log
        self.policy = policy or RestartPolicy()
        self.grace = grace
        self.stopping = asyncio.Event()
        #: set when a replica gave up; the message says which and why
        self.failure: str | None = None
        self.on_change: Callable[[], None] | None = None
        log.register([s.name for s in specs])

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> int:
        """Keep every replica running until ``stop()`` or a replica gives up; then stop all.
        Returns 0 after a requested stop, 1 after a give-up."""
        tasks = [asyncio.create_task(self._keep_running(r)) for r in self.replicas]
        try:
            await self.stopping.wait()
        finally:
            self.stopping.set()
            await self._stop_all()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return 1 if self.failure else 0

    def stop(self) -> None:
        self.stopping.set()

    async def run_once(self, spec: ProcessSpec) -> int:
        """Run ``spec`` once, never restarted (a job's entrypoint), while ``run()`` keeps the
        others up; its exit status, or 128+N when signal N ended it, as a shell reports it.
        Stopping the supervisor stops it with the rest."""
        r = ReplicaState(spec)
        self.replicas.append(r)
        try:
            proc = await self._start(r)
        except OSError as exc:
            self.log.event(f"{spec.name} cannot start: {exc}", style="bold red")
            r.state = "failed"
            return 127 if isinstance(exc, FileNotFoundError) else 126
        pump = asyncio.create_task(self._pump(r, proc))
        code = await proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(pump, 2.0)
        r.last_exit, r.state = code, "exited"
        self._changed()
        return 128 - code if code < 0 else code

    def kill_now(self) -> None:
        """A second Ctrl-C: no grace period."""
        self.grace = 0.0
        self.stopping.set()
        for r in self.replicas:
            _signal_group(r.pid, signal.SIGKILL)

    # -- one replica -----------------------------------------------------------------------

    async def _start(self, r: ReplicaState) -> asyncio.subprocess.Process:
        spec = r.spec
        env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            cwd=spec.cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        r.process, r.pid, r.state = proc, proc.pid, "running"
        self._changed()
        return proc

    async def _pump(self, r: ReplicaState, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line over the stream limit: pass it on in pieces
                raw = await proc.stdout.read(65536)
            if not raw:
                return
            self.log.line(r.spec.name, raw.decode(errors="replace").rstrip("\r\n"))

    async def _keep_running(self, r: ReplicaState) -> None:
        fast_crashes = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                proc = await self._start(r)
            except OSError as exc:
                self._give_up(r, f"{r.spec.name} cannot start: {exc}")
                return
            pump = asyncio.create_task(self._pump(r, proc))
            code = await proc.wait()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(pump, 2.0)
            r.last_exit = code
            if self.stopping.is_set():
                return
            # Whatever the child forked goes with it before the next start.
            _signal_group(proc.pid, signal.SIGKILL)
            ran_for = time.monotonic() - started
            fast_crashes = fast_crashes + 1 if self.policy.is_fast(ran_for) else 0
            delay = self.policy.delay(fast_crashes)
            if delay is None:
                self._give_up(
                    r,
                    f"{r.spec.name} exited {fast_crashes} times in a row within "
                    f"{self.policy.fast_crash_window:g} s of starting (last exit code {code}); "
                    "giving up and stopping everything (see its log lines above)",
                )
                return
            r.state, r.restarts = "restarting", r.restarts + 1
            self._changed()
            self.log.event(
                f"{r.spec.name} exited with code {code} after {ran_for:.1f} s; "
                f"restarting in {delay:g} s",
                style="yellow",
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    def _give_up(self, r: ReplicaState, message: str) -> None:
        r.state = "failed"
        self.failure = self.failure or message
        self.log.event(message, style="bold red")
        self._changed()
        self.stopping.set()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- stopping -------------------------------------------------------------------------

    async def _stop_all(self) -> None:
        live = [r for r in self.replicas if r.process and r.process.returncode is None]
        for r in live:
            _signal_group(r.pid, signal.SIGTERM)
        waits = [r.process.wait() for r in live if r.process]
        if waits:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(w) for w in waits], timeout=self.grace
            )
            if pending:
                for r in live:
                    if r.process and r.process.returncode is None:
                        self.log.event(
                            f"{r.spec.name} still running after {self.grace:g} s; SIGKILL",
                            style="yellow",
                        )
                    _signal_group(r.pid, signal.SIGKILL)
                await asyncio.wait(pending)
        # Grandchildren that outlived their group leader.
        for r in self.replicas:
            _signal_group(r.pid, signal.SIGKILL)
            if r.state != "failed":
                r.state = "stopped"
        # SIGKILL is delivered asynchronously: return only once the groups are empty, so that
        # nothing of the graph is still running when `up` exits (bounded, zombies aside).
        deadline = asyncio.get_running_loop().time() + 2.0
        while any(_group_alive(r.pid) for r in self.replicas):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)


def _group_alive(pgid: int | None) -> bool:
    """Whether any live (non-zombie) process is left in the process group ``pgid``."""
    if pgid is None:
        return False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _signal_group(pid: int | None, sig: signal.Signals) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
