"""``drivetrain apply / status / delete`` with RLRun files, and ``apply --wait``, as a person
runs them (subprocesses) against the emulated cluster with the operator and KubeRay played."""

from __future__ import annotations

import subprocess
import textwrap
import threading
from pathlib import Path

import pytest
import yaml
from lightkube.core.exceptions import ApiError

from drivetrain.kube.resources import RayJobResource, RLRunResource
from tests.cli.helpers import CLI, environment
from tests.kube.conftest import NS, Cluster, OperatorThread
from tests.kube.players import FrontendThread, KubeRay, Pods
from tests.kube.test_kube_cli import drivetrain, kube_env
from tests.ports import free_port
from tests.waiting import eventually

GRAPH = """\
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: policy}
spec:
  services:
    Frontend:
      componentType: frontend
      extraPodSpec: {mainContainer: {image: example/drivetrain:1}}
    worker:
      componentType: worker
      extraPodSpec:
        mainContainer:
          image: example/drivetrain:1
          args: [worker, --engine, mocker, --model-name, m]
"""

RUN = """\
apiVersion: drivetrain.dev/v1alpha1
kind: RLRun
metadata: {name: grpo}
spec:
  graphs:
    policy:
      manifest: graph.yaml
      overrides: {services: {worker: {replicas: 1}}}
  ray:
    cluster:
      spec:
        headGroupSpec:
          rayStartParams: {}
          template:
            spec:
              containers: [{name: ray-head, image: rayproject/ray:2.52.0}]
    job:
      entrypoint: python3 train.py
"""


def files(tmp_path: Path, run: str = RUN, graph: str | None = GRAPH) -> Path:
    if graph is not None:
        (tmp_path / "graph.yaml").write_text(graph)
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(run))
    return path


def popen(*args: str, kubeconfig: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(kube_env(kubeconfig)),
    )


def test_apply_inlines_the_manifest_and_sends_the_run(ray_cluster: Cluster, tmp_path: Path) -> None:
    result = drivetrain(
        "apply", "-f", str(files(tmp_path)), "-n", NS, kubeconfig=ray_cluster.kubeconfig
    )
    assert result.returncode == 0, result.stderr
    assert "RLRun ml/grpo applied" in result.stderr
    spec = ray_cluster.client.get(RLRunResource, "grpo").to_dict()["spec"]
    entry = spec["graphs"]["policy"]
    assert "manifest" not in entry and entry["graph"]["metadata"]["name"] == "policy"
    assert entry["overrides"] == {"services": {"worker": {"replicas": 1}}}


@pytest.mark.parametrize(
    ("old", "new", "graph", "says"),
    [
        ("manifest: graph.yaml", "manifest: nope.yaml", GRAPH, "spec.graphs.policy.manifest: "),
        (
            "manifest: graph.yaml",
            "manifest: graph.yaml",
            "kind: ConfigMap\n",
            "has no GraphDeployment",
        ),
        (
            "services: {worker:",
            "services: {wroker:",
            GRAPH,
            "overrides.services.wroker: no service",
        ),
        (
            "rayStartParams: {}",
            "rayStartParams: {}\n          serviceType: 7",
            GRAPH,
            "spec.ray.cluster.spec.headGroupSpec.serviceType: must be a string (got 7)",
        ),
    ],
    ids=["missing-manifest", "no-graph", "unknown-service", "kuberay-schema"],
)
def test_bad_input_is_one_clear_error_and_nothing_is_applied(
    ray_cluster: Cluster, tmp_path: Path, old: str, new: str, graph: str, says: str
) -> None:
    assert old in RUN
    writes = len(ray_cluster.emulator.writes)
    path = files(tmp_path, RUN.replace(old, new), graph)
    result = drivetrain("apply", "-f", str(path), "-n", NS, kubeconfig=ray_cluster.kubeconfig)
    assert result.returncode == 1
    assert says in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert ray_cluster.emulator.writes[writes:] == []


def _play_until_released(cluster: Cluster, frontend: FrontendThread) -> KubeRay:
    kuberay = KubeRay(cluster)
    eventually(
        lambda: cluster.children("policy").get(("Deployment", "policy-frontend")), timeout=30
    )
    Pods(cluster).start("policy", ready=True, frontend_port=frontend.port)
    frontend.start()

    def released() -> bool:
        try:
            return cluster.client.get(RayJobResource, "grpo").spec["suspend"] is False
        except ApiError:
            return False

    eventually(released, timeout=30)
    return kuberay


