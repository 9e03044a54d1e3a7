"""verify over Kubernetes objects from any source: the renderer's output read back, hand-written
workloads of every simulated kind, `kubectl get -o yaml` Lists, and objects it does not
simulate or cannot read."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivetrain.api.errors import InvalidGraph
from drivetrain.cli.verify_input import read_objects
from drivetrain.verify import InvalidManifests, verify_manifests
from tests.cli.helpers import run_cli
from tests.paths import REPO
from tests.verify.manifests import container, pod_template

MULTINODE = """\
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: sg}
spec:
  backendFramework: sglang
  services:
    Frontend:
      componentType: frontend
      extraPodSpec: {mainContainer: {image: runtime:1}}
    decode:
      componentType: worker
      multinode: {nodeCount: 3}
      resources: {limits: {gpu: "4"}}
      extraPodSpec:
        mainContainer:
          image: runtime:1
          command: [python3, -m, dynamo.sglang]
          args: [--model-path, Qwen/Qwen3-0.6B, --tp-size, "12"]
"""

TRAINER = """\
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: rl}
spec:
  services:
    policy:
      componentType: trainer
      multinode: {nodeCount: 2}
      extraPodSpec:
        mainContainer: {image: pytorch/pytorch:2.5, command: [torchrun], args: [train.py]}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_verify_of_the_render_equals_verify_of_the_graph(tmp_path: Path, multinode: str) -> None:
    graph = _write(tmp_path, "graph.yaml", MULTINODE)
    rendered = run_cli("render", "-f", str(graph), "--multinode", multinode)
    assert rendered.returncode == 0, rendered.stderr
    manifests = _write(tmp_path, "rendered.yaml", rendered.stdout)
    of_graph = run_cli("verify", "-f", str(graph), "--multinode", multinode)
    of_render = run_cli("verify", "-f", str(manifests))
    assert of_graph.returncode == of_render.returncode == 0, of_render.stderr
    assert of_render.stdout == of_graph.stdout
    assert "--node-rank" in of_render.stdout
    # The table wraps long lines; compare the words.
    words = " ".join(of_render.stdout.split())
    assert "Service/sg-frontend (no pods of its own)" in words


@pytest.mark.parametrize(
    "text",
    [(REPO / "examples" / "agg.yaml").read_text(), MULTINODE, TRAINER],
    ids=["agg", "multinode", "trainer"],
)
@pytest.mark.parametrize("form", ["yaml", "json"])
def test_reports_of_a_graph_and_of_its_rendered_objects_are_equal(
    tmp_path: Path, text: str, form: str
) -> None:
    graph = _write(tmp_path, "graph.yaml", text)
    objects, _ = read_objects(graph, "default", "lws")
    dumped = yaml.safe_dump_all(objects) if form == "yaml" else json.dumps(objects)
    again, _ = read_objects(_write(tmp_path, f"rendered.{form}", dumped), "ignored", None)
    assert again == objects
    assert verify_manifests(again) == verify_manifests(objects)


LWS_BUG = """\
# Dynamo's original bug, written by hand: exec-form args carry a bare $LWS_LEADER_ADDRESS,
# which the kubelet does not expand ($(VAR) only) and no shell sees.
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: decode, namespace: dynamo}
spec:
  replicas: 1
  leaderWorkerTemplate:
    size: 2
    leaderTemplate:
      spec:
        containers:
          - name: main
            image: nvcr.io/nvidia/ai-dynamo/sglang-runtime:0.6.0
            command: [python3, -m, dynamo.sglang]
            args: [--dist-init-addr, "$(LWS_LEADER_ADDRESS):29500", --nnodes, "2", --node-rank, "0"]
    workerTemplate:
      spec:
        containers:
          - name: main
            image: nvcr.io/nvidia/ai-dynamo/sglang-runtime:0.6.0
            command: [python3, -m, dynamo.sglang]
            args: [--dist-init-addr, "$LWS_LEADER_ADDRESS:29500", --nnodes, "2", --node-rank, "1"]
---
apiVersion: v1
kind: Service
metadata: {name: decode, namespace: dynamo}
spec: {clusterIP: None, ports: [{port: 29500}]}
"""


