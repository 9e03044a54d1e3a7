"""Inputs every test module shares: the reference vectors and hand-written cases."""

from __future__ import annotations

import json
from typing import Any

from drivetrain.distenv import indexed_job_env
from tests.paths import SHARED

VECTORS_FILE = SHARED / "vectors" / "distenv-vectors.json"
BACKENDAI = "backendai-setup_dist_environ"


def vectors(system: str) -> list[dict[str, Any]]:
    """The vectors of one system, or [] when ../shared is absent (tests then skip)."""
    if not VECTORS_FILE.exists():
        return []
    return [v for v in json.loads(VECTORS_FILE.read_text()) if v["system"] == system]


def lws_env(vector: dict[str, Any]) -> dict[str, str]:
    """What LWS injects into a pod of this vector's topology."""
    return {k: v for k, v in vector["expect"].items() if k.startswith("LWS_")}


LWS3 = {"LWS_LEADER_ADDRESS": "train-0.train.ml", "LWS_GROUP_SIZE": "3"}

GROVE = {
    "GROVE_PCS_NAME": "g",
    "GROVE_PCS_INDEX": "0",
    "GROVE_PCSG_NAME": "g-0-trainer",
    "GROVE_PCSG_INDEX": "1",
    "GROVE_PCSG_TEMPLATE_NUM_PODS": "3",
    "GROVE_HEADLESS_SERVICE": "g-0.ml.svc.cluster.local",
    "DRIVETRAIN_GROVE_LEADER_CLIQUE": "trainer-ldr",
    "DRIVETRAIN_GROVE_WORKER_CLIQUE": "trainer-wkr",
}


def grove_pod(clique: str, index: int) -> dict[str, str]:
    return {
        **GROVE,
        "GROVE_PCLQ_NAME": f"g-0-trainer-1-{clique}",
        "GROVE_PCLQ_POD_INDEX": str(index),
    }


#: What the renderer injects into a 3-node Indexed Job trainer; Kubernetes adds the index.
JOB3 = indexed_job_env("rl-trainer", "rl-trainer", 3)


def job_pod(index: int, **extra: str) -> dict[str, str]:
    return {**JOB3, "JOB_COMPLETION_INDEX": str(index), **extra}


