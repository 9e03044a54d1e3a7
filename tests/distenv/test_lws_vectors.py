"""LeaderWorkerSet: the variables LWS injects (its vectors) give every pod of the group the
leader as MASTER_ADDR, its worker index as node rank, and its own address at its own place in
TF_CONFIG, in both versions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.distenv.cases import VECTORS_FILE, lws_env, vectors
from tests.distenv.runners import python_outcome, sh_outcome
from tests.paths import shared

LWS = vectors("leaderworkerset")
VERSIONS = {"python": python_outcome, "sh": sh_outcome}


def pod_address(given: dict[str, str], worker: int) -> str:
    """LWS pod naming (docs/distenv.md): leader <lws>-<g>, workers <lws>-<g>-<w>, under the
    subdomain the policy picks, in the namespace."""
    name, group = given["lws_name"], given["group_index"]
    shared_policy = given["subdomainPolicy"] == "Shared"
    subdomain = name if shared_policy else f"{name}-{group}"
    pod = f"{name}-{group}" if worker == 0 else f"{name}-{group}-{worker}"
    return f"{pod}.{subdomain}.{given['namespace']}"


@pytest.fixture(autouse=True)
def _vectors_present() -> None:
    shared("vectors", VECTORS_FILE.name)


def test_there_are_lws_vectors() -> None:
    assert len(LWS) >= 2


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("vector", LWS, ids=[v["id"] for v in LWS])
def test_lws_pod_derives_leader_rank_and_own_tf_address(
    vector: dict[str, Any], version: str
) -> None:
    given = vector["given"]
    outcome = VERSIONS[version](lws_env(vector))
    assert outcome.env is not None, outcome.error
    env = outcome.env
    size, index = int(given["size"]), int(given["worker_index"])
    assert env["MASTER_ADDR"] == pod_address(given, 0) == vector["expect"]["LWS_LEADER_ADDRESS"]
    assert (env["NNODES"], env["NODE_RANK"]) == (given["size"], given["worker_index"])
    assert (env["PET_NNODES"], env["PET_NODE_RANK"]) == (given["size"], given["worker_index"])
    assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == "29500"
    tf = json.loads(env["TF_CONFIG"])
    assert tf["cluster"]["worker"] == [f"{pod_address(given, w)}:{29500 + w}" for w in range(size)]
    assert tf["task"] == {"type": "worker", "index": index}
    assert env["JAX_COORDINATOR_ADDRESS"] == f"{pod_address(given, 0)}:29500"
    assert (env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"]) == (given["size"], str(index))
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        assert name not in env, "processes per node unknown: left to the launcher"
