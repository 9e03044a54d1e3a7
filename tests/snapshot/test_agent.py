"""``drivetrain snapshot`` as a process, against a fake container runtime (fake_runtime.py):
real workload processes, the control folder's sentinels, the status annotations written to a
file, to stdout and through the Kubernetes API (the emulator, with only the Role that
docs/snapshot.md documents)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Pod as KubePod
from lightkube.types import PatchType

from drivetrain import snapshot_protocol as pc
from tests.cli.helpers import run_cli
from tests.kube.emulator import ClusterEmulator, RunningCluster
from tests.paths import REPO
from tests.waiting import eventually

FAKE = Path(__file__).with_name("fake_runtime.py")
PY = sys.executable
CHECKPOINT_CMD = f"{PY} {FAKE} checkpoint --pid {{pid}} --images {{images}} --control {{control}}"
RESTORE_CMD = (
    f"{PY} {FAKE} restore --images {{images}} --control {{control}} --container {{container}}"
)


def agent(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {"KUBERNETES_SERVICE_HOST": "", **(env or {})}
    return run_cli("snapshot", *args, env=env, timeout=timeout)


def summary(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def annotation_lines(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in path.read_text().splitlines()]  # type: ignore[misc]


def pod_manifest(
    containers: list[str],
    *,
    targets: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    name: str = "worker-0",
) -> dict[str, Any]:
    meta_annotations = dict(annotations or {})
    if targets is not None:
        meta_annotations[pc.TARGET_CONTAINERS_ANNOTATION] = targets
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": labels or {},
            "annotations": meta_annotations,
        },
        "spec": {
            "containers": [
                {
                    "name": c,
                    "image": "drivetrain:0.1.0",
                    "command": ["drivetrain", "worker", "--engine", "mocker"],
                    "volumeMounts": [
                        {
                            "name": pc.CONTROL_VOLUME,
                            "mountPath": pc.CONTROL_DIR,
                            "subPath": c,
                        }
                    ],
                }
                for c in containers
            ],
            "volumes": [{"name": pc.CONTROL_VOLUME, "emptyDir": {}}],
        },
    }


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


class Workloads:
    """The fake containers' processes, stopped at the end of a test."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.controls: list[Path] = []

    def source(self, control: Path, token: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [PY, str(FAKE), "workload", "--control", str(control), "--token", token]
        )
        self.procs.append(proc)
        return proc

    def restored(self, control: Path) -> None:
        self.controls.append(control)

    def stop(self) -> None:
        for control in self.controls:
            (control / "stop").write_text("")
            pid_file = control / "restored.pid"
            if pid_file.exists():
                pid = int(pid_file.read_text())
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                    time.sleep(0.02)
                if Path(f"/proc/{pid}").exists():
                    os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def workloads() -> Iterator[Workloads]:
    running = Workloads()
    try:
        yield running
    finally:
        running.stop()


def take_checkpoint(
    tmp_path: Path, workloads: Workloads, token: str = "source-7f3a"
) -> tuple[str, Path]:
    """A checkpoint of container ``main`` of a source pod; returns its id and storage."""
    control, storage = tmp_path / "source-control", tmp_path / "storage"
    manifest = write(
        tmp_path / "source.yaml",
        pod_manifest(["main"], labels={pc.CHECKPOINT_ID_LABEL: "ckpt-1"}),
    )
    source = workloads.source(control / "main", token)
    result = agent(
        "checkpoint",
        *("--manifest", str(manifest), "--container", "main", "--storage", str(storage)),
        *("--control-root", str(control), "--annotations", f"file:{tmp_path / 'source.ann'}"),
        *("--checkpoint-command", CHECKPOINT_CMD),
    )
    assert result.returncode == 0, result.stderr
    assert source.wait(20) == 0  # it saw snapshot-complete and ended, as a checkpoint Job does
    return "ckpt-1", storage


def test_checkpoint_waits_for_the_workload_then_records_status_before_the_sentinel(
    tmp_path: Path, workloads: Workloads
) -> None:
    checkpoint_id, storage = take_checkpoint(tmp_path, workloads)
    control = tmp_path / "source-control" / "main"
    location = storage / checkpoint_id / "versions" / "1"
    # The step saved the process's memory into Dynamo's layout <storage>/<id>/versions/<v>.
    assert yaml.safe_load((location / "state.json").read_text())["token"] == "source-7f3a"
    assert (control / pc.SNAPSHOT_COMPLETE).read_text() == "ckpt-1\n"
    assert (control / "source-saw-complete").exists()
    assert annotation_lines(tmp_path / "source.ann") == [
        (pc.CHECKPOINT_STATUS_ANNOTATION, "completed")
    ]


