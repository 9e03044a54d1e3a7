"""torch.distributed's own rendezvous (``init_process_group("gloo")``, env://) from the
derived environment, through ``drivetrain distenv --`` and through ``dash distenv.sh --``,
then an all-reduce; and a missing rank failing every started rank."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.distenv.rendezvous import (
    JOIN_TIMEOUT_S,
    PROGRAMS,
    TOPOLOGIES,
    group_id,
    groups,
    run_group,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.torch,
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None,
        reason="CPU torch is not installed (pip install torch==2.13.0, or the 'torch' extra)",
    ),
]

PROGRAM = [sys.executable, str(PROGRAMS / "allreduce.py")]


def torch_env(timeout: float) -> dict[str, str]:
    return {
        # One process per pod (the renderer's or the user's word): RANK/WORLD_SIZE are set, so
        # env:// needs no launcher.
        "DRIVETRAIN_NPROC_PER_NODE": "1",
        "DISTENV_TEST_TIMEOUT": str(timeout),
        "GLOO_SOCKET_IFNAME": "lo",
    }


#: LeaderWorkerSet and the Indexed Job, each under both versions and both group sizes (every
#: source in the full matrix). The other sources meet JAX's rendezvous (test_jax_rendezvous);
#: torch reads the same MASTER_* values.
GROUPS = groups(
    [
        ("lws", 3, "python"),
        ("lws", 2, "sh"),
        ("indexedjob", 2, "python"),
        ("indexedjob", 3, "sh"),
    ]
)


@pytest.mark.parametrize(("source", "size", "kind"), GROUPS, ids=map(group_id, GROUPS))
def test_ranks_rendezvous_and_all_reduce(source: str, size: int, kind: str, tmp_path: Path):
    ranks = run_group(TOPOLOGIES[source], size, kind, PROGRAM, tmp_path, torch_env(JOIN_TIMEOUT_S))
    total = size * (size + 1) // 2
    for rank, result in enumerate(ranks):
        assert result.code == 0, result.err
        assert result.out == f"{rank} {size} {total}\n"


def test_a_missing_rank_fails_every_started_rank_at_the_timeout(tmp_path: Path) -> None:
    topology = TOPOLOGIES["lws"]
    ranks = run_group(topology, 3, "sh", PROGRAM, tmp_path, torch_env(5.0), only=(0, 1))
    for result in ranks:
        assert result.code == 3, result.err
        assert result.out == ""
        assert "rendezvous failed: DistStoreError" in result.err
        assert "time" in result.err.split("rendezvous failed")[1].lower()
