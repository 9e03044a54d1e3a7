"""DRA, the GPU memory service and failover through ``render_graph``: every feature lands on the
main container (a sidecar first included), the engines are cloned after GMS and DRA, the
drivetrain profile's failover contract, and each refusal with its message."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from drivetrain.api import InvalidGraph, load_text
from drivetrain.render import render_graph
from drivetrain.verify import verify_manifests
from tests.render.conftest import one
from tests.schemas import schema_errors

SIDECAR = {
    "name": "log-shipper",
    "image": "fluent/fluent-bit:3.1",
    "command": ["/fluent-bit/bin/fluent-bit", "-c", "/fluent-bit/etc/fluent-bit.conf"],
    "readinessProbe": {"exec": {"command": ["true"]}},
    "resources": {"limits": {"cpu": "100m"}},
}


def dgd(worker: dict[str, Any], *, annotations: dict[str, str] | None = None) -> str:
    """A Dynamo graph with a frontend and one worker service ``Worker``."""
    doc = {
        "apiVersion": "nvidia.com/v1alpha1",
        "kind": "DynamoGraphDeployment",
        "metadata": {
            "name": "fo",
            "annotations": annotations
            if annotations is not None
            else {"nvidia.com/dynamo-kube-discovery-mode": "container"},
        },
        "spec": {
            "services": {
                "Frontend": {
                    "componentType": "frontend",
                    "extraPodSpec": {"mainContainer": {"image": "dynamo:1"}},
                },
                "Worker": {"componentType": "worker", **worker},
            }
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def vllm_worker(**extra: Any) -> dict[str, Any]:
    main = {
        "image": "vllm-runtime:1",
        "command": ["python3", "-m", "dynamo.vllm"],
        "args": ["--model", "Qwen/Qwen3-0.6B"],
    }
    worker: dict[str, Any] = {
        "resources": {"limits": {"gpu": "2"}},
        "gpuMemoryService": {"enabled": True},
        "extraPodSpec": {"mainContainer": main},
    }
    worker.update(extra)
    return worker


def with_sidecar(worker: dict[str, Any]) -> dict[str, Any]:
    worker["extraPodSpec"]["containers"] = [dict(SIDECAR)]
    return worker


def render(text: str, multinode: str = "lws") -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for graph in load_text(text).graphs:
        objects += render_graph(graph, namespace="ml", multinode=multinode)
    return objects


def worker_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment", "fo-worker")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in spec["containers"] if c["name"] == name]
    return found


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def errors(text: str) -> list[str]:
    with pytest.raises(InvalidGraph) as info:
        render(text)
    return [str(e) for e in info.value.errors]


def all_valid(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        assert schema_errors(obj) == [], f"{obj['kind']} {obj['metadata']['name']}"
    report = verify_manifests(objects)
    assert report.ok, report.problems


# --- one resolution of the main container --------------------------------------------------


def test_dra_and_gms_land_on_main_when_a_sidecar_comes_first() -> None:
    objects = render(dgd(with_sidecar(vllm_worker())))
    spec = worker_pod(objects)
    assert [c["name"] for c in spec["containers"]] == ["log-shipper", "main"]
    assert spec["containers"][0] == SIDECAR, "the sidecar is left as the user wrote it"
    main = container(spec, "main")
    assert main["resources"] == {"claims": [{"name": "intrapod-shared-gpu"}]}
    assert {"name": "gms-intrapod-control", "mountPath": "/gms-intrapod-control"} in main[
        "volumeMounts"
    ]
    assert env_of(main)["GMS_SOCKET_DIR"] == "/gms-intrapod-control"
    (server,) = spec["initContainers"]
    assert server["name"] == "gms-server" and server["image"] == "vllm-runtime:1"
    all_valid(objects)


def test_failover_clones_main_not_the_sidecar_and_keeps_the_sidecar_first() -> None:
    objects = render(dgd(with_sidecar(vllm_worker(failover={"enabled": True}))))
    spec = worker_pod(objects)
    assert [c["name"] for c in spec["containers"]] == ["log-shipper", "engine-0", "engine-1"]
    assert spec["containers"][0] == SIDECAR
    for engine in spec["containers"][1:]:
        assert engine["command"] == ["python3", "-m", "dynamo.vllm"]
        assert engine["image"] == "vllm-runtime:1"
    all_valid(objects)


def test_engine_flags_and_probes_land_on_main_when_a_sidecar_comes_first() -> None:
    worker = with_sidecar(vllm_worker(multinode={"nodeCount": 2}))
    del worker["gpuMemoryService"]
    worker["extraPodSpec"]["mainContainer"]["args"] += ["--tensor-parallel-size", "4"]
    objects = render(dgd(worker))
    lws = one(objects, "LeaderWorkerSet", "fo-worker")["spec"]["leaderWorkerTemplate"]
    spec = lws["workerTemplate"]["spec"]
    assert spec["containers"][0] == SIDECAR, "probes and flags stay off the sidecar"
    main = container(spec, "main")
    assert "--nnodes" in main["args"] and "readinessProbe" not in main
    (wait,) = spec["initContainers"]
    assert wait["image"] == "vllm-runtime:1", "the wait-for-leader image is main's"
    all_valid(objects)


# --- ordering: engines are cloned after DRA and GMS ----------------------------------------


def test_both_engines_inherit_the_claim_the_gms_mount_and_its_env() -> None:
    objects = render(dgd(vllm_worker(failover={"enabled": True})))
    spec = worker_pod(objects)
    engines = [container(spec, f"engine-{i}") for i in (0, 1)]
    for engine in engines:
        assert engine["resources"] == {"claims": [{"name": "intrapod-shared-gpu"}]}
        assert {"name": "gms-intrapod-control", "mountPath": "/gms-intrapod-control"} in engine[
            "volumeMounts"
        ]
        assert env_of(engine)["GMS_SOCKET_DIR"] == "/gms-intrapod-control"
        assert env_of(engine)["FAILOVER_LOCK_PATH"] == "/gms-intrapod-control/failover.lock"
    assert [c["name"] for c in spec["initContainers"]] == ["gms-server"]
    assert spec["resourceClaims"] == [
        {"name": "intrapod-shared-gpu", "resourceClaimTemplateName": "fo-worker-gpu"}
    ]
    assert [env_of(e)["DYN_SYSTEM_PORT"] for e in engines] == ["9090", "9091"]
    assert engines[1]["args"][-2:] == ["--master-port", "29600"]
    all_valid(objects)


# --- DRA ----------------------------------------------------------------------------------


def test_the_claim_template_counts_limits_else_requests_with_the_device_class() -> None:
    worker = vllm_worker(
        resources={"requests": {"gpu": "4", "gpuType": "gpu.intel.com/i915", "cpu": "8"}},
        gpuMemoryService={"enabled": True, "deviceClassName": "gpu.intel.com"},
    )
    objects = render(dgd(worker))
    template = one(objects, "ResourceClaimTemplate", "fo-worker-gpu")
    assert template["metadata"]["namespace"] == "ml"
    (request,) = template["spec"]["spec"]["devices"]["requests"]
    assert request == {
        "name": "gpus",
        "exactly": {"deviceClassName": "gpu.intel.com", "allocationMode": "ExactCount", "count": 4},
    }
    main = container(worker_pod(objects), "main")
    # The GPU resource (here gpuType's) leaves main: the claim replaces it.
    assert main["resources"]["requests"] == {"cpu": "8"}
    tolerations = worker_pod(objects)["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    all_valid(objects)


def test_grove_renders_the_same_claim_template_and_pod() -> None:
    objects = render(dgd(vllm_worker(failover={"enabled": True})), multinode="grove")
    one(objects, "ResourceClaimTemplate", "fo-worker-gpu")
    pcs = one(objects, "PodCliqueSet")
    (clique,) = [c for c in pcs["spec"]["template"]["cliques"] if c["name"] == "worker"]
    names = [c["name"] for c in clique["spec"]["podSpec"]["containers"]]
    assert names == ["engine-0", "engine-1"]
    all_valid(objects)


def test_multinode_failover_gives_each_pod_two_engines_with_their_own_rendezvous() -> None:
    worker = vllm_worker(failover={"enabled": True}, multinode={"nodeCount": 2})
    worker["extraPodSpec"]["mainContainer"]["args"] += ["--tensor-parallel-size", "4"]
    objects = render(dgd(worker))
    lws = one(objects, "LeaderWorkerSet", "fo-worker")["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        spec = lws[role]["spec"]
        e0, e1 = container(spec, "engine-0"), container(spec, "engine-1")
        assert env_of(e0)["NNODES"] == env_of(e1)["NNODES"] == "2"
        port = e0["args"].index("--master-port") + 1
        assert (e0["args"][port], e1["args"][port]) == ("29500", "29600")
    all_valid(objects)


# --- the drivetrain profile's failover: the contract with drivetrain's runtime ---------------

DRIVETRAIN_FAILOVER = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: fo}
spec:
  services:
    Frontend: {componentType: frontend}
    worker:
      componentType: worker
      failover: {enabled: true}
      extraPodSpec:
        mainContainer:
          args: [worker, --engine, mocker, --model-name, tiny]
"""


