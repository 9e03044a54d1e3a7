"""The node the Dynamo proof runs on, checked without Dynamo: a tiny HTTP program plays the
worker, so these run wherever the emulator does."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dynamo_runtime.children import Component, dynamo_children, service_account_name
from tests.dynamo_runtime.conftest import NS
from tests.dynamo_runtime.node import LocalNode, PodRejected, wait_until
from tests.kube.emulator import RunningCluster

# Writes its env to <POD_NAME>.env.json, then serves /health on DYN_SYSTEM_PORT: 503 until a
# file "<POD_NAME>.ready" exists, 200 after; exits when "<POD_NAME>.exit" appears.
PROGRAM = r"""
import http.server, json, os, pathlib, threading, time
name = os.environ["POD_NAME"]
pathlib.Path(name + ".env.json").write_text(json.dumps(dict(os.environ)))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if pathlib.Path(name + ".ready").exists() else 503)
        self.end_headers()
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["DYN_SYSTEM_PORT"])), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
while not pathlib.Path(name + ".exit").exists():
    time.sleep(0.05)
"""


@pytest.fixture
def plain_node(tmp_path: Path, apiserver: RunningCluster) -> Any:
    node = LocalNode(apiserver, NS, tmp_path, {"worker": [sys.executable, "-c", PROGRAM]})
    yield node
    node.stop()


def endpoint(node: LocalNode) -> dict[str, Any] | None:
    for (g, p, _, _), obj in list(node.emulator.store.items()):
        if (g, p) == ("discovery.k8s.io", "endpointslices") and obj.get("endpoints"):
            return dict(obj["endpoints"][0])
    return None


def test_a_pod_gets_the_kubelets_env_a_token_and_readiness_from_its_probe(
    plain_node: LocalNode, tmp_path: Path
) -> None:
    manifests = dynamo_children("g", NS, [Component("decode", "worker")])
    plain_node.apply(manifests)
    plain_node.run(manifests)
    (pod,) = plain_node.pods.values()
    env_file = tmp_path / f"{pod.name}.env.json"
    wait_until(env_file.exists, 20, "the program started", plain_node)
    env = json.loads(env_file.read_text())
    live = plain_node.emulator.store[("", "pods", NS, pod.name)]
    assert (env["POD_NAME"], env["POD_NAMESPACE"], env["POD_UID"]) == (
        pod.name,
        NS,
        live["metadata"]["uid"],
    )
    assert env["DYN_SYSTEM_PORT"] == str(pod.local_port("system")) != "9090"  # remapped
    assert env["DYN_DISCOVERY_BACKEND"] == "kubernetes"
    assert pod.service_account == service_account_name("g")
    assert "emulator" not in Path(env["KUBECONFIG"]).read_text()  # not the admin's token

    # Not Ready while the probe fails: the slice lists the pod, not ready.
    wait_until(lambda: endpoint(plain_node), 20, "an endpoint", plain_node)
    assert endpoint(plain_node)["conditions"]["ready"] is False  # type: ignore[index]
    (tmp_path / f"{pod.name}.ready").touch()
    wait_until(
        lambda: (endpoint(plain_node) or {}).get("conditions", {}).get("ready"),
        20,
        "the endpoint ready",
        plain_node,
    )
    assert endpoint(plain_node)["targetRef"]["name"] == pod.name  # type: ignore[index]

    # The process ends: the pod is Failed and leaves the endpoints' ready set.
    (tmp_path / f"{pod.name}.exit").touch()
    wait_until(
        lambda: (
            plain_node.emulator.store[("", "pods", NS, pod.name)]["status"]["phase"] == "Failed"
        ),
        20,
        "the pod Failed",
        plain_node,
    )
    assert endpoint(plain_node) is None


def test_a_pod_naming_a_missing_service_account_is_refused(plain_node: LocalNode) -> None:
    manifests = [
        obj
        for obj in dynamo_children("g", NS, [Component("decode", "worker")])
        if obj["kind"] != "ServiceAccount"
    ]
    plain_node.apply(manifests)
    with pytest.raises(
        PodRejected, match="error looking up service account ml/g-k8s-service-discovery"
    ):
        plain_node.run(manifests)
    assert not plain_node.pods