def test_hand_written_lws_with_dynamos_bug_fails_naming_container_rank_and_word(
    tmp_path: Path,
) -> None:
    result = run_cli("verify", "-f", str(_write(tmp_path, "lws.yaml", LWS_BUG)))
    assert result.returncode == 1
    errors = " ".join(result.stderr.split())
    assert (
        "verify: LeaderWorkerSet/decode pod decode-0-1 (rank 1) container main: '$L' survives "
        "into the final argv of 'python3'"
    ) in errors
    assert "'$LWS_LEADER_ADDRESS:29500'" in errors
    assert "decode-0 " not in errors  # the leader's $(LWS_LEADER_ADDRESS) is expanded
    assert "not simulated: Service/decode (no pods of its own)" in result.stdout
    assert "Traceback" not in result.stderr


def _kinds() -> list[dict[str, Any]]:
    main = container(["python3", "-m", "worker"], ["--index", "$(JOB_COMPLETION_INDEX)"])
    template = pod_template(main)
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {"replicas": 3, "serviceName": "db-headless", "template": template},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "train", "namespace": "ns"},
            "spec": {"completionMode": "Indexed", "completions": 4, "template": template},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "ns"},
            "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": template}}},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "solo", "namespace": "ns"},
            "spec": {"hostname": "h", "subdomain": "sub", "containers": [main]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "ds"},
            "spec": {"template": template},
        },
    ]


def test_every_simulated_kind_gives_its_controllers_pods() -> None:
    report = verify_manifests(_kinds())
    pods = [(p.workload, p.pod, p.argv[-1]) for p in report.processes]
    assert pods == [
        ("StatefulSet/db", "db-0", "$(JOB_COMPLETION_INDEX)"),
        ("StatefulSet/db", "db-1", "$(JOB_COMPLETION_INDEX)"),
        ("Job/train", "train-0", "0"),  # Indexed: hostname <job>-<i>, the index in the env
        ("Job/train", "train-1", "1"),
        ("CronJob/nightly", "nightly-x7k2p", "$(JOB_COMPLETION_INDEX)"),
        ("Pod/solo", "h", "$(JOB_COMPLETION_INDEX)"),
        ("DaemonSet/ds", "ds-x7k2p", "$(JOB_COMPLETION_INDEX)"),
    ]
    # Outside an Indexed Job the variable is undefined and stays literal: verify says so.
    flagged = {(p.workload, p.pod) for p in report.problems}
    assert ("Job/train", "train-0") not in flagged
    assert ("StatefulSet/db", "db-1") in flagged


def test_a_containers_own_job_completion_index_wins_over_the_controllers() -> None:
    job = _kinds()[1]
    main = job["spec"]["template"]["spec"]["containers"][0]
    main["env"] = [{"name": "JOB_COMPLETION_INDEX", "value": "7"}]
    report = verify_manifests([job])
    assert [p.argv[-1] for p in report.processes] == ["7", "7"]


def test_kubectl_lists_are_read_and_unsimulated_objects_listed(tmp_path: Path) -> None:
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            *_kinds()[:1],
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {}},
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
            {
                "apiVersion": "leaderworkerset.x-k8s.io/v2",
                "kind": "LeaderWorkerSet",
                "metadata": {"name": "future"},
            },
        ],
    }
    objects, _ = read_objects(_write(tmp_path, "list.yaml", yaml.safe_dump(listed)), "x", None)
    report = verify_manifests(objects)
    assert [str(s) for s in report.not_simulated] == [
        "ConfigMap/cfg (no pods of its own)",
        "Widget/w (a kind verify does not simulate)",
        "LeaderWorkerSet/future (apiVersion leaderworkerset.x-k8s.io/v2 (verify simulates "
        "leaderworkerset.x-k8s.io/v1))",
    ]
    assert {p.workload for p in report.processes} == {"StatefulSet/db"}