def test_drivetrain_failover_runs_two_workers_sharing_a_lock() -> None:
    objects = render(DRIVETRAIN_FAILOVER)
    spec = worker_pod(objects)
    assert [c["name"] for c in spec["containers"]] == ["engine-0", "engine-1"]
    assert {"name": "failover", "emptyDir": {}} in spec["volumes"]
    assert "resourceClaims" not in spec and "initContainers" not in spec  # no GMS, no DRA
    for i, engine in enumerate(spec["containers"]):
        argv = [*engine["command"], *engine["args"]]
        assert argv == [
            "drivetrain",
            "worker",
            "--engine",
            "mocker",
            "--model-name",
            "tiny",
            "--failover-lock",
            "/failover/lock",
        ]
        assert {"name": "failover", "mountPath": "/failover"} in engine["volumeMounts"]
        assert env_of(engine)["ENGINE_ID"] == str(i)
        assert env_of(engine)["DRIVETRAIN_CONTAINER"] == f"engine-{i}"
        assert env_of(engine)["DRIVETRAIN_RPC_PORT"] == str(9090 + i)
        assert engine["ports"] == [
            {"name": f"rpc-{i}", "containerPort": 9090 + i, "protocol": "TCP"}
        ]
        assert engine["readinessProbe"]["tcpSocket"] == {"port": f"rpc-{i}"}
    all_valid(objects)


