"""Fixtures: the extended emulator on a loopback port, a kubeconfig for it, the operator in a
thread (kopf's KopfRunner), and "controllers" played by the tests through the API."""

from __future__ import annotations

import copy
import functools
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from kopf.testing import KopfRunner
from lightkube import Client, KubeConfig, codecs
from lightkube.types import PatchType

from drivetrain.kube.resources import (
    CHILD_KINDS,
    GraphDeploymentResource,
)
from drivetrain.operator.handlers import OperatorState, register, settings
from drivetrain.render.naming import GRAPH_LABEL
from tests.kube.emulator import ExtendedEmulator, RunningCluster
from tests.paths import REPO, shared

NS = "ml"


class Cluster:
    """The running emulator plus a sync lightkube client, as a test sees the cluster."""

    def __init__(self, running: RunningCluster, kubeconfig: Path) -> None:
        self.running = running
        self.emulator = running.emulator
        self.kubeconfig = kubeconfig
        self.client = Client(KubeConfig.from_file(kubeconfig), namespace=NS, field_manager="test")

    # -- setup
    def install_crd(self, path: Path) -> None:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                self.client.create(codecs.from_dict(doc))

    # -- graphs
    def create_graph(self, text: str) -> dict[str, Any]:
        obj = yaml.safe_load(textwrap.dedent(text))
        obj["metadata"]["namespace"] = NS
        return self.client.create(GraphDeploymentResource(obj)).to_dict()

    def patch_graph(self, name: str, patch: dict[str, Any]) -> None:
        self.client.patch(GraphDeploymentResource, name, patch, patch_type=PatchType.MERGE)

    def graph(self, name: str) -> dict[str, Any]:
        return self.client.get(GraphDeploymentResource, name).to_dict()

    # -- children
    def children(self, graph: str) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for kind in CHILD_KINDS.values():
            try:
                items = list(self.client.list(kind.resource, labels={GRAPH_LABEL: graph}))
            except Exception:  # an API group this test cluster does not serve
                continue
            for obj in items:
                out[kind.kind, obj.metadata.name] = obj.to_dict()
        return out

    def set_child_status(self, kind: str, name: str, status: dict[str, Any]) -> None:
        """Play the workload's controller: write its status subresource."""
        res = CHILD_KINDS[kind].resource
        self.client.patch(res.Status, name, {"status": status}, patch_type=PatchType.MERGE)

    def roll_out(self, kind: str, name: str) -> None:
        """Play the controller finishing a rollout: every desired replica updated and ready."""
        obj = self.client.get(CHILD_KINDS[kind].resource, name).to_dict()
        n = obj["spec"].get("replicas", 1)
        ready_field = "availableReplicas" if kind == "PodCliqueSet" else "readyReplicas"
        self.set_child_status(
            kind,
            name,
            {
                "observedGeneration": obj["metadata"]["generation"],
                "replicas": n,
                "updatedReplicas": n,
                ready_field: n,
            },
        )


def quiet(cluster: Cluster, settle: float = 0.6) -> int:
    """Wait until no write has happened for ``settle`` seconds; return the write count."""
    count = len(cluster.emulator.writes)
    stable_since = time.monotonic()
    deadline = stable_since + 15
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = len(cluster.emulator.writes)
        if now != count:
            count, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= settle:
            return count
    raise AssertionError("the cluster never went quiet")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    running = RunningCluster(ExtendedEmulator(history_limit=2)).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(running.kubeconfig()))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    c = Cluster(running, kubeconfig)
    c.install_crd(REPO / "deploy" / "crd.yaml")
    yield c
    running.stop()


@pytest.fixture
def with_lws(cluster: Cluster) -> Cluster:
    cluster.install_crd(shared("crds", "lws", "leaderworkerset.x-k8s.io_leaderworkersets.yaml"))
    return cluster


@functools.cache
def schemaless_crd(*parts: str) -> dict[str, Any]:
    """A CRD from ../shared without its schema: the emulator serves what a CRD names and does
    not validate (a megabyte of schema would cost seconds per test)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(shared(*parts).read_text(), loader)
    for version in crd["spec"]["versions"]:
        version["schema"] = {
            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        }
    return crd


def kuberay_crds() -> list[dict[str, Any]]:
    """KubeRay's RayJob and RayCluster CRDs (schemaless)."""
    return [
        schemaless_crd("crds", "kuberay", f"ray.io_{p}.yaml") for p in ("rayjobs", "rayclusters")
    ]


@pytest.fixture
def ray_cluster(cluster: Cluster) -> Cluster:
    for crd in kuberay_crds():
        cluster.client.create(codecs.from_dict(copy.deepcopy(crd)))
    return cluster


@pytest.fixture
def with_grove(cluster: Cluster) -> Cluster:
    cluster.install_crd(shared("crds", "grove", "grove.io_podcliquesets.yaml"))
    return cluster


class OperatorThread:
    """``drivetrain operator``'s handlers under kopf's KopfRunner, startable more than once."""

    def __init__(self, claim_dynamo: bool = False, run_poll_s: float = 5.0) -> None:
        self.claim_dynamo = claim_dynamo
        self.run_poll_s = run_poll_s
        self._runner: KopfRunner | None = None

    def start(self) -> None:
        registry = kopf.OperatorRegistry()
        register(
            registry, OperatorState(claim_dynamo=self.claim_dynamo, run_poll_s=self.run_poll_s)
        )
        self._runner = KopfRunner(
            ["run", "--standalone", "--all-namespaces"],
            registry=registry,
            settings=settings(),  # as in production: Events posted for problems
            timeout=30,
        )
        self._runner.__enter__()

    def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            runner.__exit__(None, None, None)


@pytest.fixture
def operator() -> Iterator[OperatorThread]:
    op = OperatorThread()
    op.start()
    yield op
    op.stop()
