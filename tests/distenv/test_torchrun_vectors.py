"""torchrun vectors: the PET_* values drivetrain derives drive a real torchrun to exactly the
worker environment the vectors record (two nodes of four processes, on loopback).

Each node is started through a different version (the POSIX script, ``drivetrain distenv``)
and the test runs twice with the versions swapped, so every vector holds for both."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drivetrain.distenv import derive
from tests.distenv.cases import VECTORS_FILE, vectors
from tests.distenv.rendezvous import launcher
from tests.paths import shared
from tests.ports import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.torch,
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None,
        reason="CPU torch is not installed (pip install torch==2.13.0, or the 'torch' extra)",
    ),
]

DUMP = Path(__file__).parent / "programs" / "dump_env.py"
TORCHRUN = vectors("torchrun-worker-env")


def node_input(given: dict[str, Any], port: int) -> dict[str, str]:
    """Explicit drivetrain input for a vector's node; its master resolved to loopback."""
    return {
        "DRIVETRAIN_NNODES": given["PET_NNODES"],
        "DRIVETRAIN_NODE_RANK": given["PET_NODE_RANK"],
        "DRIVETRAIN_MASTER_ADDR": "127.0.0.1",
        "DRIVETRAIN_MASTER_PORT": str(port),
        "DRIVETRAIN_NPROC_PER_NODE": given["PET_NPROC_PER_NODE"],
    }


@pytest.fixture(autouse=True)
def _vectors_present() -> None:
    shared("vectors", VECTORS_FILE.name)


@pytest.mark.parametrize("vector", TORCHRUN, ids=[v["id"] for v in TORCHRUN])
def test_derived_torchrun_inputs_are_the_vector_inputs(vector: dict[str, Any]) -> None:
    given = vector["given"]
    derived = derive(node_input(given, int(given["PET_MASTER_PORT"])))
    pet = {k: v for k, v in given.items() if k.startswith("PET_")}
    assert {k: derived[k] for k in pet} == {**pet, "PET_MASTER_ADDR": "127.0.0.1"}
    assert not {"WORLD_SIZE", "RANK", "LOCAL_RANK"} & derived.keys()


def run_two_nodes(versions: tuple[str, str], out: Path) -> None:
    (first,) = {v["given"]["PET_NNODES"] for v in TORCHRUN}
    assert first == "2"
    given = TORCHRUN[0]["given"]
    port = free_port()
    procs = []
    for node, version in enumerate(versions):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "OMP_NUM_THREADS": "1",
            **node_input({**given, "PET_NODE_RANK": str(node)}, port),
        }
        argv = [*launcher(version), sys.executable, "-m", "torch.distributed.run"]
        procs.append(
            subprocess.Popen(
                [*argv, str(DUMP), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        try:
            _, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("torchrun did not finish")
        assert p.returncode == 0, err[-2000:]


@pytest.mark.parametrize("versions", [("sh", "python"), ("python", "sh")])
def test_torchrun_started_with_derived_env_gives_the_vector_worker_env(
    versions: tuple[str, str], tmp_path: Path
) -> None:
    run_two_nodes(versions, tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 8
    for vector in TORCHRUN:
        given = vector["given"]
        worker = json.loads(
            (tmp_path / f"{given['PET_NODE_RANK']}-{given['worker_local_rank']}.json").read_text()
        )
        for name, value in vector["expect"].items():
            assert worker.get(name) == value, (vector["id"], name)