def test_checkpoint_prints_snapshotctls_keys(tmp_path: Path, workloads: Workloads) -> None:
    control = tmp_path / "control"
    manifest = write(tmp_path / "pod.yaml", pod_manifest(["main"], targets="main"))
    workloads.source(control / "main", "t")
    result = agent(
        "checkpoint",
        *("--manifest", str(manifest), "--storage", str(tmp_path / "s")),
        *("--control-root", str(control), "--annotations", "stdout"),
        *("--checkpoint-command", CHECKPOINT_CMD),
    )
    assert result.returncode == 0, result.stderr
    out = summary(result.stdout)
    assert out[pc.CHECKPOINT_STATUS_ANNOTATION] == "completed"  # the annotation, as key=value
    assert out["status"] == "completed"
    assert out["namespace"] == "ml" and out["name"] == "worker-0" and out["container"] == "main"
    assert re.fullmatch(r"manual-snapshot-\d+", out["checkpoint_id"])  # no id given: generated
    assert out["checkpoint_location"] == str(
        tmp_path / "s" / out["checkpoint_id"] / "versions" / "1"
    )


def test_a_failed_checkpoint_step_is_recorded_and_no_sentinel_is_written(
    tmp_path: Path, workloads: Workloads
) -> None:
    control = tmp_path / "control"
    manifest = write(tmp_path / "pod.yaml", pod_manifest(["main"], targets="main"))
    workloads.source(control / "main", "t")
    result = agent(
        "checkpoint",
        *("--manifest", str(manifest), "--storage", str(tmp_path / "s")),
        *("--control-root", str(control), "--annotations", f"file:{tmp_path / 'ann'}"),
        *(
            "--checkpoint-command",
            f"{PY} {FAKE} checkpoint --pid 999999999 --images {{images}} --control {{control}}",
        ),
    )
    assert result.returncode == 1
    assert (
        "checkpoint of main: `" in result.stderr
        and "exited 1: no process 999999999" in result.stderr
    )
    assert summary(result.stdout)["status"] == "failed"
    assert annotation_lines(tmp_path / "ann") == [(pc.CHECKPOINT_STATUS_ANNOTATION, "failed")]
    assert not (control / "main" / pc.SNAPSHOT_COMPLETE).exists()


def test_a_workload_that_never_gets_ready_fails_the_checkpoint_at_the_timeout(
    tmp_path: Path,
) -> None:
    manifest = write(tmp_path / "pod.yaml", pod_manifest(["main"], targets="main"))
    result = agent(
        "checkpoint",
        *("--manifest", str(manifest), "--storage", str(tmp_path / "s")),
        *("--control-root", str(tmp_path / "control"), "--annotations", "stdout"),
        *("--checkpoint-command", CHECKPOINT_CMD, "--timeout", "0.5"),
    )
    assert result.returncode == 1
    assert f"{tmp_path}/control/main/ready-for-snapshot: not written within 0.5 s" in result.stderr
    assert summary(result.stdout)[pc.CHECKPOINT_STATUS_ANNOTATION] == "failed"