def test_verify_lists_both_engines_with_their_own_argv() -> None:
    report = verify_manifests(render(DRIVETRAIN_FAILOVER))
    engines = [p for p in report.processes if p.workload == "Deployment/fo-worker"]
    assert [p.container for p in engines] == ["engine-0", "engine-1"]
    assert all(p.argv[-2:] == ["--failover-lock", "/failover/lock"] for p in engines)


# --- refusals -------------------------------------------------------------------------------


def load_errors(text: str) -> list[str]:
    with pytest.raises(InvalidGraph) as info:
        load_text(textwrap.dedent(text))
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    ("worker", "path", "message"),
    [
        (
            vllm_worker(gpuMemoryService={"enabled": True, "mode": "interPod"}),
            "spec.services.Worker.gpuMemoryService.mode",
            "interPod is not supported yet (only intraPod)",
        ),
        (
            vllm_worker(resources={"limits": {"cpu": "4"}}),
            "spec.services.Worker.resources.limits.gpu",
            "gpuMemoryService requires DRA, and DRA a GPU count",
        ),
        (
            vllm_worker(resources={"limits": {"gpu": "0"}}),
            "spec.services.Worker.resources.limits.gpu",
            "gpuMemoryService requires DRA",
        ),
        (
            vllm_worker(failover={"enabled": True, "mode": "interPod"}),
            "spec.services.Worker.failover.mode",
            "interPod is not supported yet",
        ),
        (
            vllm_worker(
                gpuMemoryService={"enabled": False},
                failover={"enabled": True},
            ),
            "spec.services.Worker.failover",
            "failover requires gpuMemoryService.enabled: true under the dynamo profile",
        ),
        (
            vllm_worker(failover={"enabled": True, "numShadows": 2}),
            "spec.services.Worker.failover.numShadows",
            "less than or equal to 1",
        ),
    ],
    ids=[
        "gms-inter-pod",
        "gms-no-gpu",
        "gms-zero-gpu",
        "failover-inter-pod",
        "failover-no-gms",
        "two-shadows",
    ],
)
def test_refusals_name_the_field(worker: dict[str, Any], path: str, message: str) -> None:
    found = load_errors(dgd(worker))
    assert any(f"{path}: " in e and message in e for e in found), found


