"""The drivetrain profile's rendered RBAC, enforced: every call of ``kubernetes://`` discovery is
allowed, and anything else is refused (403), against the emulator's RBAC.

drivetrain's own ``kubernetes://`` backend lands on another branch; until it is here, this runs
the calls its documentation lists (docs/discovery.md: a worker server-side-applies, reads and
deletes its WorkerEndpoint; a frontend lists and watches WorkerEndpoints by label and Pods) with
the rendered ServiceAccount's token, exactly as that backend makes them.  When the backend is in
the tree, the same harness runs its real processes (as tests/dynamo_runtime/ does for Dynamo's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lightkube import Client, KubeConfig, codecs

from drivetrain import rbacrules
from drivetrain.api import load_text
from drivetrain.render import render_graph
from tests.kube.emulator import ClusterEmulator, RunningCluster

NS = "team"
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
        mainContainer: {command: [drivetrain, worker], args: [--engine, mocker, --model-name, q]}
"""
WE = f"/apis/drivetrain.dev/v1alpha1/namespaces/{NS}/workerendpoints"
PODS = f"/api/v1/namespaces/{NS}/pods"


@pytest.fixture
def cluster() -> Iterator[tuple[RunningCluster, Client]]:
    emulator = ClusterEmulator(history_limit=2, endpointslice_controller=False)
    # The WorkerEndpoint CRD (deploy/, with drivetrain's kubernetes:// backend), as served.
    emulator.declare(
        "drivetrain.dev/v1alpha1/workerendpoints", kind="WorkerEndpoint", namespaced=True
    )
    with RunningCluster(emulator) as running:
        client = Client(KubeConfig.from_dict(running.kubeconfig()), namespace=NS, field_manager="t")
        yield running, client


def _calls(http: httpx.Client, pod: dict[str, Any]) -> list[httpx.Response]:
    """What the backend does: the worker's apply, refresh, revoke; the frontend's watches."""
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    endpoint = {
        "apiVersion": "drivetrain.dev/v1alpha1",
        "kind": "WorkerEndpoint",
        "metadata": {
            "name": name,
            "labels": {"drivetrain.dev/namespace": "team-chat"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}],
        },
        "spec": {"writer": "w1", "records": [{"key": "k", "value": "{}"}]},
    }
    apply = {"Content-Type": "application/apply-patch+yaml"}
    query = "?fieldManager=drivetrain-worker&force=true"
    selector = "labelSelector=drivetrain.dev%2Fnamespace%3Dteam-chat"
    return [
        http.patch(f"{WE}/{name}{query}", content=json.dumps(endpoint), headers=apply),  # creates
        http.patch(f"{WE}/{name}{query}", content=json.dumps(endpoint), headers=apply),
        http.get(f"{WE}/{name}"),
        http.get(f"{WE}?{selector}&limit=500"),
        http.get(f"{WE}?{selector}&watch=true&timeoutSeconds=1"),
        http.get(f"{PODS}?limit=500"),
        http.get(f"{PODS}?watch=true&timeoutSeconds=1"),
        http.delete(f"{WE}/{name}"),
    ]


def test_the_rendered_role_allows_every_discovery_call_and_nothing_else(cluster) -> None:
    running, admin = cluster
    (graph,) = load_text(GRAPH).graphs
    objects = render_graph(graph, namespace=NS)
    for obj in objects:
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            admin.create(codecs.from_dict(obj))
    deployment = next(o for o in objects if o["metadata"]["name"] == "chat-decode")
    template = deployment["spec"]["template"]
    pod = admin.create(
        codecs.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "chat-decode-0", "labels": template["metadata"]["labels"]},
                "spec": template["spec"],
            }
        )
    ).to_dict()
    account = template["spec"]["serviceAccountName"]
    emulator = running.emulator
    assert isinstance(emulator, ClusterEmulator)
    token = emulator.service_account_token(NS, account, pod="chat-decode-0")
    with httpx.Client(
        base_url=running.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as http:
        responses = _calls(http, pod)
        assert [r.status_code for r in responses] == [201, 200, 200, 200, 200, 200, 200, 200]
        # Least privilege: what the processes do not call is refused.
        for method, path in (
            ("GET", f"/api/v1/namespaces/{NS}/secrets"),
            ("DELETE", f"{PODS}/chat-decode-0"),
            ("GET", f"{PODS}/chat-decode-0"),  # a worker knows its pod from the downward API
            ("GET", f"/api/v1/namespaces/{NS}/services"),
            ("GET", "/api/v1/namespaces/other/pods"),  # another namespace
        ):
            assert http.request(method, path).status_code == 403, (method, path)
    used = emulator.used[f"system:serviceaccount:{NS}:{account}"]
    table = {
        (n.group, n.resource, n.verb)
        for needs in rbacrules.DRIVETRAIN_DISCOVERY.values()
        for n in needs
    }
    assert used == table  # every rule the Role grants was used, and nothing else was allowed
