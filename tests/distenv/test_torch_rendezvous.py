"""A real rendezvous: three processes started with the env derived from simulated
LeaderWorkerSet variables (leader at 127.0.0.1) join torch.distributed over gloo and
all-reduce. Each started through a real entry point: the POSIX script or ``drivetrain
distenv --``."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from drivetrain.distenv import script_path
from tests.distenv.runners import need_dash

pytestmark = [
    pytest.mark.slow,
    pytest.mark.torch,
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None,
        reason="CPU torch is not installed (pip install torch==2.13.0, or the 'torch' extra)",
    ),
]

PROGRAM = Path(__file__).parent / "programs" / "allreduce.py"
# Generous for a loaded 2-core CI box: a wait here is a rendezvous, never a speed claim.
JOIN_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launcher(version: str) -> list[str]:
    if version == "sh":
        return [need_dash(), str(script_path()), "--"]
    return [sys.executable, "-m", "drivetrain.cli.main", "distenv", "--"]


def start_rank(version: str, index: int, size: int, port: int, timeout: float):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        # What LWS injects, with the leader resolved to loopback.
        "LWS_LEADER_ADDRESS": "127.0.0.1",
        "LWS_GROUP_SIZE": str(size),
        "LWS_WORKER_INDEX": str(index),
        # What the renderer would pass, plus: one process per pod, so RANK/WORLD_SIZE are set.
        "DRIVETRAIN_RANK_SOURCE": "lws",
        "DRIVETRAIN_NNODES": str(size),
        "DRIVETRAIN_MASTER_PORT": str(port),
        "DRIVETRAIN_NPROC_PER_NODE": "1",
        "DISTENV_TEST_TIMEOUT": str(timeout),
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
    }
    return subprocess.Popen(
        [*launcher(version), sys.executable, str(PROGRAM)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=JOIN_TIMEOUT_S * 3)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a rank hung past its own rendezvous timeout")
        results.append((p.returncode, out, err))
    return results


@pytest.mark.parametrize("version", ["sh", "python"])
def test_three_lws_ranks_rendezvous_and_all_reduce(version: str) -> None:
    port = free_port()
    procs = [start_rank(version, i, 3, port, JOIN_TIMEOUT_S) for i in range(3)]
    results = finish(procs)
    for code, out, err in results:
        assert code == 0, err
        assert out.strip() == "6"  # 1 + 2 + 3


def test_a_missing_rank_fails_every_started_rank_at_the_timeout() -> None:
    port = free_port()
    procs = [start_rank("sh", i, 3, port, 5.0) for i in (0, 1)]
    for code, out, err in finish(procs):
        assert code == 3, err
        assert out == ""
        assert "rendezvous failed: DistStoreError" in err
        assert "time" in err.split("rendezvous failed")[1].lower()
