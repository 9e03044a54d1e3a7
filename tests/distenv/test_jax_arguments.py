"""What ``init_jax`` passes to ``jax.distributed.initialize``, source by source (pure; the real
rendezvous is test_framework_rendezvous)."""

from __future__ import annotations

import os

import pytest

from drivetrain.distenv import DistEnvError, apply, init_jax, jax_arguments
from tests.distenv.cases import LWS3, grove_pod, job_pod


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (job_pod(2), ("rl-trainer-0.rl-trainer:29500", 3, 2)),
        ({**LWS3, "LWS_WORKER_INDEX": "1"}, ("train-0.train.ml:29500", 3, 1)),
        (
            grove_pod("trainer-wkr", 0),
            ("g-0-trainer-1-trainer-ldr-0.g-0.ml.svc.cluster.local:29500", 3, 1),
        ),
        (
            {
                "BACKENDAI_CLUSTER_SIZE": "2",
                "BACKENDAI_CLUSTER_HOSTS": "main1,sub1",
                "BACKENDAI_CLUSTER_LOCAL_RANK": "1",
                "BACKENDAI_DIST_MASTER_PORT": "7000",
            },
            ("main1:7000", 2, 1),
        ),
        (
            {
                "DRIVETRAIN_NNODES": "2",
                "DRIVETRAIN_NODE_RANK": "0",
                "DRIVETRAIN_MASTER_ADDR": "10.0.0.1",
            },
            ("10.0.0.1:29500", 2, 0),
        ),
    ],
    ids=["indexedjob", "lws", "grove", "backendai", "explicit"],
)
def test_every_source_gives_all_three(given: dict[str, str], expected: tuple[str, int, int]):
    args = jax_arguments(given)
    assert (args["coordinator_address"], args["num_processes"], args["process_id"]) == expected


def test_the_same_under_the_wrapper_and_without_it() -> None:
    assert jax_arguments(apply(job_pod(1))) == jax_arguments(job_pod(1))


def test_a_user_master_address_moves_the_coordinator() -> None:
    args = jax_arguments(job_pod(1, MASTER_ADDR="10.0.0.9"))
    assert args["coordinator_address"] == "10.0.0.9:29500"


def test_jax_variables_set_by_someone_else_are_used_as_they_are() -> None:
    # Kubeflow Trainer's JAX plugin sets exactly these three and no platform variable.
    given = {
        "JAX_COORDINATOR_ADDRESS": "t-node-0-0.t:29500",
        "JAX_NUM_PROCESSES": "4",
        "JAX_PROCESS_ID": "3",
    }
    assert jax_arguments(given) == {
        "coordinator_address": "t-node-0-0.t:29500",
        "num_processes": 4,
        "process_id": 3,
    }


def test_one_node_gives_nothing_and_init_jax_calls_nothing(monkeypatch) -> None:
    for name in list(os.environ):
        if name.startswith(("LWS_", "GROVE_", "BACKENDAI_", "DRIVETRAIN_", "JAX_", "JOB_")):
            monkeypatch.delenv(name)
    assert jax_arguments({}) == {}
    assert jax_arguments({**LWS3, "LWS_GROUP_SIZE": "1", "LWS_WORKER_INDEX": "0"}) == {}
    # No jax import, no call: a single process needs no distributed runtime.
    assert init_jax(initialization_timeout=5) is None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"},
            "JAX_COORDINATOR_ADDRESS is not set but JAX_NUM_PROCESSES, JAX_PROCESS_ID is",
        ),
        ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, "JAX_PROCESS_ID is not set"),
        (
            {"JAX_COORDINATOR_ADDRESS": "h", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"},
            "is not host:port",
        ),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:0", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"},
            "is not host:port",
        ),
        (
            {"JAX_COORDINATOR_ADDRESS": ":80", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"},
            "is not host:port",
        ),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"},
            "JAX_NUM_PROCESSES='two'",
        ),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "0", "JAX_PROCESS_ID": "0"},
            "not a positive whole number",
        ),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
            "JAX_PROCESS_ID=2 is not below",
        ),
        (job_pod(0, JOB_COMPLETION_INDEX="x"), "JOB_COMPLETION_INDEX='x'"),
    ],
)
def test_partial_or_malformed_values_are_refused_by_name(given: dict[str, str], message: str):
    with pytest.raises(DistEnvError, match=message.replace("(", r"\(")):
        jax_arguments(given)


def test_an_ipv6_coordinator_is_taken_as_jax_takes_it() -> None:
    given = {
        "JAX_COORDINATOR_ADDRESS": "[::1]:29500",
        "JAX_NUM_PROCESSES": "2",
        "JAX_PROCESS_ID": "1",
    }
    assert jax_arguments(given)["coordinator_address"] == "[::1]:29500"