def test_a_failover_restore_replays_the_checkpoint_into_both_engines(
    tmp_path: Path, workloads: Workloads
) -> None:
    checkpoint_id, storage = take_checkpoint(tmp_path, workloads)
    control = tmp_path / "restore-control"
    manifest = write(
        tmp_path / "restore.yaml",
        pod_manifest(
            ["engine-0", "engine-1", "frontend-sidecar"],
            targets="engine-0,engine-1",
            labels={pc.CHECKPOINT_ID_LABEL: checkpoint_id},
            annotations={pc.STORAGE_BASE_PATH_ANNOTATION: str(storage)},
        ),
    )
    for engine in ("engine-0", "engine-1"):
        (control / engine).mkdir(parents=True)
        (control / engine / pc.RESTORE_COMPLETE).write_text("stale\n")  # from an earlier run
        workloads.restored(control / engine)
    ann = tmp_path / "restore.ann"
    result = agent(
        "restore",
        *("--manifest", str(manifest), "--containers", "engine-0,engine-1"),
        *("--control-root", str(control), "--annotations", f"file:{ann}"),
        *("--restore-command", RESTORE_CMD),
    )
    assert result.returncode == 0, result.stderr
    out = summary(result.stdout)
    assert out["status"] == "completed"
    assert out["containers"] == "engine-0,engine-1"
    assert out["checkpoint_location"] == str(storage / "ckpt-1" / "versions" / "1")

    pids = {}
    for engine in ("engine-0", "engine-1"):
        # Each restored process carries the source's memory (its token) and resumed only once
        # the agent wrote its container's restore-complete.
        eventually(lambda e=engine: (control / e / "resumed").exists())
        resumed = (control / engine / "resumed").read_text()
        assert resumed.startswith("token=source-7f3a ")
        assert (control / engine / pc.RESTORE_COMPLETE).read_text() == "ckpt-1\n"
        pids[engine] = (control / engine / "restored.pid").read_text().strip()

    lines = annotation_lines(ann)
    assert lines[:6] == [
        (pc.LEGACY_RESTORE_STATUS, ""),  # the unscoped legacy keys, cleared
        (pc.LEGACY_RESTORE_CONTAINER_ID, ""),
        (pc.restore_status_key("engine-0"), "in_progress"),
        (pc.restore_container_id_key("engine-0"), ""),
        (pc.restore_status_key("engine-1"), "in_progress"),
        (pc.restore_container_id_key("engine-1"), ""),
    ]
    final = dict(lines)
    for engine in ("engine-0", "engine-1"):
        assert final[pc.restore_status_key(engine)] == "completed"
        assert final[pc.restore_container_id_key(engine)] == f"fake://{engine}/{pids[engine]}"
    assert not any("frontend-sidecar" in key for key, _ in lines)


def test_a_restore_that_fails_for_one_engine_still_restores_the_other(
    tmp_path: Path, workloads: Workloads
) -> None:
    checkpoint_id, storage = take_checkpoint(tmp_path, workloads)
    control = tmp_path / "restore-control"
    manifest = write(
        tmp_path / "restore.yaml",
        pod_manifest(["engine-0", "engine-1"], targets="engine-0,engine-1"),
    )
    for engine in ("engine-0", "engine-1"):
        (control / engine).mkdir(parents=True)
        workloads.restored(control / engine)
    # engine-0's restore step fails (a command that exits 3 for it only).
    failing = f"sh -c 'test {{container}} = engine-0 && exit 3; exec {RESTORE_CMD}'"
    result = agent(
        "restore",
        *("--manifest", str(manifest), "--checkpoint-id", checkpoint_id, "--storage", str(storage)),
        *("--control-root", str(control), "--annotations", "stdout"),
        *("--restore-command", failing),
    )
    assert result.returncode == 1
    assert "restore of engine-0: `sh -c" in result.stderr and "exited 3" in result.stderr
    out = summary(result.stdout)
    assert out["status"] == "failed"
    assert out[pc.restore_status_key("engine-0")] == "failed"
    assert out[pc.restore_status_key("engine-1")] == "completed"
    assert not (control / "engine-0" / pc.RESTORE_COMPLETE).exists()
    eventually(lambda: (control / "engine-1" / "resumed").exists())


# ---- refusals: exit 1 with one line, usage exit 2 -------------------------------------------------


@pytest.fixture
def two_engines(tmp_path: Path) -> Path:
    return write(
        tmp_path / "pod.yaml", pod_manifest(["engine-0", "engine-1"], targets="engine-0,engine-1")
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["restore", "--containers", "engine-1,engine-0"],
            1,
            "--containers 'engine-1,engine-0' does not match POD: metadata.annotations"
            f"[{pc.TARGET_CONTAINERS_ANNOTATION}] 'engine-0,engine-1'; give one or the other",
        ),
        (
            ["restore", "--containers", "engine-0,,engine-1"],
            1,
            "--containers: target containers must be non-empty names",
        ),
        (
            ["restore", "--containers", "engine-0,engine-0"],
            1,
            "target containers name engine-0 more than once",
        ),
        (
            ["checkpoint"],
            1,
            f"POD: metadata.annotations[{pc.TARGET_CONTAINERS_ANNOTATION}]: expected exactly 1 "
            "target container(s), got 2 (engine-0,engine-1)",
        ),
        (["checkpoint", "--container", "main"], 1, "--container 'main' does not match"),
        (["restore", "--pod", "p"], 2, "give exactly one of --manifest FILE and --pod NAME"),
        (
            ["restore", "--annotations", "kafka"],
            2,
            "--annotations: expected auto, kube, stdout or file:PATH",
        ),
        (["checkpoint", "--timeout", "0"], 2, "--timeout: expected seconds > 0"),
        (
            ["checkpoint", "--container", "engine-0", "--checkpoint-command", "x {image}"],
            1,
            "unknown placeholder {image}",
        ),
        (
            ["restore", "--checkpoint-id", "nope", "--storage", "/nonexistent"],
            1,
            "checkpoint location /nonexistent/nope/versions/1: no checkpoint there",
        ),
        (
            ["restore"],
            1,
            "no checkpoint to restore: give --checkpoint-id or set the nvidia.com/snapshot-checkpoint-id label",
        ),
    ],
)
def test_refusals(two_engines: Path, args: list[str], code: int, message: str) -> None:
    extra = [] if "--annotations" in args else ["--annotations", "stdout"]
    result = agent(*args, "--manifest", str(two_engines), *extra)
    assert result.returncode == code, result.stderr
    assert message.replace("POD", str(two_engines)) in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_neither_manifest_nor_pod_is_a_usage_error() -> None:
    result = agent("restore", "--containers", "main")
    assert result.returncode == 2
    assert "give exactly one of --manifest FILE and --pod NAME" in result.stderr


