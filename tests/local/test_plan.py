"""Planning: a graph becomes the processes `drivetrain up` runs, or a clear error first."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from drivetrain.api.loader import load_text
from drivetrain.cmdline import flag_values
from drivetrain.local.plan import UnrunnableGraph, plan_graph
from tests.paths import REPO

DISCOVERY = "file:///tmp/drivetrain-test-store"


def graph_of(text: str):  # type: ignore[no-untyped-def]
    (graph,) = load_text(text, "graph.yaml").graphs
    return graph


def plan(text: str, port: int = 8000):  # type: ignore[no-untyped-def]
    return plan_graph(graph_of(text), port=port, discovery=DISCOVERY, cwd=Path("/srv"))


AGG = (REPO / "examples" / "agg.yaml").read_text()

DGD_VLLM = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: vllm-agg}
spec:
  services:
    Frontend: {componentType: frontend}
    VllmDecodeWorker:
      componentType: worker
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6.0
          command: [python3, -m, dynamo.vllm]
          args: [--model, Qwen/Qwen3-0.6B]
"""


def test_agg_example_runs_one_frontend_and_two_worker_replicas() -> None:
    specs = plan(AGG)
    assert [s.name for s in specs] == ["Frontend/0", "MockerWorker/0", "MockerWorker/1"]


def test_drivetrain_commands_run_with_this_interpreter() -> None:
    frontend = plan(AGG)[0]
    assert frontend.argv[:3] == [sys.executable, "-m", "drivetrain.cli.main"]
    assert frontend.argv[3] == "frontend"


def test_frontend_gets_the_port_given_to_up() -> None:
    frontend = plan(AGG, port=18123)[0]
    assert flag_values(frontend.argv, "--port") == ["18123"]
    assert frontend.port == 18123


def test_each_frontend_replica_gets_its_own_port() -> None:
    text = AGG.replace(
        "componentType: frontend\n      replicas: 1", "componentType: frontend\n      replicas: 2"
    )
    ports = [s.port for s in plan(text, port=9000) if s.component_type == "frontend"]
    assert ports == [9000, 9001]


def test_every_process_gets_the_renderers_namespace_and_component() -> None:
    specs = plan(AGG)
    assert {s.env["DRIVETRAIN_NAMESPACE"] for s in specs} == {"default-agg"}
    assert [s.env["DRIVETRAIN_COMPONENT"] for s in specs] == [
        "Frontend",
        "MockerWorker",
        "MockerWorker",
    ]


def test_every_process_uses_the_discovery_given_to_up() -> None:
    text = AGG.replace("spec:\n", "spec:\n  discovery: etcd://etcd:2379\n", 1)
    assert {s.env["DRIVETRAIN_DISCOVERY"] for s in plan(text)} == {DISCOVERY}


def test_workers_listen_on_loopback_on_a_free_port() -> None:
    worker = plan(AGG)[1]
    assert worker.env["DRIVETRAIN_RPC_HOST"] == "127.0.0.1"
    assert worker.env["DRIVETRAIN_RPC_PORT"] == "0"
    assert worker.env["DRIVETRAIN_ADVERTISE_HOST"] == "127.0.0.1"


def test_downward_api_env_gets_local_values() -> None:
    worker = plan(AGG)[2]
    assert worker.env["POD_NAME"] == "agg-mockerworker-1"
    assert worker.env["POD_NAMESPACE"] == "default"
    assert worker.env["POD_IP"] == "127.0.0.1"


def test_processes_run_in_the_given_folder() -> None:
    assert {s.cwd for s in plan(AGG)} == {"/srv"}


def test_worker_models_come_from_their_model_name_flag() -> None:
    assert [s.models for s in plan(AGG)] == [(), ("tiny",), ("tiny",)]


def test_graph_and_service_envs_reach_the_process() -> None:
    text = AGG.replace(
        "    MockerWorker:\n      componentType: worker\n",
        "    MockerWorker:\n      componentType: worker\n"
        "      envs: [{name: GREETING, value: 'hi from $(POD_NAME)'}]\n",
    )
    assert plan(text)[1].env["GREETING"] == "hi from agg-mockerworker-0"


def test_a_service_from_another_image_is_refused_naming_service_and_image() -> None:
    with pytest.raises(UnrunnableGraph) as exc:
        plan(DGD_VLLM)
    message = str(exc.value)
    assert "service Frontend: command `python3 -m dynamo.frontend`" in message
    assert "service VllmDecodeWorker: command `python3 -m dynamo.vllm --model Qwen/Qwen3-0.6B`" in (
        message
    )
    assert "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6.0" in message


def test_a_planner_service_is_refused() -> None:
    text = AGG + "    Planner:\n      componentType: planner\n"
    with pytest.raises(UnrunnableGraph, match="service Planner: componentType 'planner'"):
        plan(text)


def test_a_multinode_service_is_refused() -> None:
    text = AGG.replace(
        "      replicas: 2\n", "      replicas: 2\n      multinode: {nodeCount: 2}\n"
    )
    with pytest.raises(UnrunnableGraph, match="service MockerWorker: multinode"):
        plan(text)


def test_a_graph_without_frontend_is_refused() -> None:
    text = AGG.replace("    Frontend:\n      componentType: frontend\n      replicas: 1\n", "")
    with pytest.raises(UnrunnableGraph, match="no frontend service"):
        plan(text)


def test_env_from_a_secret_is_refused() -> None:
    text = AGG.replace(
        "    MockerWorker:\n      componentType: worker\n",
        "    MockerWorker:\n      componentType: worker\n"
        "      envs: [{name: TOKEN, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n",
    )
    with pytest.raises(UnrunnableGraph) as exc:
        plan(text)
    assert str(exc.value) == (
        "service MockerWorker: spec.services.MockerWorker.envs[TOKEN].valueFrom.secretKeyRef "
        "(Secret s, key k) is read from the cluster; `drivetrain up` cannot read it: give TOKEN "
        "with --env-file FILE"
    )


def test_frontend_listens_on_loopback_unless_told_otherwise() -> None:
    assert flag_values(plan(AGG)[0].argv, "--host") == ["127.0.0.1"]
    graph = graph_of(AGG)
    wide = plan_graph(graph, port=8000, discovery=DISCOVERY, cwd=Path("/srv"), host="0.0.0.0")
    assert flag_values(wide[0].argv, "--host") == ["0.0.0.0"]
