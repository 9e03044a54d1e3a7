"""ClusterEmulator: authentication, RBAC, the audit log and the EndpointSlice controller.

Driven with lightkube over HTTP, as any client sees it.  The expected messages are the API
server's own wording (``k8s.io/apiserver`` ``forbiddenMessage``), because clients surface them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lightkube import ApiError, Client, KubeConfig, codecs
from lightkube.resources.core_v1 import ConfigMap, Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType

from tests.kube.emulator import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    ClusterEmulator,
    RunningCluster,
)
from tests.waiting import eventually

NS = "team"


class Api:
    """The running emulator and a way to be any of its users."""

    def __init__(self, running: RunningCluster, tmp: Path) -> None:
        self.running = running
        emulator = running.emulator
        assert isinstance(emulator, ClusterEmulator)
        self.emulator = emulator
        self.tmp = tmp
        self.admin = self._client(running.kubeconfig(), "admin")

    def _client(self, config: dict[str, Any], name: str) -> Client:
        path = self.tmp / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return Client(KubeConfig.from_file(path), namespace=NS, field_manager="t")

    def create(self, *objs: dict[str, Any]) -> None:
        for obj in objs:
            self.admin.create(codecs.from_dict(obj))  # namespaced kinds land in NS

    def as_token(self, token: str) -> Client:
        return self._client(self.running.kubeconfig(token, NS), token[:20])

    def as_service_account(self, name: str, pod: str | None = None) -> Client:
        return self.as_token(self.emulator.service_account_token(NS, name, pod))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with RunningCluster(ClusterEmulator(history_limit=2)) as running:
        yield Api(running, tmp_path)


def sa(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}


def role(name: str, *rules: dict[str, Any], cluster: bool = False) -> dict[str, Any]:
    kind = "ClusterRole" if cluster else "Role"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "rules": list(rules),
    }


def binding(
    name: str, role_name: str, subject: dict[str, Any], cluster: bool = False
) -> dict[str, Any]:
    kind = "ClusterRoleBinding" if cluster else "RoleBinding"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "subjects": [subject],
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole" if cluster else "Role",
            "name": role_name,
        },
    }


def forbidden(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str]:
    status = exc.value.status
    return int(status.code or 0), str(status.reason), str(status.message)


def test_a_service_account_may_do_what_its_role_grants_and_nothing_else(api: Api) -> None:
    api.create(
        sa("reader"),
        role("read-cm", {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}),
        binding("reader-read-cm", "read-cm", {"kind": "ServiceAccount", "name": "reader"}),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}},
    )
    reader = api.as_service_account("reader", pod="p-1")
    assert [cm.metadata.name for cm in reader.list(ConfigMap) if cm.metadata] == ["c"]
    with pytest.raises(ApiError) as exc:
        reader.get(ConfigMap, "c")
    assert forbidden(exc) == (
        403,
        "Forbidden",
        'configmaps "c" is forbidden: User "system:serviceaccount:team:reader" cannot get '
        'resource "configmaps" in API group "" in the namespace "team"',
    )
    with pytest.raises(ApiError) as exc:
        reader.list(ConfigMap, namespace="other").__iter__().__next__()
    assert forbidden(exc)[0] == 403  # a RoleBinding grants in its own namespace only
    denied = [e for e in api.emulator.audit if e.code == 403]
    assert [(e.user, e.pod, e.verb, e.resource, e.namespace) for e in denied] == [
        ("system:serviceaccount:team:reader", "p-1", "get", "configmaps", "team"),
        ("system:serviceaccount:team:reader", "p-1", "list", "configmaps", "other"),
    ]


def test_cluster_roles_groups_subresources_and_resource_names(api: Api) -> None:
    api.create(
        sa("ops"),
        role(
            "pods-status",
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
            {
                "apiGroups": ["*"],
                "resources": ["services"],
                "verbs": ["get"],
                "resourceNames": ["s1"],
            },
            cluster=True,
        ),
        binding(
            "all-sas",
            "pods-status",
            {"kind": "Group", "name": "system:serviceaccounts:team"},
            cluster=True,
        ),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1"}, "spec": {}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s2"}, "spec": {}},
    )
    ops = api.as_service_account("ops")
    ops.patch(Pod.Status, "p", {"status": {"phase": "Running"}}, patch_type=PatchType.MERGE)
    with pytest.raises(ApiError) as exc:
        ops.patch(Pod, "p", {"metadata": {"labels": {"a": "b"}}}, patch_type=PatchType.MERGE)
    assert 'cannot patch resource "pods" in API group ""' in forbidden(exc)[2]
    assert ops.get(Service, "s1").metadata is not None
    with pytest.raises(ApiError) as exc:
        ops.get(Service, "s2")
    assert forbidden(exc)[0] == 403


def test_server_side_apply_that_creates_needs_create_too(api: Api) -> None:
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}
    api.create(
        sa("w"),
        role("patch-cm", rule),
        binding("b", "patch-cm", {"kind": "ServiceAccount", "name": "w"}),
    )
    writer = api.as_service_account("w")
    cm = ConfigMap.from_dict({"metadata": {"name": "new", "namespace": NS}, "data": {"a": "1"}})
    with pytest.raises(ApiError) as exc:
        writer.apply(cm, force=True)
    assert 'cannot create resource "configmaps"' in forbidden(exc)[2]
    api.admin.apply(cm, force=True)  # once it exists, apply is a patch
    writer.apply(
        ConfigMap.from_dict({"metadata": {"name": "new", "namespace": NS}, "data": {"a": "2"}}),
        force=True,
    )
    assert api.admin.get(ConfigMap, "new").data == {"a": "2"}


def test_unknown_tokens_and_tokens_of_deleted_accounts_are_unauthorized(api: Api) -> None:
    api.create(sa("gone"))
    token = api.emulator.service_account_token(NS, "gone")
    with pytest.raises(ApiError) as exc:
        api.as_token("not-a-token").list(ConfigMap).__iter__().__next__()
    assert forbidden(exc)[:2] == (401, "Unauthorized")
    api.admin.delete(codecs.resource_registry.load("v1", "ServiceAccount"), "gone")
    with pytest.raises(ApiError) as exc:
        api.as_token(token).list(ConfigMap).__iter__().__next__()
    assert forbidden(exc)[:2] == (401, "Unauthorized")
    with pytest.raises(LookupError):
        api.emulator.service_account_token(NS, "gone")


def test_a_granted_token_holds_its_rules_in_its_namespace_and_the_log_says_what_it_used(
    api: Api,
) -> None:
    api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}},
    )
    rules = [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
    ]
    api.emulator.grant("agent", NS, rules)
    agent = api.as_token("agent")
    assert [cm.metadata.name for cm in agent.list(ConfigMap) if cm.metadata] == ["c"]
    agent.patch(Pod.Status, "p", {"status": {"phase": "Running"}}, patch_type=PatchType.MERGE)
    with pytest.raises(ApiError) as exc:
        agent.get(ConfigMap, "c")
    assert forbidden(exc) == (
        403,
        "Forbidden",
        'configmaps "c" is forbidden: User "agent" cannot get resource "configmaps" in API '
        'group "" in the namespace "team"',
    )
    with pytest.raises(ApiError) as exc:
        agent.list(ConfigMap, namespace="other").__iter__().__next__()
    assert forbidden(exc)[0] == 403  # granted in its namespace only
    assert api.emulator.used["agent"] == {
        ("", "configmaps", "list"),
        ("", "pods/status", "patch"),
    }
    denied = api.emulator.denied
    assert [(e.user, e.verb, e.namespace) for e in denied] == [
        ("agent", "get", "team"),
        ("agent", "list", "other"),
    ]


def test_without_enforcement_an_account_may_do_anything(tmp_path: Path) -> None:
    with RunningCluster(ClusterEmulator(enforce_rbac=False)) as running:
        api = Api(running, tmp_path)
        api.create(sa("any"))
        assert list(api.as_service_account("any").list(ConfigMap)) == []


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [{"name": "main", "ports": [{"name": "system", "containerPort": 9090}]}]
        },
    }


def set_ready(api: Api, name: str, ready: bool, ip: str = "10.0.0.7") -> None:
    status = {
        "podIP": ip,
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": str(ready)}],
    }
    api.admin.patch(Pod.Status, name, {"status": status}, patch_type=PatchType.MERGE)


def slices(api: Api) -> list[dict[str, Any]]:
    return [s.to_dict() for s in api.admin.list(EndpointSlice)]


def test_endpoint_slices_follow_services_and_pod_readiness(api: Api) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "w", "labels": {"team/discovery": "on"}},
            "spec": {
                "selector": {"app": "w"},
                "ports": [{"name": "system", "port": 9090, "targetPort": "system"}],
            },
        },
        pod("w-1", {"app": "w"}),
        pod("other", {"app": "x"}),
    )
    (slice_,) = slices(api)
    assert slice_["metadata"]["labels"] == {
        "team/discovery": "on",
        SERVICE_NAME_LABEL: "w",
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    assert slice_["endpoints"] in (None, [])  # no IP yet: not an endpoint
    set_ready(api, "w-1", False)
    (slice_,) = slices(api)
    (endpoint,) = slice_["endpoints"]
    assert endpoint["addresses"] == ["10.0.0.7"]
    assert endpoint["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert endpoint["targetRef"]["name"] == "w-1"
    assert slice_["ports"] == [{"name": "system", "port": 9090, "protocol": "TCP"}]

    seen: list[str] = []

    def watch() -> None:
        for kind, obj in api.admin.watch(EndpointSlice, labels={"team/discovery": "on"}):
            if obj.endpoints and obj.endpoints[0].conditions and obj.endpoints[0].conditions.ready:
                seen.append(kind)
                return

    threading.Thread(target=watch, daemon=True).start()
    set_ready(api, "w-1", True)
    eventually(lambda: seen == ["MODIFIED"])
    api.admin.delete(Pod, "w-1")
    (slice_,) = slices(api)
    assert slice_["endpoints"] in (None, [])
    api.admin.delete(Service, "w")
    assert slices(api) == []


def test_publish_not_ready_addresses_marks_every_endpoint_ready(api: Api) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "h"},
            "spec": {
                "selector": {"app": "h"},
                "publishNotReadyAddresses": True,
                "ports": [{"port": 80}],
            },
        },
        pod("h-0", {"app": "h"}),
    )
    set_ready(api, "h-0", False)
    (slice_,) = slices(api)
    assert slice_["endpoints"][0]["conditions"]["ready"] is True
    assert slice_["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]


def test_discovery_is_open_to_authenticated_users_only_and_audited(api: Api) -> None:
    api.create(sa("d"))
    token = api.emulator.service_account_token(NS, "d", pod="p")
    ok = httpx.get(f"{api.running.url}/apis", headers={"Authorization": f"Bearer {token}"})
    anonymous = httpx.get(f"{api.running.url}/apis")
    assert (ok.status_code, anonymous.status_code) == (200, 401)
    assert anonymous.json()["reason"] == "Unauthorized"
    audited = [(e.user, e.pod, e.path, e.code) for e in api.emulator.audit if e.path == "/apis"]
    assert audited == [
        ("system:serviceaccount:team:d", "p", "/apis", 200),
        ("", None, "/apis", 401),
    ]
