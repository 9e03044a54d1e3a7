"""The renderer hook: trainer pods run their command through the mounted distenv script."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from drivetrain.api import load_text
from drivetrain.distenv import script_text
from drivetrain.render import render_graph
from drivetrain.render.training import (
    DISTENV_MOUNT_DIR,
    DISTENV_SCRIPT,
    TrainingEnvError,
    apply_training_env,
    grove_cliques,
)
from tests.distenv.podwalk import pod_specs, unmounted_runs


def pod(**main: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "trainer:1", "command": ["torchrun"], **main}
    return {"containers": [container], "volumes": [{"name": "shared-memory", "emptyDir": {}}]}


def hook(spec: dict[str, Any], deployer: str | None = "lws", nodes: int = 2, **kw: Any):
    args = {"graph_name": "rl", "service_name": "trainer", "namespace": "ml", **kw}
    return apply_training_env(spec, deployer=deployer, node_count=nodes, **args)


def main_of(spec: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in spec["containers"] if c["name"] == "main")


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_main_command_runs_through_the_script_and_args_are_untouched() -> None:
    spec, _ = hook(pod(args=["--nproc-per-node", "8", "train.py"]))
    main = main_of(spec)
    assert main["command"] == ["sh", DISTENV_SCRIPT, "--", "torchrun"]
    assert main["args"] == ["--nproc-per-node", "8", "train.py"]


def test_configmap_holds_the_shipped_script_in_the_graph_namespace() -> None:
    _, objects = hook(pod())
    (cm,) = objects
    assert (cm["kind"], cm["metadata"]["name"], cm["metadata"]["namespace"]) == (
        "ConfigMap",
        "rl-distenv",
        "ml",
    )
    assert cm["data"] == {"distenv.sh": script_text()}


def test_lws_pods_learn_the_rank_source_and_node_count() -> None:
    spec, _ = hook(pod(), deployer="lws", nodes=4)
    env = env_of(main_of(spec))
    assert (env["DRIVETRAIN_RANK_SOURCE"], env["DRIVETRAIN_NNODES"]) == ("lws", "4")


def test_grove_pods_also_learn_the_clique_names() -> None:
    spec, _ = hook(pod(), deployer="grove", nodes=3, service_name="Trainer.v2")
    env = env_of(main_of(spec))
    assert env["DRIVETRAIN_RANK_SOURCE"] == "grove"
    assert env["DRIVETRAIN_GROVE_LEADER_CLIQUE"] == "trainer-v2-ldr"
    assert env["DRIVETRAIN_GROVE_WORKER_CLIQUE"] == "trainer-v2-wkr"


def test_single_node_pods_are_wrapped_but_told_there_is_no_cluster() -> None:
    spec, _ = hook(pod(), deployer=None, nodes=1)
    assert env_of(main_of(spec)) == {"DRIVETRAIN_RANK_SOURCE": "none"}
    assert main_of(spec)["command"][:2] == ["sh", DISTENV_SCRIPT]


def test_a_user_drivetrain_value_wins_over_the_renderer() -> None:
    user = [{"name": "DRIVETRAIN_RANK_SOURCE", "value": "explicit"}]
    spec, _ = hook(pod(env=user), deployer=None, nodes=1)
    assert main_of(spec)["env"] == user


def test_the_script_is_mounted_read_only_from_the_configmap() -> None:
    spec, _ = hook(pod())
    assert {"name": "drivetrain-distenv", "mountPath": DISTENV_MOUNT_DIR, "readOnly": True} in (
        main_of(spec)["volumeMounts"]
    )
    (volume,) = [v for v in spec["volumes"] if v["name"] == "drivetrain-distenv"]
    assert volume["configMap"]["name"] == "rl-distenv"


def test_other_containers_that_run_the_script_are_mounted_too() -> None:
    spec = pod()
    spec["initContainers"] = [
        {"name": "probe", "command": ["sh", "-c", f"sh {DISTENV_SCRIPT} --print"]},
        {"name": "unrelated", "command": ["true"]},
    ]
    spec["containers"].append({"name": "sidecar", "command": ["envoy"]})
    out, _ = hook(spec)
    mounted = {
        c["name"]
        for c in out["initContainers"] + out["containers"]
        if any(m["mountPath"] == DISTENV_MOUNT_DIR for m in c.get("volumeMounts", []))
    }
    assert mounted == {"main", "probe"}


def test_applying_twice_changes_nothing_and_the_input_is_left_alone() -> None:
    original = pod(args=["x"])
    before = copy.deepcopy(original)
    once, _ = hook(original)
    twice, _ = hook(once)
    assert twice == once
    assert original == before


def test_a_main_container_without_command_is_refused_naming_the_service() -> None:
    spec = pod()
    del spec["containers"][0]["command"]
    with pytest.raises(TrainingEnvError, match=r"service trainer: .* explicit command"):
        hook(spec)


def test_several_nodes_without_a_multinode_deployer_is_refused() -> None:
    with pytest.raises(TrainingEnvError, match="3 nodes"):
        hook(pod(), deployer=None, nodes=3)


def test_another_volume_at_the_mount_directory_is_refused() -> None:
    spec = pod(volumeMounts=[{"name": "cfg", "mountPath": DISTENV_MOUNT_DIR}])
    with pytest.raises(TrainingEnvError, match="already mounts cfg"):
        hook(spec)


# --- the pod walk --------------------------------------------------------------------------


def test_pod_walk_flags_a_script_run_without_its_mount() -> None:
    spec, objects = hook(pod())
    spec["containers"].append({"name": "helper", "command": ["sh", DISTENV_SCRIPT, "--print"]})
    assert unmounted_runs(spec, objects) == [
        f"container helper runs {DISTENV_SCRIPT} but does not mount {DISTENV_MOUNT_DIR}"
    ]


def test_pod_walk_flags_a_missing_configmap() -> None:
    spec, _ = hook(pod())
    assert unmounted_runs(spec, []) == [
        f"container main runs {DISTENV_SCRIPT} but its ConfigMap does not hold that file"
    ]


GRAPH = """\
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: rl}
spec:
  services:
    Frontend: {componentType: frontend}
    trainer:
      componentType: trainer
      MULTINODE
      extraPodSpec:
        mainContainer:
          image: pytorch/pytorch:2.5
          command: [sh, -c, 'printf "%s|%s|%s|%s\\n" "$NODE_RANK" "$MASTER_ADDR" "$NNODES" "$1"', sh]
          args: [an arg]
