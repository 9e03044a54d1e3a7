"""``drivetrain up -f run.yaml``: an RLRun's graphs, then its entrypoint, on this machine.

The graphs run as ``up`` runs any graph (``plan_graph``: the rendered containers), each on
the next free block of ports, every graph's processes in the folder of the file it came from
(the manifest's, or the run file's for an inline graph).  Once every graph's frontend serves
its models, the job's entrypoint starts as one process (the script a RayJob's driver runs,
``render.entrypoint``, under ``sh -c``) in the run file's folder, with the run's ``job.env``
and the frontend variables a Ray container gets (``render.rlrun.frontend_env``) pointing at
the local frontends, and the folder of the interpreter running ``up`` first on ``PATH`` (so
``python3`` is that interpreter, with its packages).  When it exits, everything stops and ``up`` exits with its status
(docs/rl.md; the README's exit-code table).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from drivetrain import envnames
from drivetrain.api.enums import RayMode
from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.rlrun_loader import LoadedRun, load_runs_text
from drivetrain.local.adminports import with_admin_ports
from drivetrain.local.backoff import RestartPolicy
from drivetrain.local.envfile import read_env_file
from drivetrain.local.logs import LogSink
from drivetrain.local.plan import ProcessSpec, plan_graph
from drivetrain.local.status import expected_models, status_table, wait_until_serving
from drivetrain.local.supervisor import Supervisor
from drivetrain.render.entrypoint import entrypoint_script
from drivetrain.render.rlrun import admin_env, frontend_env

#: The process name of the entrypoint in the logs.
ENTRYPOINT = "entrypoint"


@dataclass(frozen=True)
class RunPlan:
    #: every graph's processes, restarted when they crash
    specs: list[ProcessSpec]
    #: key → the local frontend's OpenAI base URL
    frontends: dict[str, str]
    #: key → the models each graph's workers announce
    models: dict[str, set[str]] = field(default_factory=dict)
    #: the job's entrypoint (None in raycluster mode: the graphs run until stopped)
    entrypoint: ProcessSpec | None = None


def _graph_folder(loaded: LoadedRun, source_file: str | None, inline: bool) -> Path:
    if inline or source_file is None:
        return loaded.folder
    return Path(source_file).resolve().parent


def plan_run(
    loaded: LoadedRun,
    *,
    port: int,
    host: str,
    discovery: str,
    env_file: Path | None = None,
    state_dir: Path | None = None,
    admin_token: str | None = None,
) -> RunPlan:
    """The processes of a run (pure but for reading ``env_file`` and picking free admin
    ports); ``UnrunnableGraph`` or ``InvalidGraph`` before anything starts.  ``admin_token``
    opens every frontend's RL API and reaches the entrypoint with its URL (docs/rl.md)."""
    supplied = read_env_file(env_file) if env_file is not None else None
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    specs: list[ProcessSpec] = []
    frontends: dict[str, str] = {}
    admins: dict[str, str | None] = {}
    models: dict[str, set[str]] = {}
    several = len(loaded.graphs) > 1
    for key, graph in loaded.graphs.items():
        first_port = port + sum(1 for s in specs if s.port is not None)
        planned = plan_graph(
            graph.graph,
            port=first_port,
            discovery=discovery,
            cwd=_graph_folder(loaded, graph.source.file, graph.source.inline),
            host=host,
            env_file=supplied,
            state_dir=state_dir,
        )
        if several:  # two graphs may both have a "Frontend": the key tells them apart
            planned = [replace(s, service=f"{key}.{s.service}") for s in planned]
        planned, admin_ports = with_admin_ports(planned, host, admin_token)
        specs += planned
        frontends[key] = f"http://{local}:{first_port}/v1"
        first_admin = next(iter(admin_ports.values()), None)
        admins[key] = f"http://{local}:{first_admin}" if first_admin is not None else None
        models[key] = expected_models(planned)
    job = loaded.run.spec.ray.job
    if loaded.run.mode is RayMode.raycluster or job is None or not job.entrypoint:
        return RunPlan(specs, frontends, models)
    injected = {e["name"]: e["value"] for e in frontend_env(dict(frontends))}
    if admin_token:
        token = {"name": envnames.ADMIN_TOKEN, "value": admin_token}
        injected.update({e["name"]: e["value"] for e in admin_env(admins, token)})
    # `python3` in the entrypoint is the interpreter running `up` (its venv's packages), as
    # `drivetrain` in a service's command is: the folder of sys.executable comes first on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    injected["PATH"] = path
    script = entrypoint_script(job.entrypoint, job.logFile)
    entry = ProcessSpec(
        service=ENTRYPOINT,
        replica=0,
        component_type="job",
        argv=["sh", "-c", script],
        env={**injected, **(job.env or {})},  # the run's own env wins, as in the Ray containers
        cwd=str(loaded.folder),
    )
    return RunPlan(specs, frontends, models, entry)


def load_run(text: str, file: str, folder: Path) -> LoadedRun:
    runs = load_runs_text(text, file, folder).runs
    if len(runs) != 1:
        names = ", ".join(r.name for r in runs)
        raise InvalidGraph(
            [
                FieldError(
                    "", f"`drivetrain up` runs one RLRun at a time; this file has {names}", file
                )
            ]
        )
    return runs[0]


async def supervise_run(
    plan: RunPlan,
    grace: float,
    discovery: str,
    log: LogSink,
    stop_signals: tuple[signal.Signals, ...],
) -> int:
    """Run the graphs, then the entrypoint once they serve; its exit status (see module doc)."""
    supervisor = Supervisor(plan.specs, log, RestartPolicy(), grace=grace)
    names = [s.name for s in plan.specs] + ([plan.entrypoint.name] if plan.entrypoint else [])
    log.register(names)
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        if len(received) == 1:
            log.event(f"{sig.name}: stopping every process (again to kill at once)")
            supervisor.stop()
        else:
            supervisor.kill_now()

    for sig in stop_signals:
        loop.add_signal_handler(sig, on_signal, sig)
    urls = ", ".join(f"{k} {u}" for k, u in plan.frontends.items())
    log.event(f"discovery {discovery}; {len(plan.specs)} processes; frontends: {urls}")
    job = asyncio.create_task(_job(supervisor, plan, log))
    try:
        graphs = await supervisor.run()
    finally:
        for sig in stop_signals:
            loop.remove_signal_handler(sig)
    code = None
    if job.done() and not job.cancelled():
        code = job.result()
    else:
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
    if supervisor.failure is not None:
        return 1
    if received:
        return 128 + int(received[0])
    if code is not None:
        log.event(f"stopped; the entrypoint's exit status was {code}")
        return code
    return graphs


async def _job(supervisor: Supervisor, plan: RunPlan, log: LogSink) -> int | None:
    """Wait until every graph serves, then run the entrypoint and stop everything after it."""
    served: set[str] = set()
    for key, url in plan.frontends.items():
        listed = await wait_until_serving(
            url.removesuffix("/v1"), plan.models[key], supervisor.stopping
        )
        if listed is None:
            return None
        served |= listed
    base = [u.removesuffix("/v1") for u in plan.frontends.values()]
    log.console.print(status_table(supervisor.replicas, base, served))
    if plan.entrypoint is None:
        log.event(f"ready: {', '.join(plan.frontends.values())} (Ctrl-C stops everything)")
        return None
    log.event(f"ready: starting the entrypoint in {plan.entrypoint.cwd}")
    code = await supervisor.run_once(plan.entrypoint)
    log.event(f"the entrypoint exited with status {code}; stopping everything")
    supervisor.stop()
    return code
