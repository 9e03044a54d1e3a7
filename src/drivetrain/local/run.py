"""``drivetrain up``: plan every graph of a file, run the processes, stop them on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from drivetrain.api.loader import load_text, parse_yaml_documents, read_text
from drivetrain.api.rlrun_loader import holds_runs
from drivetrain.local.adminports import with_admin_ports
from drivetrain.local.backoff import RestartPolicy
from drivetrain.local.envfile import read_env_file
from drivetrain.local.logs import LogSink
from drivetrain.local.plan import FAILOVER_DIR, ProcessSpec, plan_graph
from drivetrain.local.status import expected_models, status_table, wait_until_serving
from drivetrain.local.stopping import DRAIN_TIMEOUT_S, grace_for, with_drain
from drivetrain.local.supervisor import Supervisor

#: SIGHUP too: a closed terminal should stop the graph in order, not leave it to PDEATHSIG.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class UpOptions:
    file: Path
    port: int = 8000
    host: str = "127.0.0.1"
    discovery: str | None = None
    #: seconds between SIGTERM and SIGKILL; None: the longest drain + 5 s (local/stopping.py)
    grace: float | None = None
    #: values for what the kubelet would read from Secrets and ConfigMaps (docs/local.md)
    env_file: Path | None = None
    #: the drain each process gets on SIGTERM (DRIVETRAIN_DRAIN_TIMEOUT, unless it sets one)
    drain_timeout: float = DRAIN_TIMEOUT_S


def plan_file(
    opts: UpOptions, discovery: str, state_dir: Path, text: str | None = None
) -> list[ProcessSpec]:
    """Every process of every graph in the file; raises InvalidGraph (the graph file or the
    env file) / UnrunnableGraph / StopTimingError (``--grace`` shorter than a drain).

    Processes run in the graph file's folder, so relative paths in a service's args (such
    as ``--model-path models/tiny``) are relative to the graph file.  ``state_dir`` holds
    this run's local state (failover locks).
    """
    if text is None:
        text, _ = read_text(opts.file)
    graphs = load_text(text, str(opts.file)).graphs
    supplied = read_env_file(opts.env_file) if opts.env_file is not None else None
    cwd = opts.file.resolve().parent
    specs: list[ProcessSpec] = []
    for graph in graphs:
        frontends = sum(1 for s in specs if s.port is not None)
        specs += plan_graph(
            graph,
            port=opts.port + frontends,
            discovery=discovery,
            cwd=cwd,
            host=opts.host,
            env_file=supplied,
            state_dir=state_dir,
        )
    specs = with_drain(specs, opts.drain_timeout)
    grace_for(specs, opts.grace)  # refused before anything starts
    specs, _ = with_admin_ports(specs, opts.host)
    return specs


def run_up(opts: UpOptions, log: LogSink | None = None) -> int:
    """Plan first (errors raise before anything starts), then supervise until a signal; an
    RLRun file runs its graphs, then its entrypoint (``local.rlrun``).

    One fresh temporary folder holds this run's state, removed at exit: the file discovery
    store (unless ``--discovery`` names another) and the failover locks.
    """
    from drivetrain.local.rlrun import load_run, plan_run, supervise_run

    text, name = read_text(opts.file)
    run = None
    if holds_runs(parse_yaml_documents(text, name)):
        run = load_run(text, name, Path(opts.file).resolve().parent)
    tmp = tempfile.mkdtemp(prefix="drivetrain-up-")
    discovery = opts.discovery or f"file://{tmp}"
    try:
        (Path(tmp) / FAILOVER_DIR).mkdir()
        if run is not None:
            plan = plan_run(
                run,
                port=opts.port,
                host=opts.host,
                discovery=discovery,
                env_file=opts.env_file,
                state_dir=Path(tmp),
                admin_token=secrets.token_urlsafe(32),
            )
            plan = dataclasses.replace(plan, specs=with_drain(plan.specs, opts.drain_timeout))
            grace = grace_for(plan.specs, opts.grace)
            return asyncio.run(
                supervise_run(plan, grace, discovery, log or LogSink(), STOP_SIGNALS)
            )
        specs = plan_file(opts, discovery, Path(tmp), text)
        return asyncio.run(_supervise(specs, opts, discovery, log or LogSink()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _supervise(
    specs: list[ProcessSpec], opts: UpOptions, discovery: str, log: LogSink
) -> int:
    supervisor = Supervisor(specs, log, RestartPolicy(), grace=grace_for(specs, opts.grace))
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signame: str) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.event(f"{signame}: stopping every process (again to kill at once)")
            supervisor.stop()
        else:
            supervisor.kill_now()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig.name)
    local = "127.0.0.1" if opts.host in ("0.0.0.0", "::") else opts.host
    urls = [f"http://{local}:{s.port}" for s in specs if s.port is not None]
    log.event(f"discovery {discovery}; {len(specs)} processes; frontend {', '.join(urls)}")
    announce = asyncio.create_task(_announce_when_serving(supervisor, urls, specs, log))
    try:
        return await supervisor.run()
    finally:
        announce.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announce
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        if supervisor.failure is None:
            log.event("stopped")


async def _announce_when_serving(
    supervisor: Supervisor, urls: list[str], specs: list[ProcessSpec], log: LogSink
) -> None:
    expected = expected_models(specs)
    # One registered instance per worker replica: a failover pair's shadow does not register.
    workers = len({(s.service, s.replica) for s in specs if s.port is None})
    listed = await wait_until_serving(urls[0], expected, supervisor.stopping, workers)
    if listed is None:
        return
    log.console.print(status_table(supervisor.replicas, urls, listed))
    log.event(f"ready: {', '.join(sorted(listed))} at {urls[0]}/v1 (Ctrl-C stops everything)")