#: (id, environment) pairs beyond the vectors: every source, precedence, and refusals.
EXTRA_CASES: list[tuple[str, dict[str, str]]] = [
    ("lws-leader", {**LWS3, "LWS_WORKER_INDEX": "0"}),
    ("lws-worker-2", {**LWS3, "LWS_WORKER_INDEX": "2"}),
    ("lws-single-node", {**LWS3, "LWS_GROUP_SIZE": "1", "LWS_WORKER_INDEX": "0"}),
    ("lws-ip-leader", {**LWS3, "LWS_LEADER_ADDRESS": "127.0.0.1", "LWS_WORKER_INDEX": "1"}),
    ("lws-no-dot-leader", {**LWS3, "LWS_LEADER_ADDRESS": "leader", "LWS_WORKER_INDEX": "1"}),
    ("lws-nproc-1", {**LWS3, "LWS_WORKER_INDEX": "1", "DRIVETRAIN_NPROC_PER_NODE": "1"}),
    ("lws-nproc-8", {**LWS3, "LWS_WORKER_INDEX": "1", "DRIVETRAIN_NPROC_PER_NODE": "8"}),
    ("lws-nproc-auto", {**LWS3, "LWS_WORKER_INDEX": "1", "DRIVETRAIN_NPROC_PER_NODE": "auto"}),
    ("lws-port", {**LWS3, "LWS_WORKER_INDEX": "1", "DRIVETRAIN_MASTER_PORT": "40000"}),
    ("lws-count-agrees", {**LWS3, "LWS_WORKER_INDEX": "1", "DRIVETRAIN_NNODES": "3"}),
    ("lws-forced", {**LWS3, "LWS_WORKER_INDEX": "1", "DRIVETRAIN_RANK_SOURCE": "lws"}),
    (
        "user-values-with-quotes",
        {
            **LWS3,
            "LWS_WORKER_INDEX": "1",
            "MASTER_ADDR": "it's mine",
            "TF_CONFIG": '{"x": "$HOME `id`"}',
            "PET_NNODES": "1:4",
        },
    ),
    ("user-empty-values", {**LWS3, "LWS_WORKER_INDEX": "1", "MASTER_PORT": "", "RANK": ""}),
    ("grove-leader", grove_pod("trainer-ldr", 0)),
    ("grove-worker-0", grove_pod("trainer-wkr", 0)),
    ("grove-worker-1", grove_pod("trainer-wkr", 1)),
    ("grove-single", {**grove_pod("trainer-ldr", 0), "GROVE_PCSG_TEMPLATE_NUM_PODS": "1"}),
    ("grove-standalone-clique", {"GROVE_PCS_NAME": "g", "GROVE_PCLQ_NAME": "g-0-frontend"}),
    (
        "explicit-hosts",
        {"DRIVETRAIN_NNODES": "2", "DRIVETRAIN_NODE_RANK": "1", "DRIVETRAIN_HOSTS": "n0,n1"},
    ),
    (
        "explicit-addr",
        {
            "DRIVETRAIN_NNODES": "4",
            "DRIVETRAIN_NODE_RANK": "3",
            "DRIVETRAIN_MASTER_ADDR": "10.1.2.3",
            "DRIVETRAIN_MASTER_PORT": "1234",
        },
    ),
    ("indexedjob-leader", job_pod(0)),
    ("indexedjob-rank-2", job_pod(2)),
    ("indexedjob-auto", {k: v for k, v in job_pod(1).items() if k != "DRIVETRAIN_RANK_SOURCE"}),
    ("indexedjob-service-in-namespace", job_pod(1, DRIVETRAIN_JOB_SERVICE="rl-trainer.ml")),
    (
        "indexedjob-port-nproc-1",
        job_pod(1, DRIVETRAIN_MASTER_PORT="6000", DRIVETRAIN_NPROC_PER_NODE="1"),
    ),
    ("indexedjob-single-node", {**indexed_job_env("solo", "solo", 1), "JOB_COMPLETION_INDEX": "0"}),
    ("indexedjob-single-node-no-index", indexed_job_env("solo", "solo", 1)),
    ("job-index-alone-is-not-a-source", {"JOB_COMPLETION_INDEX": "1"}),
    ("nothing-set", {"HOME": "/root"}),
    ("source-none", {**LWS3, "LWS_WORKER_INDEX": "1", "DRIVETRAIN_RANK_SOURCE": "none"}),
    (
        "explicit-before-lws",
        {
            **LWS3,
            "LWS_WORKER_INDEX": "1",
            "DRIVETRAIN_NNODES": "2",
            "DRIVETRAIN_NODE_RANK": "0",
            "DRIVETRAIN_MASTER_ADDR": "other",
        },
    ),
    (
        "backendai-forced-over-lws",
        {
            **LWS3,
            "LWS_WORKER_INDEX": "1",
            "DRIVETRAIN_RANK_SOURCE": "backendai",
            "BACKENDAI_CLUSTER_SIZE": "2",
            "BACKENDAI_CLUSTER_HOSTS": "main1,sub1",
        },
    ),
]