# ---- the default step: CRIU's real CLI, or a clear error ----------------------------------------


def test_without_criu_on_the_node_the_default_step_says_so(
    tmp_path: Path, workloads: Workloads
) -> None:
    control = tmp_path / "control"
    manifest = write(tmp_path / "pod.yaml", pod_manifest(["main"], targets="main"))
    workloads.source(control / "main", "t")
    result = agent(
        "checkpoint",
        *("--manifest", str(manifest), "--storage", str(tmp_path / "s")),
        *("--control-root", str(control), "--annotations", "stdout"),
        env={"PATH": "/nonexistent"},
    )
    assert result.returncode == 1
    assert (
        "checkpoint: CRIU is not available on this node (no `criu` on PATH); install CRIU (and "
        "cuda-checkpoint for GPU processes) or give --checkpoint-command"
    ) in result.stderr


def recording_tool(bin_dir: Path, name: str, script: str = "") -> Path:
    """A stand-in for a real tool on PATH that records each argv it is run with."""
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{bin_dir}/calls"\n{script}\n')
    tool.chmod(0o755)
    return tool


def test_the_default_step_runs_criu_and_cuda_checkpoint_as_their_clis_expect(
    tmp_path: Path, workloads: Workloads
) -> None:
    bin_dir = tmp_path / "bin"
    recording_tool(
        bin_dir,
        "criu",
        'test "$1" = dump && touch "$5/core-1.img"\ntest "$1" = restore && echo 4242 > "$9"\nexit 0',
    )
    recording_tool(bin_dir, "cuda-checkpoint")
    path = f"{bin_dir}:{os.environ['PATH']}"
    control, storage = tmp_path / "control", tmp_path / "s"
    manifest = write(tmp_path / "pod.yaml", pod_manifest(["main"], targets="main"))
    source = workloads.source(control / "main", "t")
    ok = agent(
        "checkpoint",
        *("--manifest", str(manifest), "--storage", str(storage), "--checkpoint-id", "c1"),
        *("--control-root", str(control), "--annotations", "stdout"),
        env={"PATH": path},
    )
    assert ok.returncode == 0, ok.stderr
    images = storage / "c1" / "versions" / "1"
    pid = source.pid
    restore_pod = write(tmp_path / "r.yaml", pod_manifest(["main"], targets="main"))
    ok = agent(
        "restore",
        *("--manifest", str(restore_pod), "--storage", str(storage), "--checkpoint-id", "c1"),
        *("--control-root", str(tmp_path / "rc"), "--annotations", "stdout"),
        env={"PATH": path},
    )
    assert ok.returncode == 0, ok.stderr
    pidfile = tmp_path / "rc" / "main" / "restored.pid"
    assert (bin_dir / "calls").read_text().splitlines() == [
        f"cuda-checkpoint --toggle --pid {pid}",
        f"criu dump --tree {pid} --images-dir {images} --leave-running --shell-job "
        "--tcp-established --file-locks",
        f"cuda-checkpoint --toggle --pid {pid}",
        f"criu restore --images-dir {images} --restore-detached --shell-job --tcp-established "
        f"--file-locks --pidfile {pidfile}",
        "cuda-checkpoint --toggle --pid 4242",
    ]


# ---- the status annotations through the Kubernetes API (the emulator) ----------------------------


