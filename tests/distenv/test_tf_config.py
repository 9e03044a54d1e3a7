"""TensorFlow reads the TF_CONFIG drivetrain derives: for each rank, started through a real
entry point, ``tf.distribute.cluster_resolver.TFConfigClusterResolver()`` gives the cluster
every rank shares (each node a worker on ``base + position``, under the names the platform
publishes) and the rank's own task.

In ``make test`` the ranks print their environment and one TensorFlow process resolves each
of them in turn (the resolver reads ``os.environ`` at every call; a TensorFlow import costs
about 4 s of CPU, too much to pay in every rank of every group). ``make test-frameworks``
also imports TensorFlow in every rank process itself.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.distenv.rendezvous import (
    FULL_MATRIX,
    PROGRAMS,
    TOPOLOGIES,
    Topology,
    group_id,
    groups,
    run_group,
)
from tests.ports import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.tensorflow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None,
        reason="TensorFlow is not installed (pip install tensorflow-cpu, as scripts/test-deps.sh does)",
    ),
]

RESOLVER = [sys.executable, str(PROGRAMS / "tf_resolver.py")]
DUMP_ENV = [shutil.which("env") or "/usr/bin/env", "-0"]
#: TensorFlow's start-up chatter off stderr, so a failure shows the error.
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}
GROUPS = groups(
    [
        ("explicit", 3, "python"),
        ("lws", 2, "sh"),
        ("grove", 3, "python"),
        ("backendai", 2, "sh"),
        ("indexedjob", 3, "python"),
        ("indexedjob", 2, "sh"),
    ]
)


def expected(topology: Topology, size: int, port: int, rank: int) -> dict[str, object]:
    workers = [f"{name}:{port + i}" for i, name in enumerate(topology.names(size))]
    return {"cluster": {"worker": workers}, "task_type": "worker", "task_id": rank}


def test_the_resolver_sees_each_ranks_derived_cluster(tmp_path: Path) -> None:
    env_files: list[Path] = []
    wanted: list[tuple[str, dict[str, object]]] = []
    for source, size, kind in GROUPS:
        topology, port = TOPOLOGIES[source], free_port()  # only named: nothing listens
        workdir = tmp_path / group_id((source, size, kind))
        workdir.mkdir()
        ranks = run_group(topology, size, kind, DUMP_ENV, workdir, port=port)
        for rank, result in enumerate(ranks):
            assert result.code == 0, result.err
            env_files.append(workdir / f"{rank}.out")
            wanted.append((f"{workdir.name} rank {rank}", expected(topology, size, port, rank)))
    proc = subprocess.run(
        [*RESOLVER, *map(str, env_files)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    seen = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(seen) == len(wanted)
    for (where, want), got in zip(wanted, seen, strict=True):
        assert got == want, where


@pytest.mark.skipif(not FULL_MATRIX, reason="TensorFlow in every rank: make test-frameworks")
@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("source", sorted(TOPOLOGIES))
def test_the_resolver_in_each_rank_process(source: str, size: int, tmp_path: Path) -> None:
    topology, port = TOPOLOGIES[source], free_port()
    ranks = run_group(topology, size, "python", RESOLVER, tmp_path, QUIET, port=port)
    for rank, result in enumerate(ranks):
        assert result.code == 0, result.err
        assert json.loads(result.out.splitlines()[-1]) == expected(topology, size, port, rank)
