"""A drivetrain-profile worker running an engine's own OpenAI server: the engine is ``main`` on
a fixed local port, and ``drivetrain worker --engine http`` runs beside it as a native sidecar."""

from __future__ import annotations

from typing import Any

import pytest

from drivetrain.api import InvalidGraph
from drivetrain.local.plan import local_containers
from drivetrain.verify import verify_manifests
from tests.render.conftest import by_kind, main_container, one
from tests.schemas import schema_errors


def graph(main: str, extra: str = "", worker: str = "") -> str:
    return f"""
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {{name: real}}
spec:
  services:
    Frontend: {{componentType: frontend}}
    decode:
      componentType: worker
{worker}      extraPodSpec:
{extra}        mainContainer:
          image: engine:1
{main}
"""


def pod_spec(objects: list[dict[str, Any]], name: str = "real-decode") -> dict[str, Any]:
    return one(objects, "Deployment", name)["spec"]["template"]["spec"]


def sidecar(spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = spec["initContainers"]
    return container


ENGINES = {
    "vllm serve": ("          command: [vllm, serve, Qwen/Qwen3-0.6B]", ["--port", "8000"]),
    "vllm api_server": (
        "          command: [python3, -m, vllm.entrypoints.openai.api_server, --model, m]",
        ["--port", "8000"],
    ),
    # SGLang and trtllm-serve bind loopback unless told; the kubelet probes the pod IP.
    "sglang": (
        "          command: [python3, -m, sglang.launch_server, --model-path, m]",
        ["--port", "8000", "--host", "0.0.0.0"],
    ),
    "trtllm-serve": (
        "          command: [trtllm-serve, m]",
        ["--port", "8000", "--host", "0.0.0.0"],
    ),
}


@pytest.mark.parametrize("engine", ENGINES)
def test_the_engine_is_main_and_the_worker_its_native_sidecar(render, engine: str) -> None:
    command, flags = ENGINES[engine]
    objects = render(graph(command))
    spec = pod_spec(objects)
    main = main_container(spec)
    assert main["image"] == "engine:1"
    assert [*main["command"], *main.get("args", [])][-len(flags) :] == flags
    assert main["ports"] == [{"name": "engine", "containerPort": 8000, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"] == {"path": "/health", "port": "engine"}
    assert "env" not in main  # drivetrain's env is the sidecar's; the user gave none
    worker = sidecar(spec)
    assert worker["restartPolicy"] == "Always"  # a native sidecar (Kubernetes 1.29+)
    assert worker["image"].startswith("drivetrain:")
    assert worker["command"] + worker["args"] == [
        "drivetrain", "worker", "--engine", "http", "--upstream", "http://127.0.0.1:8000",
    ]  # fmt: skip
    env = {e["name"]: e for e in worker["env"]}
    assert env["DRIVETRAIN_DISCOVERY"]["value"] == "kubernetes://"
    assert env["DRIVETRAIN_NAMESPACE"]["value"] == "ml-real"
    assert env["POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert worker["readinessProbe"]["tcpSocket"] == {"port": "rpc"}
    assert spec["serviceAccountName"] == "real-discovery"
    for obj in objects:
        assert schema_errors(obj) == [], obj["kind"]


def test_verify_shows_both_and_up_runs_the_sidecar_rule(render) -> None:
    objects = render(graph(ENGINES["vllm serve"][0]))
    report = verify_manifests(objects)
    assert report.ok and not report.contract_warnings
    seen = {(p.container, p.sidecar, p.argv[0]) for p in report.processes if "decode" in p.workload}
    assert seen == {("drivetrain-worker", True, "drivetrain"), ("main", False, "vllm")}
    assert [c["name"] for c in local_containers(pod_spec(objects))] == ["drivetrain-worker", "main"]


def test_the_users_port_is_the_one_the_worker_connects_to(render) -> None:
    objects = render(graph("          command: [vllm, serve, m, --port=8123]"))
    spec = pod_spec(objects)
    assert main_container(spec)["command"] == ["vllm", "serve", "m", "--port=8123"]
    assert "args" not in main_container(spec)  # nothing added
    assert sidecar(spec)["args"][-1] == "http://127.0.0.1:8123"
    assert main_container(spec)["ports"][0]["containerPort"] == 8123


def test_a_port_that_is_not_a_number_is_refused(render) -> None:
    with pytest.raises(InvalidGraph) as info:
        render(graph("          command: [vllm, serve, m, --port, $(PORT)]"))
    (error,) = info.value.errors
    assert error.path == "spec.services.decode.extraPodSpec.mainContainer"
    assert "--port must be a number" in error.message


def test_a_declared_server_is_paired_without_touching_its_command(render) -> None:
    text = graph(
        "          command: [/start-server.sh]",
        worker="      engineServer: {port: 9000, healthPath: /ready}\n",
    )
    spec = pod_spec(render(text))
    main = main_container(spec)
    assert main["command"] == ["/start-server.sh"] and "args" not in main
    assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "engine"}
    assert sidecar(spec)["args"][-1] == "http://127.0.0.1:9000"
    conflicting = graph(
        "          command: [vllm, serve, m, --port, '8001']",
        worker="      engineServer: {port: 9000}\n",
    )
    with pytest.raises(InvalidGraph, match="say one port"):
        render(conflicting)


def test_engine_server_is_a_drivetrain_worker_field(render) -> None:
    frontend = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: x}
spec:
  services:
    Frontend: {componentType: frontend, engineServer: {port: 8000}}
"""
    with pytest.raises(InvalidGraph, match="only for worker, prefill and decode"):
        render(frontend)
    dgd = frontend.replace("drivetrain.dev/v1alpha1", "nvidia.com/v1alpha1").replace(
        "kind: GraphDeployment", "kind: DynamoGraphDeployment"
    )
    with pytest.raises(InvalidGraph, match="only under the drivetrain profile"):
        render(dgd)


def test_a_launcher_with_a_runtime_of_its_own_is_not_paired(render) -> None:
    spec = pod_spec(render(graph("          command: [python3, -m, dynamo.vllm, --model, m]")))
    assert "initContainers" not in spec


def test_only_the_leader_of_a_multinode_group_gets_the_sidecar(render) -> None:
    text = graph(
        "          command: [python3, -m, sglang.launch_server, --model-path, m]",
        worker="      multinode: {nodeCount: 2}\n",
    )
    for deployer in ("lws", "grove"):
        objects = render(text, multinode=deployer)
        if deployer == "lws":
            lwt = one(objects, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]
            leader, worker = lwt["leaderTemplate"]["spec"], lwt["workerTemplate"]["spec"]
        else:
            cliques = {
                c["name"]: c["spec"]["podSpec"]
                for c in one(objects, "PodCliqueSet")["spec"]["template"]["cliques"]
            }
            leader, worker = cliques["decode-ldr"], cliques["decode-wkr"]
        assert sidecar(leader)["name"] == "drivetrain-worker"
        assert "drivetrain-worker" not in [c["name"] for c in worker.get("initContainers", [])]
        leader_argv = " ".join(
            main_container(leader)["command"] + main_container(leader).get("args", [])
        )
        worker_argv = " ".join(
            main_container(worker)["command"] + main_container(worker).get("args", [])
        )
        assert "--port 8000" in leader_argv and "--port" not in worker_argv
        assert "--node-rank" in worker_argv
    assert by_kind(render(text), "ServiceAccount")


def test_up_refuses_a_paired_service_saying_why(tmp_path) -> None:
    from drivetrain.api import load_text
    from drivetrain.local.plan import UnrunnableGraph, plan_graph

    (g,) = load_text(graph(ENGINES["vllm serve"][0])).graphs
    with pytest.raises(UnrunnableGraph) as info:
        plan_graph(g, port=8000, discovery="memory://x", cwd=tmp_path)
    (problem,) = info.value.problems
    assert problem.startswith("service decode: runs the engine server `vllm serve Qwen/Qwen3-0.6B`")
    assert "--engine http --upstream" in problem