def documented_rules() -> list[dict[str, list[str]]]:
    """The rules of the agent's Role, as docs/snapshot.md gives them."""
    text = (REPO / "docs" / "snapshot.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and doc.get("kind") == "Role":
            return doc["rules"]  # type: ignore[no-any-return]
    raise AssertionError("docs/snapshot.md documents no Role")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Client, Path, ClusterEmulator]]:
    emulator = ClusterEmulator(history_limit=2)
    with RunningCluster(emulator) as running:
        admin = Client(
            KubeConfig.from_dict(running.kubeconfig()), namespace="ml", field_manager="t"
        )
        emulator.grant("snapshot-agent", "ml", documented_rules())
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(running.kubeconfig("snapshot-agent", "ml")))
        yield admin, path, emulator


def test_restore_of_a_pod_read_through_the_api_annotates_that_pod(
    tmp_path: Path, workloads: Workloads, cluster: tuple[Client, Path, ClusterEmulator]
) -> None:
    admin, kubeconfig, emulator = cluster
    checkpoint_id, storage = take_checkpoint(tmp_path, workloads)
    body = pod_manifest(
        ["engine-0", "engine-1"],
        targets="engine-0,engine-1",
        labels={pc.CHECKPOINT_ID_LABEL: checkpoint_id},
        annotations={pc.LEGACY_RESTORE_STATUS: "completed", "team": "ml"},
    )
    admin.create(KubePod.from_dict(body))
    # The kubelet's view: each container's runtime id, which the agent records.
    statuses = [
        {
            "name": c,
            "containerID": f"containerd://{c}-1f2e",
            "image": "drivetrain:0.1.0",
            "imageID": "sha256:0",
            "ready": False,
            "restartCount": 0,
        }
        for c in ("engine-0", "engine-1")
    ]
    admin.patch(
        KubePod.Status,
        "worker-0",
        {"status": {"containerStatuses": statuses}},
        patch_type=PatchType.MERGE,
    )
    control = tmp_path / "restore-control"
    for engine in ("engine-0", "engine-1"):
        (control / engine).mkdir(parents=True)
        workloads.restored(control / engine)
    result = agent(
        "restore",
        *("--pod", "worker-0", "--storage", str(storage), "--control-root", str(control)),
        *("--restore-command", RESTORE_CMD),
        env={"KUBECONFIG": str(kubeconfig)},
    )
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout)["namespace"] == "ml"
    annotations = admin.get(KubePod, "worker-0").metadata.annotations  # type: ignore[union-attr]
    assert annotations == {
        pc.TARGET_CONTAINERS_ANNOTATION: "engine-0,engine-1",
        "team": "ml",
        pc.restore_status_key("engine-0"): "completed",
        pc.restore_status_key("engine-1"): "completed",
        pc.restore_container_id_key("engine-0"): "containerd://engine-0-1f2e",
        pc.restore_container_id_key("engine-1"): "containerd://engine-1-1f2e",
    }
    assert emulator.used["snapshot-agent"] == {("", "pods", "get"), ("", "pods", "patch")}
    assert not emulator.denied


def test_checkpoint_annotations_go_to_the_manifests_pod_and_refusals_name_the_api(
    tmp_path: Path, workloads: Workloads, cluster: tuple[Client, Path, ClusterEmulator]
) -> None:
    admin, kubeconfig, _ = cluster
    body = pod_manifest(["main"], targets="main")
    admin.create(KubePod.from_dict(body))
    manifest = write(tmp_path / "pod.yaml", body)
    control = tmp_path / "control"
    workloads.source(control / "main", "t")
    result = agent(
        "checkpoint",
        *("--manifest", str(manifest), "--storage", str(tmp_path / "s")),
        *("--control-root", str(control), "--annotations", "kube"),
        *("--checkpoint-command", CHECKPOINT_CMD),
        env={"KUBECONFIG": str(kubeconfig)},
    )
    assert result.returncode == 0, result.stderr
    annotations = admin.get(KubePod, "worker-0").metadata.annotations  # type: ignore[union-attr]
    assert annotations[pc.CHECKPOINT_STATUS_ANNOTATION] == "completed"

    missing = agent(
        "restore",
        *("--pod", "nope", "--checkpoint-id", "x", "--storage", str(tmp_path / "s")),
        env={"KUBECONFIG": str(kubeconfig)},
    )
    assert missing.returncode == 1
    assert "pod ml/nope: 404" in missing.stderr
