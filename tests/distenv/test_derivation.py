"""What the derivation sets, source by source (Python version; the sh version is held to the
same results by test_sh_parity)."""

from __future__ import annotations

import json

import pytest

from drivetrain.distenv import DistEnvError, derive
from tests.distenv.cases import GROVE, JOB3, LWS3, grove_pod, job_pod


def lws(index: int, **extra: str) -> dict[str, str]:
    return {**LWS3, "LWS_WORKER_INDEX": str(index), **extra}


def test_lws_worker_gets_leader_as_master_and_its_index_as_node_rank() -> None:
    env = derive(lws(2))
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "train-0.train.ml"
    assert (env["NNODES"], env["NODE_RANK"], env["PET_NNODES"], env["PET_NODE_RANK"]) == (
        "3",
        "2",
        "3",
        "2",
    )


def test_lws_worker_addresses_follow_lws_pod_names() -> None:
    tf = json.loads(derive(lws(1))["TF_CONFIG"])
    assert tf["cluster"]["worker"] == [
        "train-0.train.ml:29500",
        "train-0-1.train.ml:29501",
        "train-0-2.train.ml:29502",
    ]
    assert tf["task"] == {"type": "worker", "index": 1}


def test_an_ip_leader_address_names_no_pods_so_no_tf_config() -> None:
    env = derive(lws(1, LWS_LEADER_ADDRESS="127.0.0.1"))
    assert env["MASTER_ADDR"] == "127.0.0.1"
    assert "TF_CONFIG" not in env


def test_tf_config_is_compact_json_with_an_integer_index() -> None:
    text = derive(lws(0))["TF_CONFIG"]
    assert " " not in text
    assert '"index":0}' in text


