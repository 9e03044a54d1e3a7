"""Acceptance: the pods ``drivetrain render`` makes of a drivetrain-profile graph discover each
other through ``kubernetes://`` with exactly the rendered RBAC.

``drivetrain frontend`` and ``drivetrain worker`` run as processes with the env of their rendered
containers and a token holding only the rules of the rendered Role (what its RoleBinding gives
their shared ServiceAccount), against the emulator (``tests/runtime/kube_support.py``): the
frontend serves the worker's model, nothing is refused, and every rule of the Role is used.

It needs drivetrain's ``kubernetes://`` backend; in a tree without it the module is skipped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest

pytest.importorskip(
    "drivetrain.runtime.discovery.kubernetes", reason="drivetrain's kubernetes:// backend"
)

from drivetrain.api import load_text
from drivetrain.render import render_graph
from tests.paths import shared
from tests.runtime.conftest import free_port
from tests.runtime.kube_support import KubeDiscovery, granted
from tests.runtime.serving_processes import CliProcess, wait_for_models

pytestmark = pytest.mark.slow

GRAPH = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: chat}
spec:
  services:
    Frontend: {componentType: frontend}
    decode:
      componentType: worker
      extraPodSpec:
        mainContainer:
          command: [drivetrain, worker]
          args: [--engine, mocker, --model-name, tiny, --speedup-ratio, "1000000"]
"""
#: A pod's own address and fixed ports mean nothing on one machine: loopback, free ports.
LOCAL = {
    "DRIVETRAIN_RPC_HOST": "127.0.0.1",
    "DRIVETRAIN_RPC_PORT": "0",
    "DRIVETRAIN_ADVERTISE_HOST": "127.0.0.1",
}


def main_of(objects: list[dict[str, Any]], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rendered main container of a Deployment, and its pod spec."""
    spec = next(o for o in objects if o["metadata"]["name"] == name)["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "main"), spec


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's plain env values (the downward API is given per pod below)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


async def test_rendered_pods_serve_with_exactly_the_rendered_role(
    kube_discovery: KubeDiscovery, tmp_path: Path
) -> None:
    kube = kube_discovery
    (graph,) = load_text(GRAPH).graphs
    objects = render_graph(graph, namespace=kube.namespace)
    (role,) = [o for o in objects if o["kind"] == "Role"]
    (binding,) = [o for o in objects if o["kind"] == "RoleBinding"]
    (subject,) = binding["subjects"]
    frontend_main, frontend_spec = main_of(objects, "chat-frontend")
    worker_main, worker_spec = main_of(objects, "chat-decode")
    # Both pods run as the account the binding gives the Role to.
    assert frontend_spec["serviceAccountName"] == worker_spec["serviceAccountName"]
    assert subject["name"] == worker_spec["serviceAccountName"]
    assert literal_env(worker_main)["DRIVETRAIN_DISCOVERY"] == "kubernetes://"
    kube.emulator.grant("account", kube.namespace, role["rules"])
    kubeconfig = str(kube.kubeconfig("account", "account"))

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    frontend_uid = kube.pod("chat-frontend-0")
    frontend = CliProcess(
        [*frontend_main["args"], "--port", str(port), "--host", "127.0.0.1"],
        "listening on",
        tmp_path / "frontend.log",
        env={
            **literal_env(frontend_main),
            **kube.pod_env("chat-frontend-0", frontend_uid),
            "KUBECONFIG": kubeconfig,
        },
    )
    worker_uid = kube.pod("chat-decode-0")
    worker = CliProcess(
        [
            *worker_main["command"][1:],
            *worker_main["args"],
            "--model-path",
            str(shared("models", "tiny")),
        ],
        "worker ready",
        tmp_path / "worker.log",
        env={
            **literal_env(worker_main),
            **kube.pod_env("chat-decode-0", worker_uid),
            **LOCAL,
            "KUBECONFIG": kubeconfig,
        },
    )
    started: list[CliProcess] = []
    try:
        for process in (frontend, worker):
            started.append(process.start())
        wait_for_models(url, 1)
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        reply = await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        assert reply.usage is not None and reply.usage.completion_tokens == 3
        # The worker re-reads its WorkerEndpoint every lease TTL / 3 (10 s / 3 as rendered).
        refresh = ("drivetrain.dev", "workerendpoints", "get")
        deadline = time.monotonic() + 15
        while refresh not in kube.emulator.used.get("account", set()):
            assert time.monotonic() < deadline, "the worker never refreshed its WorkerEndpoint"
            time.sleep(0.1)
        assert worker.stop() == 0  # a clean stop deletes the WorkerEndpoint: delete is used
    finally:
        for process in reversed(started):
            process.stop()
    assert kube.emulator.denied == []
    assert kube.emulator.used["account"] == granted(role["rules"])