def test_gms_is_for_workers_only() -> None:
    text = dgd(vllm_worker()).replace("componentType: worker", "componentType: planner")
    (error,) = load_errors(text)
    assert "spec.services.Worker.gpuMemoryService: the GPU memory service is for worker" in error


def test_failover_modes_must_agree() -> None:
    # interPod GMS is refused too; the mode rule is checked on its own.
    worker = vllm_worker(failover={"enabled": True, "mode": "intraPod"})
    worker["gpuMemoryService"]["mode"] = "interPod"
    found = load_errors(dgd(worker))
    assert any("failover.mode: must equal gpuMemoryService.mode (interPod)" in e for e in found)


def test_failover_needs_container_discovery_under_the_dynamo_profile() -> None:
    (error,) = load_errors(dgd(vllm_worker(failover={"enabled": True}), annotations={}))
    assert (
        "metadata.annotations[nvidia.com/dynamo-kube-discovery-mode]: failover requires "
        'per-container K8s discovery; set annotation "nvidia.com/dynamo-kube-discovery-mode" '
        'to "container" on the DynamoGraphDeployment'
    ) in error


@pytest.mark.parametrize(
    ("command", "engine"),
    [
        (["python3", "-m", "dynamo.sglang"], "sglang"),
        (["python3", "-m", "dynamo.trtllm"], "trtllm"),
    ],
)
def test_failover_of_sglang_and_trtllm_is_refused_until_supported(
    command: list[str], engine: str
) -> None:
    worker = vllm_worker(failover={"enabled": True})
    worker["extraPodSpec"]["mainContainer"]["command"] = command
    (error,) = errors(dgd(worker))
    assert "<input>: spec.services.Worker.failover: " in error
    assert f"failover is supported only for vLLM (engine: {engine}); SGLang and TRT-LLM" in error


def test_drivetrain_failover_needs_the_drivetrain_worker() -> None:
    text = DRIVETRAIN_FAILOVER.replace(
        "args: [worker, --engine, mocker, --model-name, tiny]",
        "command: [python3, -m, my.server]",
    )
    (error,) = errors(text)
    assert "<input>: spec.services.worker.extraPodSpec.mainContainer: " in error
    assert "runs `python3 -m my.server`" in error


def test_a_user_container_named_like_an_engine_is_refused() -> None:
    worker = vllm_worker(failover={"enabled": True})
    worker["extraPodSpec"]["containers"] = [{"name": "engine-1", "image": "x:1"}]
    (error,) = load_errors(dgd(worker))
    assert (
        "spec.services.Worker.extraPodSpec.containers[0].name: 'engine-1' is the name of a "
        "failover engine; rename this one"
    ) in error


@pytest.mark.parametrize("block", ["failover", "checkpoint"])
def test_failover_and_checkpoint_are_for_workers_only(block: str) -> None:
    worker = vllm_worker(
        failover={"enabled": True},
        checkpoint={"enabled": True, "identity": {"model": "m", "backendFramework": "vllm"}},
    )
    del worker["gpuMemoryService"]
    del worker["failover" if block == "checkpoint" else "checkpoint"]
    text = dgd(worker).replace("componentType: worker", "componentType: planner")
    found = load_errors(text)
    what = "failover" if block == "failover" else "checkpoint/restore"
    assert any(
        f"spec.services.Worker.{block}: {what} is for worker, prefill and decode services "
        "(this one is componentType planner)" in e
        for e in found
    ), found


def test_a_master_port_that_is_no_number_cannot_be_staggered() -> None:
    worker = vllm_worker(failover={"enabled": True})
    worker["extraPodSpec"]["mainContainer"]["args"] += ["--master-port", "$(PORT)"]
    (error,) = errors(dgd(worker))
    assert "spec.services.Worker.extraPodSpec.mainContainer.args: cannot give the shadow" in error
    assert "its own --master-port: the value '$(PORT)' is not a number" in error


def test_a_master_port_in_a_script_is_staggered_in_the_script() -> None:
    worker = vllm_worker(failover={"enabled": True})
    worker["extraPodSpec"]["mainContainer"].update(
        command=["/bin/sh", "-c"],
        args=["exec python3 -m dynamo.vllm --model Qwen/Qwen3-0.6B --master-port=29700"],
    )
    spec = worker_pod(render(dgd(worker)))
    assert container(spec, "engine-0")["args"][0].endswith("--master-port=29700")
    assert container(spec, "engine-1")["args"][0].endswith("--master-port=29800")