def test_jax_coordinator_is_the_master_with_one_process_per_node() -> None:
    env = derive(lws(2))
    assert env["JAX_COORDINATOR_ADDRESS"] == "train-0.train.ml:29500"
    assert (env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"]) == ("3", "2")


def test_base_port_moves_master_tf_and_jax_ports() -> None:
    env = derive(lws(0, DRIVETRAIN_MASTER_PORT="40000"))
    assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == "40000"
    assert json.loads(env["TF_CONFIG"])["cluster"]["worker"][2].endswith(":40002")
    assert env["JAX_COORDINATOR_ADDRESS"].endswith(":40000")


def test_user_master_values_are_kept_and_reach_torchrun_and_jax() -> None:
    env = derive(lws(1, MASTER_ADDR="10.0.0.5", MASTER_PORT="1234"))
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("10.0.0.5", "1234")
    assert (env["PET_MASTER_ADDR"], env["PET_MASTER_PORT"]) == ("10.0.0.5", "1234")
    assert env["JAX_COORDINATOR_ADDRESS"] == "10.0.0.5:1234"
    # As in Backend.AI: TF ports come from the platform's base port, not the user's.
    assert json.loads(env["TF_CONFIG"])["cluster"]["worker"][0] == "train-0.train.ml:29500"


def test_an_empty_user_value_counts_as_unset() -> None:
    assert derive(lws(1, MASTER_PORT=""))["MASTER_PORT"] == "29500"


def test_rank_and_world_size_only_with_one_process_per_node() -> None:
    assert not {"WORLD_SIZE", "RANK", "LOCAL_RANK"} & derive(lws(1)).keys()
    many = derive(lws(1, DRIVETRAIN_NPROC_PER_NODE="8"))
    assert many["PET_NPROC_PER_NODE"] == "8"
    assert not {"WORLD_SIZE", "RANK", "LOCAL_RANK"} & many.keys()
    one = derive(lws(1, DRIVETRAIN_NPROC_PER_NODE="1"))
    assert (one["WORLD_SIZE"], one["RANK"], one["LOCAL_RANK"]) == ("3", "1", "0")


def test_a_single_node_gets_nothing() -> None:
    assert derive({**LWS3, "LWS_GROUP_SIZE": "1", "LWS_WORKER_INDEX": "0"}) == {}
    assert derive({}) == {}


def test_rank_source_none_turns_derivation_off() -> None:
    assert derive(lws(1, DRIVETRAIN_RANK_SOURCE="none")) == {}


def test_rank_source_named_but_absent_is_an_error_not_a_single_node() -> None:
    with pytest.raises(DistEnvError, match="LWS_GROUP_SIZE is not set"):
        derive({"DRIVETRAIN_RANK_SOURCE": "lws"})


def test_renderer_node_count_must_match_the_platform() -> None:
    with pytest.raises(DistEnvError, match="describe 3 nodes but DRIVETRAIN_NNODES=2"):
        derive(lws(0, DRIVETRAIN_NNODES="2"))


@pytest.mark.parametrize(
    ("clique", "pod", "rank"), [("trainer-ldr", 0, 0), ("trainer-wkr", 0, 1), ("trainer-wkr", 1, 2)]
)
def test_grove_rank_is_leader_zero_then_worker_index_plus_one(
    clique: str, pod: int, rank: int
) -> None:
    env = derive(grove_pod(clique, pod))
    assert env["NODE_RANK"] == str(rank)
    assert env["MASTER_ADDR"] == "g-0-trainer-1-trainer-ldr-0.g-0.ml.svc.cluster.local"


def test_grove_hosts_are_the_leader_then_the_worker_clique_pods() -> None:
    tf = json.loads(derive(grove_pod("trainer-wkr", 1))["TF_CONFIG"])
    assert tf["cluster"]["worker"] == [
        "g-0-trainer-1-trainer-ldr-0.g-0.ml.svc.cluster.local:29500",
        "g-0-trainer-1-trainer-wkr-0.g-0.ml.svc.cluster.local:29501",
        "g-0-trainer-1-trainer-wkr-1.g-0.ml.svc.cluster.local:29502",
    ]


def test_grove_pod_outside_a_scaling_group_is_a_single_node() -> None:
    assert derive({"GROVE_PCS_NAME": GROVE["GROVE_PCS_NAME"], "GROVE_PCLQ_NAME": "g-0-x"}) == {}


def test_explicit_values_come_first_and_hosts_give_the_master() -> None:
    env = derive(lws(1, DRIVETRAIN_NNODES="2", DRIVETRAIN_NODE_RANK="1", DRIVETRAIN_HOSTS="n0,n1"))
    assert (env["MASTER_ADDR"], env["NODE_RANK"], env["NNODES"]) == ("n0", "1", "2")


def test_malformed_input_names_variable_value_and_expectation() -> None:
    with pytest.raises(DistEnvError) as info:
        derive({"BACKENDAI_CLUSTER_SIZE": " 2", "BACKENDAI_CLUSTER_HOSTS": "a,b"})
    assert str(info.value) == "BACKENDAI_CLUSTER_SIZE=' 2' is not a whole number (e.g. 2)"


def test_indexed_job_rank_is_the_completion_index_and_pod_0_leads() -> None:
    env = derive(job_pod(2))
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "rl-trainer-0.rl-trainer"
    assert (env["NNODES"], env["NODE_RANK"]) == ("3", "2")
    assert env["JAX_COORDINATOR_ADDRESS"] == "rl-trainer-0.rl-trainer:29500"
    assert (env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"]) == ("3", "2")


def test_indexed_job_hosts_are_the_pods_under_the_service() -> None:
    tf = json.loads(derive(job_pod(1, DRIVETRAIN_JOB_SERVICE="rl-trainer.ml"))["TF_CONFIG"])
    assert tf == {
        "cluster": {
            "worker": [
                "rl-trainer-0.rl-trainer.ml:29500",
                "rl-trainer-1.rl-trainer.ml:29501",
                "rl-trainer-2.rl-trainer.ml:29502",
            ]
        },
        "task": {"type": "worker", "index": 1},
    }


def test_the_renderer_contract_names_the_source_and_count() -> None:
    assert JOB3 == {
        "DRIVETRAIN_RANK_SOURCE": "indexedjob",
        "DRIVETRAIN_NNODES": "3",
        "DRIVETRAIN_JOB_NAME": "rl-trainer",
        "DRIVETRAIN_JOB_SERVICE": "rl-trainer",
    }


def test_a_completion_index_alone_is_not_a_cluster() -> None:
    # Every Indexed Job has one (JobSet, Kubeflow Trainer): without drivetrain's names, auto
    # leaves those to their own variables.
    assert derive({"JOB_COMPLETION_INDEX": "1"}) == {}


def test_indexed_job_missing_index_is_an_error_not_rank_0() -> None:
    with pytest.raises(DistEnvError, match="JOB_COMPLETION_INDEX is not set"):
        derive(dict(JOB3))
