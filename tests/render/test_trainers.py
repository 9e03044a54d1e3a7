"""Trainer services run to completion: a Job (one node) or an Indexed Job (several) on every
rendering path, started through the mounted distributed-env script."""

from __future__ import annotations

import pytest

from drivetrain.api import InvalidGraph, load_text
from drivetrain.distenv import indexed_job_env
from drivetrain.render import graph_needs_multinode
from drivetrain.render.training import DISTENV_MOUNT_DIR, DISTENV_VOLUME
from drivetrain.verify import verify_manifests
from tests.render.conftest import by_kind, graph_from, main_container, one
from tests.schemas import schema_errors

TRAINER = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: rl}
spec:
  services:
    Frontend: {componentType: frontend}
    policy:
      componentType: trainer
      multinode: {nodeCount: 3}
      backoffLimit: 2
      extraPodSpec:
        mainContainer:
          image: pytorch/pytorch:2.5
          command: [torchrun]
          args: [train.py, --epochs, "3"]
    single:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, command: [python, train.py]}
"""


@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_trainers_are_jobs_whatever_the_deployer(render, multinode: str) -> None:
    objects = render(TRAINER, multinode=multinode)
    jobs = {j["metadata"]["name"]: j for j in by_kind(objects, "Job")}
    assert set(jobs) == {"rl-policy", "rl-single"}
    assert not by_kind(objects, "LeaderWorkerSet")
    for pcs in by_kind(objects, "PodCliqueSet"):
        cliques = {c["name"] for c in pcs["spec"]["template"]["cliques"]}
        assert cliques == {"frontend"}, "trainers are not in the PodCliqueSet"
    for obj in objects:
        assert schema_errors(obj) == [], obj["kind"]


def test_a_multinode_trainer_is_an_indexed_job_with_a_headless_service(render) -> None:
    objects = render(TRAINER)
    job = one(objects, "Job", "rl-policy")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimit"] == 2
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["subdomain"] == "rl-policy"
    svc = one(objects, "Service", "rl-policy")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    env = {e["name"]: e.get("value") for e in main_container(pod)["env"]}
    for name, value in indexed_job_env("rl-policy", "rl-policy", 3).items():
        assert env[name] == value
    assert "JOB_COMPLETION_INDEX" not in env  # the Job controller sets it


def test_a_single_node_trainer_is_a_plain_job_that_derives_nothing(render) -> None:
    objects = render(TRAINER)
    job = one(objects, "Job", "rl-single")
    assert "completionMode" not in job["spec"] and job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and "subdomain" not in pod
    env = {e["name"]: e.get("value") for e in main_container(pod)["env"]}
    assert env["DRIVETRAIN_RANK_SOURCE"] == "none"
    assert not [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "rl-single"]


def test_every_trainer_pod_runs_through_the_mounted_script(render) -> None:
    objects = render(TRAINER)
    (cm,) = by_kind(objects, "ConfigMap")
    for job in by_kind(objects, "Job"):
        spec = job["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes[DISTENV_VOLUME]["configMap"]["name"] == cm["metadata"]["name"]
        main = main_container(spec)
        assert main["command"][:3] == ["sh", f"{DISTENV_MOUNT_DIR}/distenv.sh", "--"]
        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        assert mounts[DISTENV_VOLUME] == DISTENV_MOUNT_DIR


@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_trainer_graphs_verify(render, multinode: str) -> None:
    report = verify_manifests(render(TRAINER, multinode=multinode))
    assert report.ok, [str(p) for p in report.problems]
    ranks = {p.pod for p in report.processes if p.workload == "Job/rl-policy"}
    assert ranks == {"rl-policy-0", "rl-policy-1"}, "verify simulates the Indexed Job's pods"


def test_a_multinode_trainer_alone_needs_no_multinode_api() -> None:
    graph = graph_from(TRAINER)
    assert not graph_needs_multinode(graph)


def test_a_trainer_scaled_to_zero_is_a_suspended_job(render) -> None:
    objects = render(TRAINER.replace("backoffLimit: 2", "backoffLimit: 2\n      replicas: 0"))
    assert one(objects, "Job", "rl-policy")["spec"]["suspend"] is True


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        (
            "backoffLimit: 2",
            "backoffLimit: 2\n      replicas: 2",
            "spec.services.policy.replicas",
            "a trainer runs as one Job",
        ),
        (
            "      extraPodSpec:\n        mainContainer:\n          image: pytorch/pytorch:2.5\n",
            "      extraPodSpec:\n        restartPolicy: Always\n        mainContainer:\n"
            "          image: pytorch/pytorch:2.5\n",
            "spec.services.policy.extraPodSpec.restartPolicy",
            "run once (Never",
        ),
    ],
)
def test_trainer_rules_name_the_field(old: str, new: str, path: str, message: str) -> None:
    assert old in TRAINER
    with pytest.raises(InvalidGraph) as exc:
        load_text(TRAINER.replace(old, new, 1))
    (error,) = exc.value.errors
    assert error.path == path and message in error.message


def test_backoff_limit_belongs_to_trainers() -> None:
    text = TRAINER.replace(
        "Frontend: {componentType: frontend}",
        "Frontend: {componentType: frontend, backoffLimit: 1}",
    )
    with pytest.raises(InvalidGraph) as exc:
        load_text(text)
    assert [e.path for e in exc.value.errors] == ["spec.services.Frontend.backoffLimit"]


BARE_SCRIPT = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: rl}
spec:
  services:
    as-args:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, args: [train.py]}
    in-a-script:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, command: [sh, -c, "exec train.py --x"]}
    with-interpreter:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, args: [python3 train.py]}
    by-path:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, command: [./train.py]}
"""


def test_a_trainer_running_a_bare_python_script_is_refused_naming_the_service(render) -> None:
    """`args: [train.py]` would render `sh -c train.py`: "train.py: not found" in the pod."""
    with pytest.raises(InvalidGraph) as exc:
        render(BARE_SCRIPT, multinode="lws")
    assert [e.path for e in exc.value.errors] == [
        "spec.services.as-args",
        "spec.services.in-a-script",
    ]
    first = str(exc.value.errors[0])
    assert "extraPodSpec.mainContainer runs `/bin/sh -c train.py`" in first
    assert "'train.py' is a Python script with no interpreter and no path" in first
    assert "run it as `python3 train.py`" in first
