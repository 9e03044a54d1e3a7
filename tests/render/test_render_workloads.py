"""What the renderer makes of a graph: names, kinds, pod assembly, and valid objects."""

from __future__ import annotations

import pytest

from drivetrain.api import InvalidGraph
from tests.render.conftest import by_kind, main_container, one
from tests.schemas import schema_errors

AGG = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: chat}
spec:
  envs:
    - {name: GRAPH_LEVEL, value: "g"}
  services:
    Frontend:
      componentType: frontend
      extraPodSpec:
        mainContainer: {image: example/drivetrain:1}
    Qwen.Worker:
      componentType: worker
      replicas: 3
      envFromSecret: hf-token
      envs:
        - {name: SERVICE_LEVEL, value: "$(DRIVETRAIN_NAMESPACE)/s"}
      resources:
        requests: {cpu: "4", memory: 16Gi}
        limits: {gpu: 1}
      volumeMounts:
        - {name: models, mountPoint: /models}
      extraPodSpec:
        imagePullSecrets: [{name: regcred}]
        containers:
          - {name: log-shipper, image: example/shipper:1}
        mainContainer:
          image: example/drivetrain:1
          command: [drivetrain, worker]
          args: [--engine, mocker, --model-name, qwen]
          env:
            - {name: MAIN_LEVEL, value: "m"}
"""

MULTINODE = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: sg}
spec:
  services:
    Frontend:
      componentType: frontend
      extraPodSpec:
        mainContainer: {image: example/sglang:1}
    decode:
      componentType: worker
      replicas: 2
      multinode: {nodeCount: 3}
      resources: {limits: {gpu: "8"}}
      extraPodSpec:
        mainContainer:
          image: example/sglang:1
          command: [python3, -m, dynamo.sglang]
          args: [--model-path, Qwen/Qwen3-0.6B, --tp, "24"]
"""


def test_single_node_services_become_deployments_named_graph_dash_service(render) -> None:
    objects = render(AGG)
    assert [o["metadata"]["name"] for o in by_kind(objects, "Deployment")] == [
        "chat-frontend",
        "chat-qwen-worker",
    ]
    assert one(objects, "Deployment", "chat-qwen-worker")["spec"]["replicas"] == 3
    assert all(o["metadata"]["namespace"] == "ml" for o in objects)


def test_the_frontend_gets_a_service_on_port_8000_named_http_and_8002_named_admin(render) -> None:
    service = one(render(AGG), "Service")
    assert service["metadata"]["name"] == "chat-frontend"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"},
        # The RL API (docs/rl.md); the frontend opens it only with an admin token.
        {"name": "admin", "port": 8002, "targetPort": "admin", "protocol": "TCP"},
    ]
    container = one(render(AGG), "Deployment", "chat-frontend")["spec"]["template"]["spec"][
        "containers"
    ][-1]
    assert {"name": "admin", "containerPort": 8002, "protocol": "TCP"} in container["ports"]
    deployment = one(render(AGG), "Deployment", "chat-frontend")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in service["spec"]["selector"].items())


