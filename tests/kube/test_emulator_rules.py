"""The extended emulator's garbage collector and service proxy, as clients see them.

The collector must follow Kubernetes' rule, since the RLRun's ownership chain rests on it: an
object goes only when *all* its owners are gone, an owner being the object of the referenced
kind and name with the referenced uid.  The proxy goes to a Ready pod the Service selects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lightkube import codecs
from lightkube.resources.core_v1 import ConfigMap, Pod, Service

from tests.kube.conftest import NS, Cluster
from tests.kube.players import FrontendThread
from tests.ports import free_port


def configmap(name: str, *owners: dict[str, Any]) -> dict[str, Any]:
    refs = [
        {
            "apiVersion": "v1",
            "kind": o["kind"],
            "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"],
        }
        for o in owners
    ]
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if refs:
        meta["ownerReferences"] = refs
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def create(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    made = cluster.client.create(codecs.from_dict(obj)).to_dict()
    return {**made, "kind": obj["kind"]}


def names(cluster: Cluster) -> set[str]:
    return {c.metadata.name for c in cluster.client.list(ConfigMap)}


def test_an_object_goes_only_when_all_its_owners_are_gone(cluster: Cluster) -> None:
    a, b = create(cluster, configmap("a")), create(cluster, configmap("b"))
    create(cluster, configmap("both", a, b))
    create(cluster, configmap("only-a", a))
    cluster.client.delete(ConfigMap, "a")
    assert names(cluster) == {"b", "both"}, "one owner left keeps it"
    cluster.client.delete(ConfigMap, "b")
    assert names(cluster) == set()


def test_an_owner_is_its_kind_name_and_uid_not_a_uid_alone(cluster: Cluster) -> None:
    a = create(cluster, configmap("a"))
    wrong_name = {**a, "metadata": {**a["metadata"], "name": "not-a"}}
    create(cluster, configmap("dangling", wrong_name))
    assert "dangling" not in names(cluster), "no object of that name has that uid"
    create(cluster, configmap("owned", a))
    cluster.client.delete(ConfigMap, "a")
    create(cluster, configmap("a"))  # same name, another uid: another object
    assert "owned" not in names(cluster)


def test_a_chain_goes_link_by_link(cluster: Cluster) -> None:
    top = create(cluster, configmap("top"))
    middle = create(cluster, configmap("middle", top))
    create(cluster, configmap("leaf", middle))
    cluster.client.delete(ConfigMap, "top")
    assert names(cluster) == set()


@pytest.fixture
def served(cluster: Cluster) -> Iterator[tuple[Cluster, int]]:
    port = free_port()
    create(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "front", "namespace": NS},
            "spec": {
                "selector": {"app": "front"},
                "ports": [{"name": "http", "port": 8000, "targetPort": "http"}],
            },
        },
    )
    yield cluster, port


def pod(name: str, port: int, ready: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "front"}},
        "spec": {
            "containers": [
                {"name": "main", "image": "x", "ports": [{"name": "http", "containerPort": port}]}
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def proxy(cluster: Cluster, path: str) -> httpx.Response:
    url = f"{cluster.running.url}/api/v1/namespaces/{NS}/services/front:8000/proxy/{path}"
    return httpx.get(url, headers={"Authorization": "Bearer emulator"}, timeout=10)


def test_the_proxy_answers_503_until_a_ready_pod_listens(served: tuple[Cluster, int]) -> None:
    cluster, port = served
    reply = proxy(cluster, "v1/models")
    assert reply.status_code == 503
    assert reply.json()["message"] == 'no endpoints available for service "front"'
    create(cluster, pod("front-0", port, ready=False))
    assert proxy(cluster, "v1/models").status_code == 503, "a pod that is not Ready is no endpoint"
    cluster.client.patch(Pod.Status, "front-0", {"status": pod("front-0", port, True)["status"]})
    reply = proxy(cluster, "v1/models")
    assert reply.status_code == 503 and "error trying to reach service" in reply.json()["message"]
    frontend = FrontendThread(port).start()
    try:
        assert proxy(cluster, "v1/models").json() == {"object": "list", "data": []}
        assert proxy(cluster, "nothing-here").status_code == 404, "the backend's own answer"
    finally:
        frontend.stop()
    assert list(cluster.client.list(Service))
