"""Real rendezvous on loopback, driven only by what each platform injects.

A :class:`Topology` is one source's simulated cluster: the variables its pods get, and the
DNS names its cluster publishes (written here by hand, from each platform's naming rules, so
a wrong derived name fails to resolve). Every rank runs in its own mount namespace with a
private ``/etc/hosts`` that maps those names to 127.0.0.1 (the real network stays shared, so
the ranks meet on loopback), then through a real entry point: ``drivetrain distenv --``,
``dash distenv.sh --``, or an entrypoint that sources ``distenv.sh``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from drivetrain.distenv import indexed_job_env, script_path
from tests.cli.helpers import CLI
from tests.distenv.runners import need_dash
from tests.ports import free_port

PROGRAMS = Path(__file__).parent / "programs"
#: Generous for a loaded 2-core box: a wait here is a rendezvous, never a speed claim.
JOIN_TIMEOUT_S = 60
#: ``make test-frameworks`` sets this: every source x group size x entry point, and TensorFlow
#: in every rank. ``make test`` runs a subset that still covers each of them once.
FULL_MATRIX = os.environ.get("DRIVETRAIN_TEST_FRAMEWORKS") == "1"

Group = tuple[str, int, str]


def groups(subset: list[Group]) -> list[Group]:
    """(source, processes, entry point) to run: ``subset``, or all of them in the full matrix."""
    if not FULL_MATRIX:
        return subset
    return [(s, n, k) for s in sorted(TOPOLOGIES) for n in (2, 3) for k in ("python", "sh")]


def group_id(group: Group) -> str:
    return "-".join(map(str, group))


@dataclass(frozen=True)
class Topology:
    source: str
    #: The names the cluster publishes for ranks 0..size-1.
    names: Callable[[int], list[str]]
    #: What the platform (and the renderer) put into rank ``rank``'s pod, base port ``port``.
    pod_env: Callable[[int, int, int], dict[str, str]]


def _explicit(size: int, rank: int, port: int) -> dict[str, str]:
    return {
        "DRIVETRAIN_NNODES": str(size),
        "DRIVETRAIN_NODE_RANK": str(rank),
        "DRIVETRAIN_HOSTS": ",".join(_explicit_names(size)),
        "DRIVETRAIN_MASTER_PORT": str(port),
    }


def _explicit_names(size: int) -> list[str]:
    return [f"node{i}.example" for i in range(size)]


def _lws(size: int, rank: int, port: int) -> dict[str, str]:
    # LeaderWorkerSet "train", group 0, namespace "ml": leader train-0, workers train-0-<i>.
    return {
        "LWS_LEADER_ADDRESS": "train-0.train.ml",
        "LWS_GROUP_SIZE": str(size),
        "LWS_WORKER_INDEX": str(rank),
        "DRIVETRAIN_RANK_SOURCE": "lws",
        "DRIVETRAIN_NNODES": str(size),
        "DRIVETRAIN_MASTER_PORT": str(port),
    }


def _lws_names(size: int) -> list[str]:
    return ["train-0.train.ml", *(f"train-0-{i}.train.ml" for i in range(1, size))]


_GROVE_SERVICE = "g-0.ml.svc.cluster.local"


def _grove(size: int, rank: int, port: int) -> dict[str, str]:
    # Scaling group g-0-trainer, replica 1: the leader clique's pod 0 is rank 0, the worker
    # clique's pod i is rank i + 1.
    clique, pod = ("trainer-ldr", 0) if rank == 0 else ("trainer-wkr", rank - 1)
    return {
        "GROVE_PCS_NAME": "g",
        "GROVE_PCS_INDEX": "0",
        "GROVE_PCSG_NAME": "g-0-trainer",
        "GROVE_PCSG_INDEX": "1",
        "GROVE_PCSG_TEMPLATE_NUM_PODS": str(size),
        "GROVE_HEADLESS_SERVICE": _GROVE_SERVICE,
        "GROVE_PCLQ_NAME": f"g-0-trainer-1-{clique}",
        "GROVE_PCLQ_POD_INDEX": str(pod),
        "DRIVETRAIN_RANK_SOURCE": "grove",
        "DRIVETRAIN_NNODES": str(size),
        "DRIVETRAIN_GROVE_LEADER_CLIQUE": "trainer-ldr",
        "DRIVETRAIN_GROVE_WORKER_CLIQUE": "trainer-wkr",
        "DRIVETRAIN_MASTER_PORT": str(port),
    }


def _grove_names(size: int) -> list[str]:
    return [
        f"g-0-trainer-1-trainer-ldr-0.{_GROVE_SERVICE}",
        *(f"g-0-trainer-1-trainer-wkr-{i}.{_GROVE_SERVICE}" for i in range(size - 1)),
    ]


def _backendai(size: int, rank: int, port: int) -> dict[str, str]:
    # As Backend.AI's launcher: main1 then sub1.., local rank = global index.
    role, idx = ("main", 1) if rank == 0 else ("sub", rank)
    return {
        "BACKENDAI_CLUSTER_SIZE": str(size),
        "BACKENDAI_CLUSTER_HOSTS": ",".join(_backendai_names(size)),
        "BACKENDAI_CLUSTER_HOST": f"{role}{idx}",
        "BACKENDAI_CLUSTER_ROLE": role,
        "BACKENDAI_CLUSTER_IDX": str(idx),
        "BACKENDAI_CLUSTER_LOCAL_RANK": str(rank),
        "BACKENDAI_DIST_MASTER_PORT": str(port),
    }


def _backendai_names(size: int) -> list[str]:
    return ["main1", *(f"sub{i}" for i in range(1, size))]


def _indexed_job(size: int, rank: int, port: int) -> dict[str, str]:
    # The renderer's contract, plus what Kubernetes sets in pod <job>-<rank>.
    return {
        **indexed_job_env("rl-trainer", "rl-trainer", size),
        "JOB_COMPLETION_INDEX": str(rank),
        "DRIVETRAIN_MASTER_PORT": str(port),
    }


def _indexed_job_names(size: int) -> list[str]:
    return [f"rl-trainer-{i}.rl-trainer" for i in range(size)]


TOPOLOGIES = {
    t.source: t
    for t in (
        Topology("explicit", _explicit_names, _explicit),
        Topology("lws", _lws_names, _lws),
        Topology("grove", _grove_names, _grove),
        Topology("backendai", _backendai_names, _backendai),
        Topology("indexedjob", _indexed_job_names, _indexed_job),
    )
}


def launcher(kind: str) -> list[str]:
    """The entry point a rank's command runs under."""
    if kind == "python":
        return [*CLI, "distenv", "--"]
    if kind == "sh":
        return [need_dash(), str(script_path()), "--"]
    if kind == "sourced":
        entrypoint = f". '{script_path()}' && exec \"$@\""
        return [need_dash(), "-c", entrypoint, "entrypoint"]
    if kind == "none":  # the platform's variables only; the program derives for itself
        return []
    raise ValueError(kind)


