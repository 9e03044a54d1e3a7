"""``drivetrain up`` for failover services: both engines of a replica run, sharing one lock.

The renderer of failover pods is another branch's work; until it lands, these tests build the
pod the way the contract between the two says it will be (``failover_pod`` below): ``main``
cloned to ``engine-0`` and ``engine-1``, each running the same ``drivetrain worker`` argv plus
``--failover-lock`` on a shared emptyDir, with ``ENGINE_ID=<i>`` and its own request-plane port.
The plan and the supervisor then run on that pod exactly as they will on the rendered one.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from drivetrain.api.loader import load_graphs
from drivetrain.local.backoff import RestartPolicy
from drivetrain.local.logs import LogSink
from drivetrain.local.plan import (
    FAILOVER_DIR,
    LOCAL_WORKER_ENV,
    UnrunnableGraph,
    local_containers,
    plan_objects,
)
from drivetrain.local.status import status_table
from drivetrain.local.supervisor import Supervisor
from drivetrain.render import render_graph
from drivetrain.runtime.failover import FailoverLock
from tests.paths import REPO
from tests.runtime.conftest import free_port
from tests.waiting import eventually_async

GRAPH = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: fo}
spec:
  services:
    Frontend: {componentType: frontend, replicas: 1}
    Worker:
      componentType: worker
      replicas: REPLICAS
      extraPodSpec:
        mainContainer:
          args: [worker, --engine, ENGINE, --model-name, tiny]
"""


def graph_and_objects(
    tmp_path: Path, replicas: int = 2, engine: str = "echo"
) -> tuple[Any, list[dict[str, Any]]]:
    path = tmp_path / "graph.yaml"
    path.write_text(GRAPH.replace("REPLICAS", str(replicas)).replace("ENGINE", engine))
    graph = load_graphs(path)[0]
    return graph, render_graph(graph, namespace="default")


def failover_pod(template: dict[str, Any], lock_as: str = "flag") -> None:
    """Turn a rendered worker pod into the failover pod of the contract, in place.

    ``lock_as``: ``flag`` (``--failover-lock /failover/lock``) or ``env`` (Dynamo's
    ``FAILOVER_LOCK_PATH``, with ``--rpc-port`` flags for the ports instead of the env).
    """
    spec = template["spec"]
    main = next(c for c in spec["containers"] if c["name"] == "main")
    engines = []
    for i in range(2):
        engine = copy.deepcopy(main)
        engine["name"] = f"engine-{i}"
        engine["env"] = [e for e in engine["env"] if e["name"] != "DRIVETRAIN_RPC_PORT"]
        engine["env"].append({"name": "ENGINE_ID", "value": str(i)})
        if lock_as == "flag":
            engine["args"] = [*engine["args"], "--failover-lock", "/failover/lock"]
            engine["env"].append({"name": "DRIVETRAIN_RPC_PORT", "value": str(9090 + i)})
        else:
            engine["args"] = [*engine["args"], "--rpc-port", str(9090 + i)]
            engine["env"].append({"name": "FAILOVER_LOCK_PATH", "value": "/failover/lock"})
        engine["ports"] = [{"name": f"rpc-{i}", "containerPort": 9090 + i}]
        engine["volumeMounts"] = [
            *engine.get("volumeMounts", []),
            {"name": "failover", "mountPath": "/failover"},
        ]
        engines.append(engine)
    others = [c for c in spec["containers"] if c["name"] != "main"]
    # A user sidecar first, as Dynamo users write them: it must not be run, nor shift anything.
    sidecar = {"name": "log-shipper", "image": "fluent/fluent-bit", "args": ["--flush", "1"]}
    spec["containers"] = [sidecar, *engines, *others]
    spec["initContainers"] = [
        {"name": "gms-server", "image": "x", "restartPolicy": "Always", "command": ["gms"]}
    ]
    spec["volumes"] = [*spec.get("volumes", []), {"name": "failover", "emptyDir": {}}]


def worker_template(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        o["spec"]["template"]
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-worker")
    )


def test_local_containers_are_main_or_the_failover_engines(tmp_path: Path) -> None:
    _, objects = graph_and_objects(tmp_path)
    template = worker_template(objects)
    assert [c["name"] for c in local_containers(template["spec"])] == ["main"]
    failover_pod(template)
    assert [c["name"] for c in local_containers(template["spec"])] == ["engine-0", "engine-1"]