#: (id, environment, the variable the error must name): input both versions refuse.
BAD_CASES: list[tuple[str, dict[str, str], str]] = [
    (
        "ba-size-space",
        {"BACKENDAI_CLUSTER_SIZE": " 2", "BACKENDAI_CLUSTER_HOSTS": "a,b"},
        "BACKENDAI_CLUSTER_SIZE",
    ),
    (
        "ba-size-trailing-space",
        {"BACKENDAI_CLUSTER_SIZE": "2 ", "BACKENDAI_CLUSTER_HOSTS": "a,b"},
        "BACKENDAI_CLUSTER_SIZE",
    ),
    (
        "ba-size-leading-zero",
        {"BACKENDAI_CLUSTER_SIZE": "01", "BACKENDAI_CLUSTER_HOSTS": "a"},
        "BACKENDAI_CLUSTER_SIZE",
    ),
    (
        "ba-size-decimal",
        {"BACKENDAI_CLUSTER_SIZE": "1.5", "BACKENDAI_CLUSTER_HOSTS": "a,b"},
        "BACKENDAI_CLUSTER_SIZE",
    ),
    (
        "ba-host-with-space",
        {"BACKENDAI_CLUSTER_SIZE": "2", "BACKENDAI_CLUSTER_HOSTS": "main1, sub1"},
        "BACKENDAI_CLUSTER_HOSTS",
    ),
    (
        "ba-empty-middle-host",
        {"BACKENDAI_CLUSTER_SIZE": "3", "BACKENDAI_CLUSTER_HOSTS": "a,,b"},
        "BACKENDAI_CLUSTER_HOSTS",
    ),
    (
        "ba-two-trailing-commas",
        {"BACKENDAI_CLUSTER_SIZE": "2", "BACKENDAI_CLUSTER_HOSTS": "a,b,,"},
        "BACKENDAI_CLUSTER_HOSTS",
    ),
    (
        "ba-glob-host",
        {"BACKENDAI_CLUSTER_SIZE": "2", "BACKENDAI_CLUSTER_HOSTS": "a,*"},
        "BACKENDAI_CLUSTER_HOSTS",
    ),
    ("ba-hosts-unset", {"BACKENDAI_CLUSTER_SIZE": "2"}, "BACKENDAI_CLUSTER_HOSTS"),
    (
        "ba-fewer-hosts-than-size",
        {"BACKENDAI_CLUSTER_SIZE": "3", "BACKENDAI_CLUSTER_HOSTS": "a,b"},
        "hosts listed",
    ),
    (
        "ba-port-letters",
        {
            "BACKENDAI_CLUSTER_SIZE": "2",
            "BACKENDAI_CLUSTER_HOSTS": "a,b",
            "BACKENDAI_DIST_MASTER_PORT": "abc",
        },
        "BACKENDAI_DIST_MASTER_PORT",
    ),
    (
        "ba-port-octal-looking",
        {
            "BACKENDAI_CLUSTER_SIZE": "2",
            "BACKENDAI_CLUSTER_HOSTS": "a,b",
            "BACKENDAI_DIST_MASTER_PORT": "010",
        },
        "BACKENDAI_DIST_MASTER_PORT",
    ),
    (
        "ba-port-too-big",
        {
            "BACKENDAI_CLUSTER_SIZE": "2",
            "BACKENDAI_CLUSTER_HOSTS": "a,b",
            "BACKENDAI_DIST_MASTER_PORT": "70000",
        },
        "BACKENDAI_DIST_MASTER_PORT",
    ),
    (
        "ba-last-tf-port-too-big",
        {
            "BACKENDAI_CLUSTER_SIZE": "2",
            "BACKENDAI_CLUSTER_HOSTS": "a,b",
            "BACKENDAI_DIST_MASTER_PORT": "65535",
        },
        "65535",
    ),
    (
        "ba-rank-letters",
        {
            "BACKENDAI_CLUSTER_SIZE": "2",
            "BACKENDAI_CLUSTER_HOSTS": "a,b",
            "BACKENDAI_CLUSTER_LOCAL_RANK": "x",
        },
        "BACKENDAI_CLUSTER_LOCAL_RANK",
    ),
    (
        "ba-rank-out-of-range",
        {
            "BACKENDAI_CLUSTER_SIZE": "2",
            "BACKENDAI_CLUSTER_HOSTS": "a,b",
            "BACKENDAI_CLUSTER_LOCAL_RANK": "2",
        },
        "BACKENDAI_CLUSTER_LOCAL_RANK",
    ),
    (
        "lws-size-letters",
        {**LWS3, "LWS_GROUP_SIZE": "two", "LWS_WORKER_INDEX": "0"},
        "LWS_GROUP_SIZE",
    ),
    (
        "lws-size-ten-digits",
        {**LWS3, "LWS_GROUP_SIZE": "1234567890", "LWS_WORKER_INDEX": "0"},
        "LWS_GROUP_SIZE",
    ),
    ("lws-index-missing", dict(LWS3), "LWS_WORKER_INDEX"),
    ("lws-index-negative", {**LWS3, "LWS_WORKER_INDEX": "-1"}, "LWS_WORKER_INDEX"),
    ("lws-leader-missing", {"LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "1"}, "LWS_LEADER_ADDRESS"),
    (
        "lws-port-letters",
        {**LWS3, "LWS_WORKER_INDEX": "0", "DRIVETRAIN_MASTER_PORT": "http"},
        "DRIVETRAIN_MASTER_PORT",
    ),
    (
        "lws-count-disagrees",
        {**LWS3, "LWS_WORKER_INDEX": "0", "DRIVETRAIN_NNODES": "2"},
        "DRIVETRAIN_NNODES",
    ),
    ("lws-forced-but-absent", {"DRIVETRAIN_RANK_SOURCE": "lws"}, "LWS_GROUP_SIZE"),
    ("unknown-source", {"DRIVETRAIN_RANK_SOURCE": "slurm"}, "DRIVETRAIN_RANK_SOURCE"),
    (
        "nproc-zero",
        {**LWS3, "LWS_WORKER_INDEX": "0", "DRIVETRAIN_NPROC_PER_NODE": "0"},
        "DRIVETRAIN_NPROC_PER_NODE",
    ),
    ("nproc-words", {"DRIVETRAIN_NPROC_PER_NODE": "all"}, "DRIVETRAIN_NPROC_PER_NODE"),
    ("grove-foreign-clique", grove_pod("router", 0), "GROVE_PCLQ_NAME"),
    (
        "grove-cliques-unknown",
        {k: v for k, v in grove_pod("trainer-ldr", 0).items() if not k.startswith("DRIVETRAIN_")},
        "DRIVETRAIN_GROVE_LEADER_CLIQUE",
    ),
    ("indexedjob-index-missing", dict(JOB3), "JOB_COMPLETION_INDEX"),
    ("indexedjob-index-out-of-range", job_pod(3), "JOB_COMPLETION_INDEX"),
    ("indexedjob-index-letters", job_pod(0, JOB_COMPLETION_INDEX="one"), "JOB_COMPLETION_INDEX"),
    (
        "indexedjob-index-leading-zero",
        job_pod(0, JOB_COMPLETION_INDEX="01"),
        "JOB_COMPLETION_INDEX",
    ),
    ("indexedjob-name-missing", job_pod(1, DRIVETRAIN_JOB_NAME=""), "DRIVETRAIN_JOB_NAME"),
    (
        "indexedjob-auto-service-missing",
        {"DRIVETRAIN_JOB_NAME": "j", "DRIVETRAIN_NNODES": "2", "JOB_COMPLETION_INDEX": "0"},
        "DRIVETRAIN_JOB_SERVICE",
    ),
    (
        "indexedjob-service-glob",
        job_pod(1, DRIVETRAIN_JOB_SERVICE="svc*"),
        "DRIVETRAIN_JOB_SERVICE",
    ),
    ("indexedjob-count-missing", job_pod(1, DRIVETRAIN_NNODES=""), "DRIVETRAIN_NNODES"),
    ("indexedjob-count-letters", job_pod(1, DRIVETRAIN_NNODES="three"), "DRIVETRAIN_NNODES"),
    ("indexedjob-forced-but-absent", {"DRIVETRAIN_RANK_SOURCE": "indexedjob"}, "DRIVETRAIN_NNODES"),
    (
        "explicit-no-master",
        {"DRIVETRAIN_NNODES": "2", "DRIVETRAIN_NODE_RANK": "0"},
        "DRIVETRAIN_MASTER_ADDR",
    ),
    (
        "explicit-rank-out-of-range",
        {"DRIVETRAIN_NNODES": "2", "DRIVETRAIN_NODE_RANK": "5", "DRIVETRAIN_MASTER_ADDR": "m"},
        "DRIVETRAIN_NODE_RANK",
    ),
    (
        "explicit-count-unset",
        {"DRIVETRAIN_NODE_RANK": "0", "DRIVETRAIN_MASTER_ADDR": "m"},
        "DRIVETRAIN_NNODES",
    ),
]
