"""JAX's own rendezvous from the derived environment: every source, 2 and 3 processes on
loopback, each started through a real entry point; ``process_allgather`` of the process
index must give every index on every process."""

from __future__ import annotations

import importlib.util
import json
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
    pytest.mark.jax,
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None,
        reason="JAX is not installed (pip install 'jax[cpu]', as scripts/test-deps.sh does)",
    ),
]

PROGRAM = PROGRAMS / "jax_allgather.py"
JAX_ENV = {"JAX_PLATFORMS": "cpu", "DISTENV_TEST_TIMEOUT": str(JOIN_TIMEOUT_S)}


def check(ranks, size: int) -> None:
    for rank, result in enumerate(ranks):
        assert result.code == 0, result.err
        # The last line: JAX's gloo prints its own "[Gloo] Rank i is connected" before it.
        assert json.loads(result.out.splitlines()[-1]) == {
            "index": rank,
            "count": size,
            "gathered": list(range(size)),
        }


#: Every source, both group sizes, both versions; the python one calls init_jax(), the sh one
#: (an image without drivetrain) passes the JAX_* values distenv.sh exported itself.
GROUPS = groups(
    [
        ("explicit", 2, "python"),
        ("explicit", 3, "sh"),
        ("lws", 3, "python"),
        ("lws", 2, "sh"),
        ("grove", 3, "python"),
        ("grove", 2, "sh"),
        ("backendai", 2, "python"),
        ("backendai", 3, "sh"),
        ("indexedjob", 2, "python"),
        ("indexedjob", 3, "python"),
        ("indexedjob", 3, "sh"),
    ]
)


@pytest.mark.parametrize(("source", "size", "kind"), GROUPS, ids=map(group_id, GROUPS))
def test_processes_gather_every_index(source: str, size: int, kind: str, tmp_path: Path) -> None:
    program = [sys.executable, str(PROGRAM), "init_jax" if kind == "python" else "env"]
    check(run_group(TOPOLOGIES[source], size, kind, program, tmp_path, JAX_ENV), size)


def test_init_jax_after_an_entrypoint_sources_distenv_sh(tmp_path: Path) -> None:
    program = [sys.executable, str(PROGRAM), "init_jax"]
    check(run_group(TOPOLOGIES["indexedjob"], 2, "sourced", program, tmp_path, JAX_ENV), 2)


def test_init_jax_derives_for_itself_from_the_platform_variables(tmp_path: Path) -> None:
    # No wrapper at all: a pod whose command was not run through distenv.
    program = [sys.executable, str(PROGRAM), "init_jax"]
    check(run_group(TOPOLOGIES["grove"], 3, "none", program, tmp_path, JAX_ENV), 3)
