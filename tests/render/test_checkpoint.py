"""Checkpoint/restore rendering (the target-containers protocol): the checkpoint Job, restore
targets with one container or two failover engines, the examples under examples/, and each
refusal with its message."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from drivetrain import snapshot_protocol as sp
from drivetrain.api import InvalidGraph, load_file, load_text
from drivetrain.render import render_graph
from drivetrain.verify import verify_manifests
from tests.paths import REPO
from tests.render.conftest import by_kind, one
from tests.render.test_gms_failover import SIDECAR, all_valid, container, dgd, env_of, vllm_worker

CHECKPOINT_ID = "96429b2725761a09"  # the hash of the identity below (a Dynamo vector's)
IDENTITY = {"model": "meta-llama/Llama-2-7b-hf", "backendFramework": "vllm"}
EXAMPLES = sorted((REPO / "examples" / "checkpoint").glob("*.yaml"))


def ckpt_worker(**checkpoint: Any) -> dict[str, Any]:
    worker = vllm_worker()
    del worker["gpuMemoryService"]
    worker["checkpoint"] = {"enabled": True, "identity": dict(IDENTITY), **checkpoint}
    return worker


def render(text: str, multinode: str = "lws") -> list[dict[str, Any]]:
    (graph,) = load_text(text).graphs
    return render_graph(graph, namespace="ml", multinode=multinode)


def job_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    job = one(objects, "Job", f"checkpoint-job-{CHECKPOINT_ID}-1")
    return job["spec"]["template"]  # type: ignore[no-any-return]


def serving_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment", "fo-worker")["spec"]["template"]  # type: ignore[no-any-return]


def mounts(c: dict[str, Any], volume: str) -> list[dict[str, Any]]:
    return [m for m in c.get("volumeMounts", []) if m["name"] == volume]


def test_the_checkpoint_job_targets_main_with_its_own_control_directory() -> None:
    objects = render(dgd(ckpt_worker()))
    job = one(objects, "Job")
    assert job["metadata"]["labels"][sp.CHECKPOINT_ID_LABEL] == CHECKPOINT_ID
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 3600
    assert "ttlSecondsAfterFinished" not in job["spec"]
    pod = job_pod(objects)
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert labels[sp.CHECKPOINT_SOURCE_LABEL] == "true"
    assert labels[sp.CHECKPOINT_ID_LABEL] == CHECKPOINT_ID
    assert "drivetrain.dev/selector" not in labels, "no Service or workload selects it"
    assert annotations[sp.TARGET_CONTAINERS_ANNOTATION] == "main"
    assert annotations[sp.ARTIFACT_VERSION_ANNOTATION] == "1"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "profiles/block-iouring.json",
    }
    assert {"name": "snapshot-control", "emptyDir": {}} in spec["volumes"]
    main = container(spec, "main")
    assert mounts(main, "snapshot-control") == [
        {"name": "snapshot-control", "mountPath": "/snapshot-control", "subPath": "main"}
    ]
    assert env_of(main)["SNAPSHOT_CONTROL_DIR"] == env_of(main)["DYN_SNAPSHOT_CONTROL_DIR"]
    assert main["readinessProbe"] == {
        "exec": {"command": ["cat", "/snapshot-control/ready-for-snapshot"]},
        "periodSeconds": 1,
    }
    assert "livenessProbe" not in main and "startupProbe" not in main
    assert main["command"] == ["python3", "-m", "dynamo.vllm"], "TP 1: no cuda-checkpoint"
    all_valid(objects)


def test_restore_targets_name_main_and_start_in_standby() -> None:
    objects = render(dgd(ckpt_worker(storage={"pvcName": "ckpts"})))
    deployment = one(objects, "Deployment", "fo-worker")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = serving_pod(objects)
    assert pod["metadata"]["labels"][sp.CHECKPOINT_ID_LABEL] == CHECKPOINT_ID
    assert pod["metadata"]["labels"][sp.RESTORE_TARGET_LABEL] == "true"
    assert sp.CHECKPOINT_SOURCE_LABEL not in pod["metadata"]["labels"]
    annotations = pod["metadata"]["annotations"]
    assert annotations[sp.TARGET_CONTAINERS_ANNOTATION] == "main"
    assert annotations[sp.STORAGE_TYPE_ANNOTATION] == "pvc"
    assert annotations[sp.STORAGE_BASE_PATH_ANNOTATION] == "/checkpoints"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    main = container(spec, "main")
    assert env_of(main)["DYN_SNAPSHOT_RESTORE_STANDBY"] == "1"
    assert mounts(main, "snapshot-control")[0]["subPath"] == "main"
    assert mounts(main, "checkpoint-storage") == [
        {"name": "checkpoint-storage", "mountPath": "/checkpoints", "readOnly": True}
    ]
    # A copy of the startup probe, checked every second for up to 30 minutes.
    assert main["startupProbe"] == {
        "httpGet": {"path": "/live", "port": "system"},
        "initialDelaySeconds": 0,
        "periodSeconds": 1,
        "timeoutSeconds": 5,
        "successThreshold": 1,
        "failureThreshold": 1800,
    }
    assert main["command"] == ["python3", "-m", "dynamo.vllm"], "the command is kept"
    all_valid(objects)


def test_failover_restores_target_both_engines_each_with_its_subpath() -> None:
    worker = vllm_worker(
        failover={"enabled": True},
        checkpoint={"enabled": True, "identity": IDENTITY, "storage": {"pvcName": "ckpts"}},
    )
    objects = render(dgd(worker))
    pod = serving_pod(objects)
    assert pod["metadata"]["annotations"][sp.TARGET_CONTAINERS_ANNOTATION] == "engine-0,engine-1"
    for name in ("engine-0", "engine-1"):
        engine = container(pod["spec"], name)
        assert mounts(engine, "snapshot-control")[0]["subPath"] == name
        assert engine["startupProbe"]["httpGet"]["port"] == name.replace("engine", "system")
        assert engine["startupProbe"]["periodSeconds"] == 1
    # The checkpoint is one engine's: the Job runs main alone, with the GMS saver.
    job = job_pod(objects)
    assert job["metadata"]["annotations"][sp.TARGET_CONTAINERS_ANNOTATION] == "main"
    assert [c["name"] for c in job["spec"]["containers"]] == ["main"]
    assert [c["name"] for c in job["spec"]["initContainers"]] == ["gms-server", "gms-saver"]
    saver = job["spec"]["initContainers"][1]
    assert env_of(saver)["GMS_CHECKPOINT_DIR"] == f"/checkpoints/gms/{CHECKPOINT_ID}/versions/1"
    loaders = [c["name"] for c in pod["spec"]["initContainers"]]
    assert loaders == ["gms-server", "gms-loader"]
    all_valid(objects)


def test_a_sidecar_first_is_neither_target_nor_touched() -> None:
    worker = ckpt_worker()
    worker["extraPodSpec"]["containers"] = [copy.deepcopy(SIDECAR)]
    objects = render(dgd(worker))
    for pod in (serving_pod(objects), job_pod(objects)):
        assert pod["spec"]["containers"][0] == SIDECAR
        assert pod["metadata"]["annotations"][sp.TARGET_CONTAINERS_ANNOTATION] == "main"
    all_valid(objects)


def test_tensor_parallel_checkpoints_run_under_cuda_checkpoint() -> None:
    identity = {**IDENTITY, "tensorParallelSize": 2}
    objects = render(dgd(ckpt_worker(identity=identity)))
    job = one(objects, "Job")
    main = container(job["spec"]["template"]["spec"], "main")
    assert main["command"] == ["cuda-checkpoint"]
    assert main["args"][:4] == ["--launch-job", "python3", "-m", "dynamo.vllm"]
    report = verify_manifests(objects)
    assert report.ok
    (proc,) = [p for p in report.processes if p.workload.startswith("Job/")]
    assert proc.argv[:2] == ["cuda-checkpoint", "--launch-job"]


def test_manual_mode_renders_restore_targets_and_no_job() -> None:
    objects = render(dgd(ckpt_worker(mode="Manual")))
    assert by_kind(objects, "Job") == []
    assert serving_pod(objects)["metadata"]["labels"][sp.CHECKPOINT_ID_LABEL] == CHECKPOINT_ID


def test_grove_renders_the_job_and_restore_cliques() -> None:
    objects = render(dgd(ckpt_worker()), multinode="grove")
    one(objects, "Job")
    pcs = one(objects, "PodCliqueSet")
    (clique,) = [c for c in pcs["spec"]["template"]["cliques"] if c["name"] == "worker"]
    assert clique["labels"][sp.CHECKPOINT_ID_LABEL] == CHECKPOINT_ID
    assert clique["annotations"][sp.TARGET_CONTAINERS_ANNOTATION] == "main"
    all_valid(objects)


def test_the_checkpoint_examples_are_there() -> None:
    assert [p.name for p in EXAMPLES] == ["vllm.yaml", "vllm_failover.yaml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_the_checkpoint_examples_render_validate_and_verify(path: Any, multinode: str) -> None:
    (graph,) = load_file(path).graphs
    objects = render_graph(graph, namespace="dynamo", multinode=multinode)
    assert len(by_kind(objects, "Job")) == 1
    all_valid(objects)


# --- refusals -------------------------------------------------------------------------------


def load_errors(text: str) -> list[str]:
    with pytest.raises(InvalidGraph) as info:
        load_text(text)
    return [str(e) for e in info.value.errors]


def render_errors(text: str) -> list[str]:
    with pytest.raises(InvalidGraph) as info:
        render(text)
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    ("checkpoint", "path", "message"),
    [
        (
            {"checkpointRef": "checkpoint-abc"},
            "checkpoint.checkpointRef",
            "names a DynamoCheckpoint in the cluster, which drivetrain's pure render cannot read",
        ),
        ({"identity": None}, "checkpoint.identity", "required when checkpoint is enabled"),
        ({"artifactVersion": "V 2"}, "checkpoint.artifactVersion", "should match pattern"),
        (
            {"storage": {"basePath": "/x"}},
            "checkpoint.storage.pvcName",
            "required field is missing",
        ),
    ],
    ids=["checkpoint-ref", "no-identity", "bad-version", "storage-without-pvc"],
)
def test_checkpoint_block_refusals(checkpoint: dict[str, Any], path: str, message: str) -> None:
    worker = ckpt_worker(**checkpoint)
    if worker["checkpoint"].get("identity") is None:
        worker["checkpoint"].pop("identity")
    found = load_errors(dgd(worker))
    assert any(f"spec.services.Worker.{path}: " in e and message in e for e in found), found


def test_multinode_services_are_not_checkpointed() -> None:
    (error,) = load_errors(dgd(ckpt_worker() | {"multinode": {"nodeCount": 2}}))
    assert "spec.services.Worker.checkpoint: checkpoint/restore is for single-node services" in (
        error
    )


def test_gms_checkpoints_need_storage() -> None:
    worker = ckpt_worker()
    worker["gpuMemoryService"] = {"enabled": True}
    (error,) = load_errors(dgd(worker))
    assert "spec.services.Worker.checkpoint.storage: required with gpuMemoryService" in error


def test_the_identity_must_name_the_engine_the_service_runs() -> None:
    worker = ckpt_worker(identity={**IDENTITY, "backendFramework": "sglang"})
    (error,) = render_errors(dgd(worker))
    assert (
        "spec.services.Worker.checkpoint.identity.backendFramework: is sglang, but the service "
        "runs vllm"
    ) in error


def test_a_shell_entrypoint_is_refused_naming_the_container() -> None:
    worker = ckpt_worker()
    worker["extraPodSpec"]["mainContainer"].update(
        command=["/bin/sh", "-c"], args=["python3 -m dynamo.vllm --model Qwen/Qwen3-0.6B"]
    )
    (error,) = render_errors(dgd(worker))
    assert "spec.services.Worker.extraPodSpec.mainContainer.command: container main starts" in (
        error
    )
    assert "through a shell (sh -c): checkpoint/restore needs an exec-form command" in error


def test_a_shell_entrypoint_names_the_failover_engine() -> None:
    worker = vllm_worker(
        failover={"enabled": True},
        checkpoint={"enabled": True, "identity": IDENTITY, "storage": {"pvcName": "ckpts"}},
    )
    worker["extraPodSpec"]["mainContainer"].update(
        command=["bash", "-lc"], args=["exec python3 -m dynamo.vllm"]
    )
    found = render_errors(dgd(worker))
    assert any("container engine-0 starts through a shell (bash -c)" in e for e in found), found


def test_the_drivetrain_profile_checkpoints_its_own_failover_worker() -> None:
    text = yaml.safe_dump(
        {
            "apiVersion": "drivetrain.dev/v1alpha1",
            "kind": "GraphDeployment",
            "metadata": {"name": "fo"},
            "spec": {
                "services": {
                    "Frontend": {"componentType": "frontend"},
                    "worker": {
                        "componentType": "worker",
                        "failover": {"enabled": True},
                        "checkpoint": {"enabled": True, "identity": IDENTITY},
                        "extraPodSpec": {
                            "mainContainer": {"args": ["worker", "--engine", "mocker"]}
                        },
                    },
                }
            },
        }
    )
    objects = render(text)
    pod = serving_pod(objects)
    assert pod["metadata"]["annotations"][sp.TARGET_CONTAINERS_ANNOTATION] == "engine-0,engine-1"
    job = job_pod(objects)
    assert [c["name"] for c in job["spec"]["containers"]] == ["main"]
    all_valid(objects)