_NAMESPACE = 'mount --bind "$0" /etc/hosts && exec "$@"'


@cache
def _unshare() -> list[str] | str:
    """The command that gives a process its own mount namespace, or why there is none."""
    tool = shutil.which("unshare")
    if tool is None:
        return "unshare (util-linux) is not installed"
    argv = [tool, "--mount"] if os.geteuid() == 0 else [tool, "--map-root-user", "--mount"]
    probe = subprocess.run(
        [*argv, "sh", "-c", _NAMESPACE, "/etc/hosts", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"no private mount namespace here ({probe.stderr.strip()})"
    return argv


def need_namespace() -> list[str]:
    argv = _unshare()
    if isinstance(argv, str):
        pytest.skip(f"each rank needs a private /etc/hosts: {argv}")
    return argv


def hosts_file(directory: Path, names: list[str]) -> Path:
    """This machine's /etc/hosts (its own name must still resolve: gloo looks it up) plus the
    simulated cluster's names on loopback."""
    path = directory / "hosts"
    path.write_text(Path("/etc/hosts").read_text() + f"\n127.0.0.1 {' '.join(names)}\n")
    return path


def base_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "OMP_NUM_THREADS": "1",
        **extra,
    }


@dataclass(frozen=True)
class Rank:
    code: int
    out: str
    err: str


def run_group(
    topology: Topology,
    size: int,
    kind: str,
    program: list[str],
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    only: tuple[int, ...] | None = None,
    port: int | None = None,
) -> list[Rank]:
    """Start ``size`` ranks of ``program`` (or ``only`` those) with base port ``port`` (a
    free one by default) and wait for all of them."""
    namespace = need_namespace()
    hosts = hosts_file(workdir, topology.names(size))
    port = port or free_port()
    ranks = list(range(size)) if only is None else list(only)
    with _processes() as procs:
        for rank in ranks:
            env = {**base_env(**(extra_env or {})), **topology.pod_env(size, rank, port)}
            # Files, not pipes: a rank blocked on a full pipe could stall the others.
            with (
                (workdir / f"{rank}.out").open("w") as out,
                (workdir / f"{rank}.err").open("w") as err,
            ):
                procs.append(
                    subprocess.Popen(
                        [*namespace, "sh", "-c", _NAMESPACE, str(hosts), *launcher(kind), *program],
                        env=env,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                    )
                )
        for p in procs:
            try:
                p.wait(timeout=JOIN_TIMEOUT_S * 3)
            except subprocess.TimeoutExpired:
                pytest.fail("a rank hung past its own rendezvous timeout")
    return [
        Rank(p.returncode, (workdir / f"{r}.out").read_text(), (workdir / f"{r}.err").read_text())
        for r, p in zip(ranks, procs, strict=True)
    ]


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every rank still running on the way out (a failure, a hang) is killed with its group."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