"""


def rendered_with_hook(nodes: int, multinode: str | None) -> list[dict[str, Any]]:
    """Render a graph with a trainer; pod assembly applies the hook to every trainer pod."""
    block = f"multinode: {{nodeCount: {nodes}}}" if nodes > 1 else "replicas: 1"
    (graph,) = load_text(GRAPH.replace("MULTINODE", block)).graphs
    return render_graph(graph, namespace="ml", multinode=multinode)


@pytest.mark.parametrize(("nodes", "multinode"), [(1, None), (3, "lws"), (3, "grove")])
def test_every_rendered_pod_mounts_what_it_runs(nodes: int, multinode: str | None) -> None:
    objects = rendered_with_hook(nodes, multinode)
    walked = list(pod_specs(objects))
    assert len(walked) >= 2
    wrapped = [n for n, s in walked if main_of(s)["command"][:2] == ["sh", DISTENV_SCRIPT]]
    assert wrapped == ["Job/rl-trainer"], "the trainer is a Job on every deployer, and wrapped"
    for name, spec in walked:
        assert unmounted_runs(spec, objects) == [], name
        if name in wrapped:
            job = ("rl-trainer", "rl-trainer") if nodes > 1 else None
            again, _ = hook(spec, deployer=None, nodes=nodes, indexed_job=job)
            assert again == spec, "already wrapped once, with this node count and source"


def test_the_grove_clique_names_are_the_rendered_ones_for_services_in_the_clique_set() -> None:
    text = GRAPH.replace("componentType: trainer", "componentType: worker").replace(
        "MULTINODE", "multinode: {nodeCount: 3}"
    )
    (graph,) = load_text(
        text.replace("spec:\n  services:", "spec:\n  backendFramework: sglang\n  services:")
    ).graphs
    objects = render_graph(graph, namespace="ml", multinode="grove")
    (pcs,) = [o for o in objects if o["kind"] == "PodCliqueSet"]
    names = {c["name"] for c in pcs["spec"]["template"]["cliques"]}
    assert set(grove_cliques("trainer")) <= names


def _indexed_worker(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The wrapped argv of the rendered Indexed Job's main container, the ConfigMap's file
    standing in for the mount, and the env the renderer gave it."""
    objects = rendered_with_hook(3, "lws")
    (job,) = [o for o in objects if o["kind"] == "Job"]
    main = main_of(job["spec"]["template"]["spec"])
    (cm,) = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "rl-distenv"
    ]
    (tmp_path / "distenv.sh").write_text(cm["data"]["distenv.sh"])
    argv = [w.replace(DISTENV_MOUNT_DIR, str(tmp_path)) for w in main["command"] + main["args"]]
    argv[0] = shutil.which("dash") or argv[0]
    return argv, env_of(main)


def test_a_rendered_indexed_job_pod_runs_the_user_command_with_the_derived_env(
    tmp_path: Path,
) -> None:
    """Run the wrapped argv for real, as pod 2 of the Job (the Job controller's index)."""
    argv, env = _indexed_worker(tmp_path)
    env = {"PATH": os.environ["PATH"], **env, "JOB_COMPLETION_INDEX": "2"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "2|rl-trainer-0.rl-trainer|3|an arg\n"


def test_a_rendered_indexed_job_pod_with_an_index_out_of_range_does_not_start(
    tmp_path: Path,
) -> None:
    argv, env = _indexed_worker(tmp_path)
    env = {"PATH": os.environ["PATH"], **env, "JOB_COMPLETION_INDEX": "3"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "JOB_COMPLETION_INDEX" in proc.stderr