def test_the_workload_container_is_main_after_the_users_containers(render) -> None:
    spec = one(render(AGG), "Deployment", "chat-qwen-worker")["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["log-shipper", "main"]


def test_injected_env_comes_first_and_the_users_env_keeps_its_order(render) -> None:
    spec = one(render(AGG), "Deployment", "chat-qwen-worker")["spec"]["template"]["spec"]
    names = [e["name"] for e in main_container(spec)["env"]]
    injected = names[: names.index("MAIN_LEVEL")]
    assert injected[:2] == ["DRIVETRAIN_NAMESPACE", "DRIVETRAIN_COMPONENT"]
    assert names[len(injected) :] == ["MAIN_LEVEL", "GRAPH_LEVEL", "SERVICE_LEVEL"]
    env = {e["name"]: e for e in main_container(spec)["env"]}
    assert env["DRIVETRAIN_NAMESPACE"]["value"] == "ml-chat"
    assert env["DRIVETRAIN_COMPONENT"]["value"] == "Qwen.Worker"


def test_gpu_becomes_nvidia_gpu_or_the_named_gpu_type(render) -> None:
    spec = one(render(AGG), "Deployment", "chat-qwen-worker")["spec"]["template"]["spec"]
    assert main_container(spec)["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"nvidia.com/gpu": "1"},
    }
    typed = AGG.replace("limits: {gpu: 1}", "limits: {gpu: 1, gpuType: amd.com/gpu}")
    spec = one(render(typed), "Deployment", "chat-qwen-worker")["spec"]["template"]["spec"]
    assert main_container(spec)["resources"]["limits"] == {"amd.com/gpu": "1"}


def test_pvc_mounts_shared_memory_secrets_and_pull_secrets(render) -> None:
    spec = one(render(AGG), "Deployment", "chat-qwen-worker")["spec"]["template"]["spec"]
    main = main_container(spec)
    assert {"name": "models", "mountPath": "/models"} in main["volumeMounts"]
    assert {"name": "shared-memory", "mountPath": "/dev/shm"} in main["volumeMounts"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["models"] == {"name": "models", "persistentVolumeClaim": {"claimName": "models"}}
    assert volumes["shared-memory"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert main["envFrom"] == [{"secretRef": {"name": "hf-token"}}]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]


def test_shared_memory_can_be_disabled_or_sized(render) -> None:
    disabled = AGG.replace(
        "      replicas: 3\n", "      replicas: 3\n      sharedMemory: {disabled: true}\n"
    )
    spec = one(render(disabled), "Deployment", "chat-qwen-worker")["spec"]["template"]["spec"]
    assert "shared-memory" not in {v["name"] for v in spec["volumes"]}
    sized = AGG.replace(
        "      replicas: 3\n", "      replicas: 3\n      sharedMemory: {size: 2Gi}\n"
    )
    spec = one(render(sized), "Deployment", "chat-qwen-worker")["spec"]["template"]["spec"]
    (shm,) = [v for v in spec["volumes"] if v["name"] == "shared-memory"]
    assert shm["emptyDir"]["sizeLimit"] == "2Gi"


def test_every_object_is_labelled_with_its_graph(render) -> None:
    for obj in render(AGG):
        assert obj["metadata"]["labels"]["drivetrain.dev/graph"] == "chat"


def test_the_dynamo_profile_injects_what_dynamo_images_expect(render) -> None:
    objects = render(MULTINODE, multinode="lws")
    frontend = one(objects, "Deployment", "sg-frontend")["spec"]["template"]["spec"]
    main = main_container(frontend)
    assert main["command"] == ["python3"] and main["args"] == ["-m", "dynamo.frontend"]
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["DYN_NAMESPACE"] == "ml-sg"
    assert env["DYN_HTTP_PORT"] == "8000"
    assert main["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    lws = one(objects, "LeaderWorkerSet", "sg-decode")
    leader = main_container(lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"])
    env = {e["name"]: e.get("value") for e in leader["env"]}
    assert env["DYN_SYSTEM_PORT"] == "9090"
    assert leader["startupProbe"]["httpGet"] == {"path": "/live", "port": "system"}


def test_multinode_services_become_leader_worker_sets(render) -> None:
    lws = one(render(MULTINODE, multinode="lws"), "LeaderWorkerSet", "sg-decode")
    assert lws["spec"]["replicas"] == 2
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 3


def test_lws_ranks_reach_exec_form_args_through_kubelet_references(render) -> None:
    lws = one(render(MULTINODE, multinode="lws"), "LeaderWorkerSet", "sg-decode")
    template = lws["spec"]["leaderWorkerTemplate"]
    worker = main_container(template["workerTemplate"]["spec"])
    assert worker["command"] == ["python3", "-m", "dynamo.sglang"]
    args = worker["args"]
    assert args[args.index("--dist-init-addr") + 1] == "$(LWS_LEADER_ADDRESS):29500"
    assert args[args.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"
    assert args[args.index("--nnodes") + 1] == "3"
    leader = main_container(template["leaderTemplate"]["spec"])
    assert leader["args"][leader["args"].index("--node-rank") + 1] == "0"


def test_grove_renders_the_whole_graph_as_one_pod_clique_set(render) -> None:
    objects = render(MULTINODE, multinode="grove")
    assert not by_kind(objects, "Deployment") and not by_kind(objects, "LeaderWorkerSet")
    pcs = one(objects, "PodCliqueSet", "sg")
    template = pcs["spec"]["template"]
    assert [c["name"] for c in template["cliques"]] == ["frontend", "decode-ldr", "decode-wkr"]
    replicas = {c["name"]: c["spec"]["replicas"] for c in template["cliques"]}
    assert replicas == {"frontend": 1, "decode-ldr": 1, "decode-wkr": 2}
    assert template["podCliqueScalingGroups"] == [
        {
            "name": "decode",
            "cliqueNames": ["decode-ldr", "decode-wkr"],
            "replicas": 2,
            "minAvailable": 1,
        }
    ]
    # Dynamo's Kubernetes discovery: a Service per component (the worker's selects leaders).
    services = {s["metadata"]["name"]: s["spec"]["selector"] for s in by_kind(objects, "Service")}
    assert set(services) == {"sg-frontend", "sg-decode"}
    assert services["sg-decode"]["drivetrain.dev/role"] == "leader"


def test_grove_worker_rank_needs_shell_arithmetic(render) -> None:
    pcs = one(render(MULTINODE, multinode="grove"), "PodCliqueSet")
    (wkr,) = [c for c in pcs["spec"]["template"]["cliques"] if c["name"] == "decode-wkr"]
    main = main_container(wkr["spec"]["podSpec"])
    assert main["command"] == ["sh", "-c"]
    (script,) = main["args"]
    assert script.startswith("exec python3 -m dynamo.sglang")
    assert "--node-rank $((GROVE_PCLQ_POD_INDEX + 1))" in script
    assert "$(GROVE" not in script


@pytest.mark.parametrize("multinode", ["lws", "grove"])
@pytest.mark.parametrize("graph", ["AGG", "MULTINODE"])
def test_rendered_objects_pass_the_schemas(render, graph: str, multinode: str) -> None:
    text = {"AGG": AGG, "MULTINODE": MULTINODE}[graph]
    for obj in render(text, multinode=multinode):
        assert schema_errors(obj) == [], f"{obj['kind']} {obj['metadata']['name']}"


def test_a_multinode_worker_whose_engine_cannot_be_determined_fails(render) -> None:
    text = MULTINODE.replace("command: [python3, -m, dynamo.sglang]", "command: [./serve.sh]")
    with pytest.raises(InvalidGraph) as info:
        render(text)
    (error,) = info.value.errors
    assert error.path == "spec.services.decode.multinode"
    assert "cannot determine the engine" in error.message


def test_an_explicit_backend_that_contradicts_the_command_fails(render) -> None:
    text = MULTINODE.replace("spec:\n  services:", "spec:\n  backendFramework: vllm\n  services:")
    with pytest.raises(InvalidGraph) as info:
        render(text)
    assert "backend framework mismatch" in str(info.value)


def test_drivetrain_services_default_to_the_drivetrain_image(render) -> None:
    text = AGG.replace("        mainContainer: {image: example/drivetrain:1}\n", "")
    spec = one(render(text), "Deployment", "chat-frontend")["spec"]["template"]["spec"]
    assert main_container(spec)["image"].startswith("drivetrain:")


def test_dynamo_services_must_name_their_image(render) -> None:
    text = MULTINODE.replace("        mainContainer: {image: example/sglang:1}\n", "")
    with pytest.raises(InvalidGraph) as info:
        render(text)
    (error,) = info.value.errors
    assert error.path == "spec.services.Frontend.extraPodSpec.mainContainer.image"
    assert "no default image" in error.message


def test_every_drivetrain_pod_shares_one_discovery_store(render) -> None:
    def discovery(objects) -> set[str]:
        return {
            e["value"]
            for d in by_kind(objects, "Deployment")
            for e in main_container(d["spec"]["template"]["spec"])["env"]
            if e["name"] == "DRIVETRAIN_DISCOVERY"
        }

    # The default is the API server itself: no etcd to install (docs/discovery.md).
    assert discovery(render(AGG)) == {"kubernetes://"}
    custom = AGG.replace("spec:\n  envs:", "spec:\n  discovery: etcd://etcd.infra:2379\n  envs:")
    assert discovery(render(custom)) == {"etcd://etcd.infra:2379"}


def test_a_frontend_sidecar_gets_the_frontend_role_env(render) -> None:
    text = MULTINODE.replace(
        "      replicas: 2\n",
        "      replicas: 2\n      frontendSidecar: {image: example/frontend:1, args: [--router-mode, kv]}\n",
    )
    lws = one(render(text, multinode="lws"), "LeaderWorkerSet")
    spec = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    (sidecar,) = [c for c in spec["containers"] if c["name"] == "sidecar-frontend"]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["DYN_COMPONENT"] == "frontend"
    assert env["DYN_HTTP_PORT"] == "8000"
    assert "DYN_SYSTEM_PORT" not in env
    assert sidecar["command"] == ["python3"] and sidecar["args"] == ["--router-mode", "kv"]