BAD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: two
  template:
    spec:
      containers:
        - {name: main, image: web:1, args: [--tp, 8], env: [{value: x}]}
---
apiVersion: v1
kind: List
items:
  - 3
  - {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: 5}}
"""


def test_unreadable_objects_are_named_field_by_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", BAD)
    with pytest.raises(InvalidGraph) as exc:
        read_objects(path, "default", None)
    assert [(e.document, e.path) for e in exc.value.errors] == [
        (0, "spec.replicas"),
        (0, "spec.template.spec.containers[0].args[1]"),
        (0, "spec.template.spec.containers[0].env[0].name"),
        (1, "items[0]"),
        (1, "items[1].spec.ports"),
    ]
    assert str(exc.value.errors[1]).endswith("Deployment/web: expected a string, got 8 (quote it)")
    with pytest.raises(InvalidManifests):
        verify_manifests(
            yaml.safe_load_all(BAD).__next__() and [yaml.safe_load(BAD.split("---")[0])]
        )
    result = run_cli("verify", "-f", str(path))
    assert result.returncode == 1
    assert "5 errors" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_with_nothing_to_verify_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidGraph, match="no graph and no Kubernetes object"):
        read_objects(_write(tmp_path, "empty.yaml", "---\n"), "default", None)


def _deployment(main: dict[str, Any], name: str = "d") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"template": pod_template(main)},
    }


@pytest.mark.parametrize("image", ["${IMAGE}", "$(IMAGE)", "$IMAGE", "repo/${NAME}:1"])
def test_a_reference_left_in_an_image_fails(image: str) -> None:
    main = container(["python3", "serve.py"], image=image)
    lws_like = [_deployment(main), _deployment({**main, "image": "ok:1"}, name="fine")]
    report = verify_manifests(lws_like)
    assert [(p.workload, p.token) for p in report.problems] == [("Deployment/d", image)]
    assert "the kubelet never expands an image reference" in str(report.problems[0])


def test_an_image_reference_is_reported_once_per_template() -> None:
    text = LWS_BUG.replace("nvcr.io/nvidia/ai-dynamo/sglang-runtime:0.6.0", "${IMAGE}")
    report = verify_manifests(list(yaml.safe_load_all(textwrap.dedent(text))))
    images = [p for p in report.problems if p.token == "${IMAGE}"]
    assert [(p.pod, p.rank) for p in images] == [("decode-0", 0), ("decode-0-1", 1)]


@pytest.mark.parametrize(
    ("command", "args", "flagged"),
    [
        (["train.py"], ["--epochs", "3"], True),
        ([], ["train.py"], True),
        (["sh", "-c"], ["cd /app && train.py --epochs 3"], True),
        (["bash", "-c", "exec nohup train.py"], [], True),
        (["python3", "train.py"], [], False),
        (["./train.py"], [], False),
        (["sh", "-c"], ["/app/train.py --epochs 3"], False),
        (["sh", "-c"], ["python3 /app/train.py"], False),
        (["docker-entrypoint.sh", "serve"], [], False),
    ],
)
def test_a_python_script_run_without_interpreter_or_path_fails(
    command: list[str], args: list[str], flagged: bool
) -> None:
    main = {"name": "main", "image": "trainer:1", "command": command, "args": args}
    report = verify_manifests([_deployment(main)])
    bare = [p for p in report.problems if p.token == "train.py"]
    assert bool(bare) is flagged, [str(p) for p in report.problems]
    if flagged:
        assert "a Python script is the program, with no interpreter and no path" in str(bare[0])


def test_a_graph_without_services_verifies_with_nothing_to_simulate(tmp_path: Path) -> None:
    empty = "apiVersion: drivetrain.dev/v1alpha1\nkind: GraphDeployment\nmetadata: {name: e}\n"
    path = _write(tmp_path, "empty.yaml", empty + "spec: {services: {}}\n")
    assert read_objects(path, "default", None) == ([], [])
