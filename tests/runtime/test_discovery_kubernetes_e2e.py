"""Acceptance: ``drivetrain frontend`` and ``drivetrain worker`` as processes, discovering each
other through ``kubernetes://`` on the emulator, with tokens restricted to the documented RBAC.

The test plays the kubelet (pod readiness, SIGTERM for a deleted pod's container) and the
workload controller (creating and deleting pods); the emulator plays the API server and its
garbage collector.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from drivetrain.runtime.discovery.workerendpoint import durable_name
from tests.paths import shared
from tests.runtime.conftest import free_port
from tests.runtime.kube_support import (
    FRONTEND_ROLE,
    WORKER_ROLE,
    KubeDiscovery,
    documented_roles,
    granted,
)
from tests.runtime.serving_processes import CliProcess, wait_for_instances, wait_for_models

pytestmark = pytest.mark.slow


def instance_addresses(url: str) -> set[str]:
    with urllib.request.urlopen(url + "/health") as response:
        return {i["address"] for i in json.load(response)["instances"]}


ADMIN = "e2e-admin-token"


def post_json(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def wait_until(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it is truthy (a readiness wait; the timeout only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout}s: {check}")


async def test_workers_found_through_kubernetes_follow_pod_readiness_and_pod_deletion(
    kube_discovery: KubeDiscovery, tmp_path: Path
) -> None:
    kube = kube_discovery
    tiny = str(shared("models", "tiny"))
    frontend_config = kube.restricted("frontend-token", FRONTEND_ROLE)
    worker_config = kube.restricted("worker-token", WORKER_ROLE)
    port, admin_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    # The frontend runs in a pod of a Deployment, with the RL API open (as an RLRun's graph).
    workload = kube.deployment("frontend")
    frontend_uid = kube.pod("frontend", controller=workload)
    frontend = CliProcess(
        [
            *("frontend", "--port", str(port), "--host", "127.0.0.1", "--discovery", kube.url),
            *("--admin-port", str(admin_port)),
        ],
        "listening on",
        tmp_path / "frontend.log",
        env={
            "KUBECONFIG": str(frontend_config),
            "DRIVETRAIN_ADMIN_TOKEN": ADMIN,
            **kube.pod_env("frontend", frontend_uid),
        },
    )
    workers: dict[str, CliProcess] = {}
    for name in ("worker-a", "worker-b"):
        uid = kube.pod(name, ready=True)
        workers[name] = CliProcess(
            [
                "worker",
                *("--engine", "mocker", "--model-name", "tiny", "--model-path", tiny),
                *("--speedup-ratio", "1000000", "--namespace", "team", "--lease-ttl", "1"),
            ],
            "worker ready",
            tmp_path / f"{name}.log",
            # The discovery URL from the environment, as the drivetrain profile passes it.
            env={
                "KUBECONFIG": str(worker_config),
                "DRIVETRAIN_DISCOVERY": kube.url,
                **kube.pod_env(name, uid),
            },
        )
    started: list[CliProcess] = []
    try:
        for process in (frontend, *workers.values()):
            started.append(process.start())
        address = {
            name: re.search(r" at (\S+), namespace", p.line).group(1)  # type: ignore[union-attr]
            for name, p in workers.items()
        }

        # Both workers published a WorkerEndpoint owned by their pod, and serve.
        wait_for_models(url, 2)
        for name in workers:
            endpoint = kube.endpoint(name)
            assert endpoint is not None
            (owner,) = endpoint["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["name"]) == ("Pod", name)
            assert endpoint["metadata"]["labels"]["drivetrain.dev/namespace"] == "team"
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        reply = await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert reply.usage is not None and reply.usage.completion_tokens == 4

        # A weight update commits: the version is a WorkerEndpoint of its own, owned by the
        # frontend's workload, not its pod (docs/discovery.md, durable objects).
        update = {"model": "tiny", "version": "v1", "source": {"path": "/"}}
        status, answer = post_json(f"http://127.0.0.1:{admin_port}/v1/rl/update_weights", update)
        assert status == 200 and answer["status"] == "committed", answer
        key = "drivetrain/v1/weights/team/tiny"
        committed = kube.endpoint(durable_name(key))
        assert committed is not None
        (owner,) = committed["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("Deployment", "frontend")
        assert json.loads(committed["spec"]["records"][0]["value"])["version"] == "v1"
        reply = await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert reply.model_extra is not None and reply.model_extra["weight_version"] == "v1"

        # NotReady takes a worker's instance away; Ready brings it back.
        kube.set_ready("worker-a", False)
        wait_until(lambda: instance_addresses(url) == {address["worker-b"]})
        kube.set_ready("worker-a", True)
        wait_until(lambda: instance_addresses(url) == set(address.values()))

        # A deleted pod: its instance leaves, and the garbage collector removes its
        # WorkerEndpoint; then its container is stopped, as the kubelet would.
        kube.delete_pod("worker-b")
        wait_until(lambda: instance_addresses(url) == {address["worker-a"]})
        assert kube.endpoint("worker-b") is None
        workers["worker-b"].stop()
        reply = await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert reply.choices[0].finish_reason == "length"

        # A clean stop deletes the WorkerEndpoint at once, while the pod is still Ready.
        assert workers["worker-a"].stop() == 0
        wait_for_instances(url, 0)
        assert kube.endpoint("worker-a") is None
    finally:
        for process in reversed(started):
            process.stop()

    # Each process stayed within its documented Role, and needed every rule of it.
    roles = documented_roles()
    assert kube.emulator.denied == []
    assert kube.emulator.used["worker-token"] == granted(roles[WORKER_ROLE])
    assert kube.emulator.used["frontend-token"] == granted(roles[FRONTEND_ROLE])


def test_a_worker_without_its_pod_identity_refuses_to_start(
    kube_discovery: KubeDiscovery, tmp_path: Path
) -> None:
    worker = CliProcess(
        ["worker", "--engine", "echo", "--model-name", "x", "--discovery", kube_discovery.url],
        "worker ready",
        tmp_path / "worker.log",
        env={"KUBECONFIG": str(kube_discovery.kubeconfig()), "POD_NAME": "", "POD_UID": ""},
    )
    with pytest.raises(RuntimeError, match="exited"):
        worker.start()
    assert "needs POD_NAME and POD_UID" in worker.log.read_text()
    assert worker.process is not None and worker.process.wait(5) != 0
