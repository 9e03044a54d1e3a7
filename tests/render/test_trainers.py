"""Trainer services start through the distributed-env script on every rendering path, and every
pod that runs the script has it mounted."""

from __future__ import annotations

from typing import Any

import pytest

from drivetrain.api import InvalidGraph
from drivetrain.render.training import DISTENV_MOUNT_DIR, DISTENV_VOLUME
from drivetrain.verify import verify_manifests
from tests.render.conftest import by_kind
from tests.schemas import schema_errors

TRAINER = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: rl}
spec:
  services:
    policy:
      componentType: trainer
      multinode: {nodeCount: 3}
      extraPodSpec:
        mainContainer:
          image: pytorch/pytorch:2.5
          command: [torchrun]
          args: [train.py, --epochs, "3"]
    single:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, command: [python, train.py]}
"""


def _pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = []
    for obj in objects:
        if obj["kind"] == "Deployment":
            specs.append(obj["spec"]["template"]["spec"])
        elif obj["kind"] == "LeaderWorkerSet":
            t = obj["spec"]["leaderWorkerTemplate"]
            specs += [t["leaderTemplate"]["spec"], t["workerTemplate"]["spec"]]
        elif obj["kind"] == "PodCliqueSet":
            specs += [c["spec"]["podSpec"] for c in obj["spec"]["template"]["cliques"]]
    return specs


@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_trainers_run_through_the_mounted_distenv_script(render, multinode: str) -> None:
    objects = render(TRAINER, multinode=multinode)
    (cm,) = by_kind(objects, "ConfigMap")
    assert cm["metadata"]["name"] == "rl-distenv"
    specs = _pod_specs(objects)
    assert len(specs) == 3  # leader, worker, and the single-node trainer
    for spec in specs:
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            argv = [*container.get("command", []), *container.get("args", [])]
            if any(a.startswith(DISTENV_MOUNT_DIR) for a in argv):
                mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
                assert mounts.get(DISTENV_VOLUME) == DISTENV_MOUNT_DIR, container["name"]
                assert volumes[DISTENV_VOLUME]["configMap"]["name"] == "rl-distenv"
        main = next(c for c in spec["containers"] if c["name"] == "main")
        assert main["command"][:3] == ["sh", f"{DISTENV_MOUNT_DIR}/distenv.sh", "--"]
    for obj in objects:
        assert schema_errors(obj) == [], obj["kind"]


@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_trainer_graphs_verify(render, multinode: str) -> None:
    report = verify_manifests(render(TRAINER, multinode=multinode))
    assert report.ok, [str(p) for p in report.problems]


BARE_SCRIPT = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: rl}
spec:
  services:
    as-args:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, args: [train.py]}
    in-a-script:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, command: [sh, -c, "exec train.py --x"]}
    with-interpreter:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, args: [python3 train.py]}
    by-path:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, command: [./train.py]}
"""


def test_a_trainer_running_a_bare_python_script_is_refused_naming_the_service(render) -> None:
    """`args: [train.py]` would render `sh -c train.py`: "train.py: not found" in the pod."""
    with pytest.raises(InvalidGraph) as exc:
        render(BARE_SCRIPT, multinode="lws")
    assert [e.path for e in exc.value.errors] == [
        "spec.services.as-args",
        "spec.services.in-a-script",
    ]
    first = str(exc.value.errors[0])
    assert "extraPodSpec.mainContainer runs `/bin/sh -c train.py`" in first
    assert "'train.py' is a Python script with no interpreter and no path" in first
    assert "run it as `python3 train.py`" in first