@pytest.mark.parametrize("lock_as", ["flag", "env"])
def test_both_engines_of_a_replica_share_one_local_lock(tmp_path: Path, lock_as: str) -> None:
    graph, objects = graph_and_objects(tmp_path, replicas=2)
    failover_pod(worker_template(objects), lock_as)
    state = tmp_path / "state"
    specs = plan_objects(
        graph, objects, port=18000, discovery="file:///d", cwd=tmp_path, state_dir=state
    )
    workers = [s for s in specs if s.component_type == "worker"]
    assert [s.name for s in workers] == [
        "Worker/0/engine-0",
        "Worker/0/engine-1",
        "Worker/1/engine-0",
        "Worker/1/engine-1",
    ]

    def lock_of(spec: Any) -> str:
        if lock_as == "flag":
            return spec.argv[spec.argv.index("--failover-lock") + 1]
        return spec.env["FAILOVER_LOCK_PATH"]

    locks = {s.name: lock_of(s) for s in workers}
    assert (
        locks["Worker/0/engine-0"]
        == locks["Worker/0/engine-1"]
        == str(state / FAILOVER_DIR / "fo-worker-0.lock")
    )
    assert (
        locks["Worker/1/engine-0"]
        == locks["Worker/1/engine-1"]
        == str(state / FAILOVER_DIR / "fo-worker-1.lock")
    )
    for spec in workers:
        assert spec.env["ENGINE_ID"] == spec.container.removeprefix("engine-")
        assert spec.models == ("tiny",)
        # The pod's fixed ports would collide on one machine: loopback, any free port.
        for name, value in LOCAL_WORKER_ENV.items():
            assert spec.env[name] == value
        if "--rpc-port" in spec.argv:
            assert spec.argv[spec.argv.index("--rpc-port") + 1] == "0"
        assert "/failover/lock" not in spec.argv
    assert [s.name for s in specs if s.component_type == "frontend"] == ["Frontend/0"]


def test_failover_engines_without_a_shared_lock_are_refused(tmp_path: Path) -> None:
    graph, objects = graph_and_objects(tmp_path)
    template = worker_template(objects)
    failover_pod(template)
    for container in template["spec"]["containers"]:
        if container["name"].startswith("engine-"):
            container["args"] = container["args"][: container["args"].index("--failover-lock")]
    with pytest.raises(UnrunnableGraph) as err:
        plan_objects(graph, objects, port=18000, discovery="file:///d", cwd=tmp_path)
    assert err.value.problems == [
        "service Worker: its failover engines (engine-0, engine-1) share no lock "
        "(--failover-lock or FAILOVER_LOCK_PATH), so every one of them would serve"
    ]


def chat(url: str, text: str) -> str:
    request = urllib.request.Request(
        url + "/v1/chat/completions",
        data=json.dumps(
            {"model": "tiny", "messages": [{"role": "user", "content": text}]}
        ).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return str(json.load(resp)["choices"][0]["message"]["content"])


@pytest.mark.slow
async def test_the_supervisor_runs_both_engines_and_the_shadow_takes_over(tmp_path: Path) -> None:
    graph, objects = graph_and_objects(tmp_path, replicas=1)
    failover_pod(worker_template(objects))
    state = tmp_path / "state"
    (state / FAILOVER_DIR).mkdir(parents=True)
    port = free_port()
    specs = plan_objects(
        graph,
        objects,
        port=port,
        discovery=f"file://{tmp_path / 'discovery'}",
        cwd=REPO,
        state_dir=state,
    )
    out = io.StringIO()
    policy = RestartPolicy(
        initial_delay=0.1, max_delay=0.5, fast_crash_window=1, max_fast_crashes=5
    )
    supervisor = Supervisor(specs, LogSink(out, colour=False), policy, grace=5)
    running = asyncio.create_task(supervisor.run())
    url = f"http://127.0.0.1:{port}"
    try:
        await eventually_async(lambda: "worker ready" in out.getvalue())
        await eventually_async(lambda: "worker standby" in out.getvalue())
        await eventually_async(lambda: "listening on" in out.getvalue())
        assert await asyncio.to_thread(chat, url, "before") == "before"

        lock = FailoverLock(str(state / FAILOVER_DIR / "fo-worker-0.lock"))
        holder = lock.holder()
        assert holder is not None
        engines = {r.pid: r for r in supervisor.replicas if r.spec.container != "main"}
        active = engines[int(str(holder["pid"]))]
        shadow = next(r for r in engines.values() if r is not active)
        os.kill(int(str(active.pid)), signal.SIGKILL)

        # The shadow serves; the killed engine is restarted by the supervisor as the new shadow.
        assert await asyncio.to_thread(chat, url, "after") == "after"
        await eventually_async(lambda: active.restarts == 1 and active.state == "running")
        await eventually_async(lambda: out.getvalue().count("worker standby") == 2)
        new_holder = lock.holder()
        assert new_holder is not None and new_holder["pid"] == shadow.pid
        assert f"{active.spec.name} exited with code -9" in out.getvalue()
        assert await asyncio.to_thread(chat, url, "again") == "again"
        table = io.StringIO()
        LogSink(table, colour=False).console.print(
            status_table(supervisor.replicas, [url], {"tiny"})
        )
        assert "0 engine-0" in table.getvalue() and "0 engine-1" in table.getvalue()
    finally:
        supervisor.stop()
        assert await asyncio.wait_for(running, 30) == 0