class Lines:
    """A subprocess's stderr lines as they come (so a test can wait for one)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        stream = proc.stderr
        self._thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._thread.start()

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def text(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


def test_apply_wait_exits_0_when_the_run_succeeds(ray_cluster: Cluster, tmp_path: Path) -> None:
    op = OperatorThread(run_poll_s=0.3)
    op.start()
    frontend = FrontendThread(free_port())
    proc = popen(
        "apply", "-f", str(files(tmp_path)), "-n", NS, "--wait", kubeconfig=ray_cluster.kubeconfig
    )
    err = Lines(proc)
    try:
        eventually(
            lambda: err.saw("RLRun grpo: WaitingForGraphs: waiting for graph policy"), timeout=60
        )
        kuberay = _play_until_released(ray_cluster, frontend)
        for _ in range(3):
            kuberay.step("grpo")
        eventually(lambda: err.saw("RLRun grpo: Running"), timeout=30)
        kuberay.finish("grpo", "SUCCEEDED")
        proc.wait(timeout=60)
    finally:
        proc.kill()
        frontend.stop()
        op.stop()
    assert proc.returncode == 0, err.text()
    assert "RLRun grpo: Succeeded: the Ray job succeeded" in err.text()


def test_apply_wait_exits_1_printing_the_failed_gate(ray_cluster: Cluster, tmp_path: Path) -> None:
    op = OperatorThread(run_poll_s=0.3)
    op.start()
    run = yaml.safe_load(RUN)
    run["spec"]["graphs"]["policy"]["readyTimeoutS"] = 2
    try:
        result = drivetrain(
            "apply",
            "-f",
            str(files(tmp_path, yaml.safe_dump(run))),
            "-n",
            NS,
            "--wait",
            kubeconfig=ray_cluster.kubeconfig,
        )
    finally:
        op.stop()
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: RLRun ml/grpo failed: GateTimedOut: graph policy (policy) did not"
    )
    assert "readyTimeoutS=2" in last


def test_apply_wait_for_a_plain_graph_waits_for_the_three_gates(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = ray_cluster
    op = OperatorThread()
    op.start()
    frontend = FrontendThread(free_port())
    (tmp_path / "graph.yaml").write_text(GRAPH)
    proc = popen(
        "apply",
        "-f",
        str(tmp_path / "graph.yaml"),
        "-n",
        NS,
        "--wait",
        kubeconfig=cluster.kubeconfig,
    )
    err = Lines(proc)
    try:
        eventually(
            lambda: cluster.children("policy").get(("Deployment", "policy-worker")), timeout=30
        )
        Pods(cluster).start("policy", ready=False, frontend_port=frontend.port)
        eventually(lambda: err.saw("waiting: pods: 0/2 pods ready"), timeout=60)
        assert proc.poll() is None
        Pods(cluster).set_ready("policy")
        waiting = "waiting: frontend: GET /v1/models through the service proxy answered 503"
        eventually(lambda: err.saw(waiting), timeout=30)
        assert proc.poll() is None
        frontend.start()
        proc.wait(timeout=60)
    finally:
        proc.kill()
        frontend.stop()
        op.stop()
    assert proc.returncode == 0, err.text()
    assert "GraphDeployment ml/policy: all gates passed" in err.text()


def test_apply_wait_for_a_graph_times_out_naming_the_gate(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "graph.yaml").write_text(GRAPH)
    result = drivetrain(
        "apply",
        "-f",
        str(tmp_path / "graph.yaml"),
        "-n",
        NS,
        "--wait",
        "--timeout",
        "1",
        kubeconfig=cluster.kubeconfig,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: timed out after 1s: GraphDeployment ml/policy: status: no status yet (is the "
        "graph's operator running?)"
    )


def test_status_and_delete_of_a_run(ray_cluster: Cluster, tmp_path: Path) -> None:
    cluster = ray_cluster
    op = OperatorThread(run_poll_s=0.3)
    op.start()
    frontend = FrontendThread(free_port())
    try:
        assert (
            drivetrain(
                "apply", "-f", str(files(tmp_path)), "-n", NS, kubeconfig=cluster.kubeconfig
            ).returncode
            == 0
        )
        kuberay = _play_until_released(cluster, frontend)
        for _ in range(3):
            kuberay.step("grpo")

        def shows_cluster() -> str | bool:
            out = drivetrain(
                "status", "grpo", "--rlrun", "-n", NS, kubeconfig=cluster.kubeconfig
            ).stdout
            return "ready" in out.split("RayCluster", 1)[-1] and out

        out = eventually(shows_cluster, timeout=20)
        assert out.startswith("RLRun ml/grpo: Running")
        assert "policy" in out and "passed" in out
        assert "RayJob" in out and "released: Running / RUNNING" in out
        assert "frontend policy: http://policy-frontend.ml.svc.cluster.local:8000/v1" in out
        result = drivetrain("delete", "grpo", "--rlrun", "-n", NS, kubeconfig=cluster.kubeconfig)
        assert result.returncode == 0 and "RLRun grpo deleted" in result.stderr
        eventually(lambda: not list(cluster.client.list(RayJobResource)))
    finally:
        frontend.stop()
        op.stop()
    both = drivetrain("status", "grpo", "--rlrun", "--dynamo", kubeconfig=cluster.kubeconfig)
    assert both.returncode == 2
