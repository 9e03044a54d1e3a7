"""Controllers the RLRun tests play through the API: KubeRay's RayJob controller, the
Deployment/Job controllers and kubelet of a graph's pods, and a real frontend behind its
Service.

Each player acts only when a test asks (``step``), so a test can stop at any intermediate
state KubeRay goes through, such as ``status.rayClusterName`` published one reconcile before
the RayCluster object exists (ray-operator's ``rayjob_controller.go``: the name is written in
``Initializing``, the cluster created on the next reconcile).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from lightkube import codecs
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from drivetrain.kube.resources import CHILD_KINDS, RayClusterResource, RayJobResource
from drivetrain.render.naming import GRAPH_LABEL
from drivetrain.runtime.frontend.server import FrontendConfig, RunningFrontend
from drivetrain.runtime.serve import run_frontend
from tests.kube.conftest import NS, Cluster


class KubeRay:
    """KubeRay's RayJob controller, one reconcile of one RayJob per ``step``."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def job(self, name: str) -> dict[str, Any]:
        return self.cluster.client.get(RayJobResource, name).to_dict()

    def _status(self, name: str, **status: Any) -> None:
        self.cluster.client.patch(
            RayJobResource.Status, name, {"status": status}, patch_type=PatchType.MERGE
        )

    def step(self, name: str) -> str:
        """One reconcile; returns the jobDeploymentStatus it leaves."""
        job = self.job(name)
        spec, status = job["spec"], job.get("status") or {}
        deployment = status.get("jobDeploymentStatus", "")
        if spec.get("suspend"):
            if deployment != "Suspended":
                self._status(name, jobDeploymentStatus="Suspended", jobStatus="", rayClusterName="")
            return "Suspended"
        if deployment in ("", "Suspended", "New"):
            # The name first, the object on the next reconcile.
            cluster = f"{name}-{uuid.uuid4().hex[:5]}"
            self._status(
                name,
                jobDeploymentStatus="Initializing",
                rayClusterName=cluster,
                jobId=f"{name}-{uuid.uuid4().hex[:5]}",
            )
            return "Initializing"
        if deployment == "Initializing":
            cluster = status["rayClusterName"]
            if not self._cluster(cluster):
                self._create_cluster(job, cluster)
                return "Initializing"
            self.cluster.client.patch(
                RayClusterResource.Status,
                cluster,
                {"status": {"state": "ready"}},
                patch_type=PatchType.MERGE,
            )
            self._status(name, jobDeploymentStatus="Running", jobStatus="RUNNING")
            return "Running"
        return deployment

    def finish(self, name: str, job_status: str = "SUCCEEDED") -> None:
        deployment = "Complete" if job_status in ("SUCCEEDED", "FAILED", "STOPPED") else "Failed"
        self._status(name, jobDeploymentStatus=deployment, jobStatus=job_status)

    def _cluster(self, name: str) -> dict[str, Any] | None:
        try:
            return self.cluster.client.get(RayClusterResource, name).to_dict()
        except Exception:
            return None

    def _create_cluster(self, job: dict[str, Any], name: str) -> None:
        meta = job["metadata"]
        self.cluster.client.create(
            RayClusterResource(
                {
                    "apiVersion": "ray.io/v1",
                    "kind": "RayCluster",
                    "metadata": {
                        "name": name,
                        "namespace": NS,
                        # KubeRay copies the RayJob's labels onto its cluster
                        "labels": {
                            **(meta.get("labels") or {}),
                            "ray.io/originated-from-crd": "RayJob",
                        },
                        "ownerReferences": [
                            {
                                "apiVersion": "ray.io/v1",
                                "kind": "RayJob",
                                "name": meta["name"],
                                "uid": meta["uid"],
                                "controller": True,
                                "blockOwnerDeletion": True,
                            }
                        ],
                    },
                    "spec": job["spec"]["rayClusterSpec"],
                }
            )
        )


class Pods:
    """The controllers and kubelet of a graph's pods: pods from each workload's template,
    on loopback, Ready or not; the workloads' status as their controllers write it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def start(self, graph: str, *, ready: bool, frontend_port: int | None = None) -> list[str]:
        names = []
        for (kind, name), obj in self.cluster.children(graph).items():
            if kind not in ("Deployment", "Job"):
                continue
            template = obj["spec"]["template"]
            count = obj["spec"].get("replicas", obj["spec"].get("parallelism", 1))
            for i in range(count):
                spec = _loopback_ports(template["spec"], frontend_port)
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{name}-{i}",
                        "namespace": NS,
                        "labels": template["metadata"]["labels"],
                    },
                    "spec": spec,
                    "status": _pod_status(ready),
                }
                self.cluster.client.create(codecs.from_dict(pod))
                names.append(pod["metadata"]["name"])
            if kind == "Deployment":
                self.cluster.roll_out(kind, name)
        return names

    def set_ready(self, graph: str, ready: bool = True) -> None:
        for pod in self.cluster.client.list(Pod, labels={GRAPH_LABEL: graph}):
            self.cluster.client.patch(
                Pod.Status,
                pod.metadata.name,
                {"status": _pod_status(ready)},
                patch_type=PatchType.MERGE,
            )

    def workloads(self, graph: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {k: v for k, v in self.cluster.children(graph).items() if CHILD_KINDS[k[0]].workload}


def _pod_status(ready: bool) -> dict[str, Any]:
    return {
        "phase": "Running",
        "podIP": "127.0.0.1",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }


def _loopback_ports(spec: dict[str, Any], frontend_port: int | None) -> dict[str, Any]:
    """The pod's named ``http`` port is the one a real frontend on loopback listens on (pods
    here share one address, 127.0.0.1)."""
    out = {**spec, "containers": []}
    for container in spec["containers"]:
        ports = [
            {**p, "containerPort": frontend_port}
            if p.get("name") == "http" and frontend_port is not None
            else p
            for p in container.get("ports", [])
        ]
        out["containers"].append({**container, **({"ports": ports} if ports else {})})
    return out


class FrontendThread:
    """A real drivetrain frontend on a free loopback port, in a thread of its own."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="frontend")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        config = FrontendConfig(
            host="127.0.0.1", port=self.port, discovery=f"memory://{uuid.uuid4().hex}"
        )

        def ready(running: RunningFrontend) -> None:
            self.port = int(running.url.rsplit(":", 1)[1])
            self._ready.set()

        await run_frontend(config, stop=self._stop, on_ready=ready)

    def start(self) -> FrontendThread:
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the frontend did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            self._thread.join(10)
