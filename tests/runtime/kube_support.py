"""kubernetes:// discovery against the emulator: a cluster with the WorkerEndpoint CRD, pods a
test makes Ready or not, and tokens restricted to the RBAC that docs/discovery.md documents.

The emulator (``ClusterEmulator``, ``tests/kube/emulator.py``) plays the API server; the tests
play the kubelet (pod readiness) and the workload controllers (creating and deleting pods).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from lightkube import ApiError, Client, KubeConfig, codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from tests.kube.emulator import ADMIN_TOKEN, ClusterEmulator, Rule, RunningCluster, in_loop
from tests.paths import REPO

CRD = REPO / "deploy" / "crd-workerendpoint.yaml"
DOC = REPO / "docs" / "discovery.md"
WORKER_ROLE = "drivetrain-discovery-worker"
FRONTEND_ROLE = "drivetrain-discovery-frontend"

WorkerEndpointResource = create_namespaced_resource(
    "drivetrain.dev", "v1alpha1", "WorkerEndpoint", "workerendpoints"
)


def documented_roles() -> dict[str, list[Rule]]:
    """The Roles written in docs/discovery.md (YAML blocks of ``kind: Role``), by name."""
    roles: dict[str, list[Rule]] = {}
    for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and doc.get("kind") == "Role":
            roles[doc["metadata"]["name"]] = doc["rules"]
    return roles


def granted(rules: list[Rule]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def controller_reference(controller: dict[str, Any]) -> dict[str, Any]:
    """The owner reference a controller (an object as the client returns it) sets on what it
    creates."""
    return {
        "apiVersion": controller["apiVersion"],
        "kind": controller["kind"],
        "name": controller["metadata"]["name"],
        "uid": controller["metadata"]["uid"],
        "controller": True,
    }


class KubeDiscovery:
    """A running emulator serving one namespace for discovery tests."""

    def __init__(self, tmp_path: Path, namespace: str = "disc", install_crd: bool = True) -> None:
        self.namespace = namespace
        self.tmp_path = tmp_path
        self.emulator = ClusterEmulator(history_limit=2)
        self.running = RunningCluster(self.emulator).start()
        self.client = Client(
            KubeConfig.from_dict(self.running.kubeconfig()),
            namespace=namespace,
            field_manager="test",
        )
        if install_crd:
            for doc in yaml.safe_load_all(CRD.read_text()):
                self.client.create(codecs.from_dict(doc))

    @property
    def url(self) -> str:
        return f"kubernetes://{self.namespace}"

    def kubeconfig(self, token: str = ADMIN_TOKEN, name: str = "admin") -> Path:
        config = self.running.kubeconfig()
        config["users"][0]["user"]["token"] = token
        path = self.tmp_path / f"kubeconfig-{name}"
        path.write_text(yaml.safe_dump(config))
        return path

    def restricted(self, token: str, *role_names: str) -> Path:
        """A kubeconfig whose token holds the documented rules of ``role_names``, nothing else."""
        roles = documented_roles()
        rules = [rule for name in role_names for rule in roles[name]]
        self.emulator.grant(token, self.namespace, rules)
        return self.kubeconfig(token, token)

    def stop(self) -> None:
        # A watch whose client has gone notices only on its next write; ending them first keeps
        # the server's shutdown from waiting for them.
        in_loop(self.running, self.emulator.end_watches)
        self.running.stop()

    # ---- pods (the test plays the kubelet and the controllers) ---------------------------

    def pod(self, name: str, ready: bool = True, controller: dict[str, Any] | None = None) -> str:
        """Create a pod (controlled by ``controller``, an object as the client returns it, as
        a ReplicaSet controls its pods); returns its uid."""
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if controller is not None:
            meta["ownerReferences"] = [controller_reference(controller)]
        created = self.client.create(
            Pod.from_dict(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": meta,
                    "spec": {"containers": [{"name": "main", "image": "drivetrain"}]},
                }
            )
        )
        self.set_ready(name, ready)
        assert created.metadata is not None and created.metadata.uid is not None
        return created.metadata.uid

    def set_ready(self, name: str, ready: bool) -> None:
        status = "True" if ready else "False"
        self.client.patch(
            Pod.Status,
            name,
            {"status": {"conditions": [{"type": "Ready", "status": status}]}},
            patch_type=PatchType.MERGE,
        )

    def delete_pod(self, name: str) -> None:
        self.client.delete(Pod, name)

    def deployment(self, name: str) -> dict[str, Any]:
        """Create a Deployment (no controller runs here: the test creates its pods)."""
        return self._workload(Deployment, name, name)

    def delete_deployment(self, name: str) -> None:
        self.client.delete(Deployment, name)

    def replica_set(self, name: str, deployment: dict[str, Any]) -> dict[str, Any]:
        """Create one revision of ``deployment`` (as its controller does on a rollout)."""
        return self._workload(ReplicaSet, name, deployment["metadata"]["name"], deployment)

    def _workload(
        self,
        resource: type[Deployment] | type[ReplicaSet],
        name: str,
        app: str,
        controller: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        labels = {"app": app}
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if controller is not None:
            meta["ownerReferences"] = [controller_reference(controller)]
        created = self.client.create(
            resource.from_dict(
                {
                    "apiVersion": "apps/v1",
                    "kind": resource.__name__,
                    "metadata": meta,
                    "spec": {
                        "selector": {"matchLabels": labels},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {"containers": [{"name": "main", "image": "drivetrain"}]},
                        },
                    },
                }
            )
        )
        return dict(created.to_dict())

    def delete_replica_set(self, name: str) -> None:
        """Delete a revision, as a Deployment does beyond its ``revisionHistoryLimit``."""
        self.client.delete(ReplicaSet, name)

    def pod_env(self, name: str, uid: str) -> dict[str, str]:
        return {"POD_NAME": name, "POD_UID": uid, "POD_NAMESPACE": self.namespace}

    # ---- what the workers wrote ---------------------------------------------------------

    def endpoints(self) -> dict[str, dict[str, Any]]:
        return {
            obj.metadata.name: obj.to_dict()
            for obj in self.client.list(WorkerEndpointResource)
            if obj.metadata is not None and obj.metadata.name is not None
        }

    def endpoint(self, name: str) -> dict[str, Any] | None:
        try:
            return self.client.get(WorkerEndpointResource, name).to_dict()
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
