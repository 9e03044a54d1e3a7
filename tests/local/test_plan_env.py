"""`drivetrain up` runs what the renderer renders: each process's argv and env are the rendered
main container's, built as the kubelet builds them, plus only the documented local adaptations.

The oracle is verify's kubelet simulation (`verify.container_env`), run on `render_graph`'s
output with this machine's pod facts; the plan must agree with it for every example graph.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from drivetrain.api.loader import load_text
from drivetrain.cmdline import replace_flag
from drivetrain.local.plan import (
    DRIVETRAIN_ARGV,
    LOCAL_WORKER_ENV,
    ProcessSpec,
    UnrunnableGraph,
    plan_graph,
    pod_templates,
)
from drivetrain.local.podenv import ClusterEnv
from drivetrain.render import render_graph
from drivetrain.render.naming import resource_name
from drivetrain.verify import ControllerEnv, PodFacts, container_env
from drivetrain.verify.expansion import expand_argv
from tests.paths import REPO, shared

DISCOVERY = "file:///tmp/drivetrain-test-store"

ENVS = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: envs, namespace: team}
spec:
  envs:
    - {name: MODEL, value: tiny}
    - {name: GRAPH_WIDE, value: "$(DRIVETRAIN_NAMESPACE)/$(POD_NAME)"}
  services:
    Frontend:
      componentType: frontend
      replicas: 2
      extraPodSpec:
        mainContainer:
          args: [frontend, --port, "8000", --router-mode, round-robin]
          env:
            - {name: FROM_MAIN, value: "main-$(DRIVETRAIN_GRAPH)"}
            - {name: BEFORE_GRAPH_ENVS, value: "$(MODEL)"}
    Decode:
      componentType: decode
      replicas: 2
      envs:
        - {name: LATER_REF, value: "$(DEFINED_AFTER)-x"}
        - {name: DEFINED_AFTER, value: after}
        - {name: DRIVETRAIN_COMPONENT_TYPE, value: overridden}
        - {name: ESCAPED, value: "$$(POD_NAME) and $POD_NAME"}
      extraPodSpec:
        mainContainer:
          args: [worker, --engine, mocker, --model-name, "$(MODEL)", --model-path, models/tiny]
          env:
            - {name: MAIN_ONLY, value: "$(POD_IP):1"}
            - {name: MODEL, value: shadowed-by-the-graph}
    Prefill:
      componentType: prefill
      extraPodSpec:
        mainContainer:
          args: [worker, --engine, mocker, --model-name, tiny, --model-path, models/tiny]
"""

SECRETS = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: sec}
spec:
  services:
    Frontend: {componentType: frontend}
    Worker:
      componentType: worker
      envFromSecret: hf-token
      envs:
        - {name: API_KEY, valueFrom: {secretKeyRef: {name: keys, key: api}}}
        - {name: KEY_USE, value: "key=$(API_KEY)"}
        - {name: MAYBE, valueFrom: {secretKeyRef: {name: keys, key: maybe, optional: true}}}
      extraPodSpec:
        mainContainer:
          args: [worker, --engine, mocker, --model-name, tiny, --model-path, models/tiny]
          env:
            - {name: REGION, valueFrom: {configMapKeyRef: {name: settings, key: region}}}
          envFrom:
            - configMapRef: {name: shared-settings}
"""


def _graph_texts() -> list[Any]:
    examples = sorted((REPO / "examples").glob("*.yaml"))
    assert examples, "no example graph"
    return [pytest.param(p.read_text(), id=f"examples/{p.name}") for p in examples] + [
        pytest.param(textwrap.dedent(ENVS), id="envs")
    ]


def _plan(text: str, env_file: dict[str, str] | None = None) -> tuple[Any, list[ProcessSpec]]:
    (graph,) = load_text(text, "graph.yaml").graphs
    specs = plan_graph(graph, port=18000, discovery=DISCOVERY, cwd=Path("/srv"), env_file=env_file)
    return graph, specs


def _kubelet_env(graph: Any, spec: ProcessSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """The rendered container of ``spec`` and the env the kubelet gives it on this machine."""
    k8s_ns = graph.metadata.namespace or "default"
    objects = render_graph(graph, namespace=k8s_ns)
    template = pod_templates(objects)[resource_name(graph, spec.service)]
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == spec.container]
    pod_name = f"{graph.name}-{spec.service.lower()}-{spec.replica}"
    facts = PodFacts(
        name=pod_name, namespace=k8s_ns, ip="127.0.0.1", hostname=pod_name, uid=spec.env["POD_UID"]
    )
    configmaps = ClusterEnv.of(objects, None).configmaps
    return container, container_env(container, ControllerEnv(), facts, configmaps=configmaps).values


@pytest.mark.parametrize("text", _graph_texts())
def test_planned_env_and_argv_are_the_rendered_containers(text: str) -> None:
    graph, specs = _plan(text)
    assert specs
    for spec in specs:
        container, expected = _kubelet_env(graph, spec)
        expected["DRIVETRAIN_DISCOVERY"] = DISCOVERY  # up's store, not the cluster's address
        argv = [*DRIVETRAIN_ARGV, *expand_argv(container, expected)[1:]]
        if spec.component_type == "frontend":
            argv = replace_flag(argv, "--port", str(spec.port), add=True)
            argv = replace_flag(argv, "--host", "127.0.0.1", add=True)
        else:
            expected |= LOCAL_WORKER_ENV
        assert spec.env == expected, spec.name
        assert spec.argv == argv, spec.name


def test_main_container_env_is_honoured_in_the_renderers_order() -> None:
    _, specs = _plan(textwrap.dedent(ENVS))
    frontend = next(s for s in specs if s.name == "Frontend/1")
    assert frontend.env["FROM_MAIN"] == "main-envs"
    # mainContainer.env comes before the graph's envs: a forward reference, literal in the pod.
    assert frontend.env["BEFORE_GRAPH_ENVS"] == "$(MODEL)"
    assert frontend.env["GRAPH_WIDE"] == "team-envs/envs-frontend-1"
    assert frontend.port == 18001
    decode = next(s for s in specs if s.name == "Decode/0")
    assert decode.env["MAIN_ONLY"] == "127.0.0.1:1"
    assert decode.env["MODEL"] == "tiny"  # the graph's envs win over mainContainer.env
    assert decode.env["LATER_REF"] == "$(DEFINED_AFTER)-x"  # no forward references
    assert decode.env["DRIVETRAIN_COMPONENT_TYPE"] == "overridden"
    assert decode.env["ESCAPED"] == "$(POD_NAME) and $POD_NAME"
    assert decode.models == ("tiny",)  # `--model-name $(MODEL)`, expanded as the kubelet does
    assert decode.argv[decode.argv.index("--model-name") + 1] == "tiny"


def test_secrets_and_foreign_configmaps_are_refused_naming_every_field() -> None:
    with pytest.raises(UnrunnableGraph) as exc:
        _plan(textwrap.dedent(SECRETS))
    problems = exc.value.problems
    base = "service Worker: spec.services.Worker"
    assert problems == [
        f"{base}.extraPodSpec.mainContainer.envFrom[0] (ConfigMap shared-settings) is read from "
        "the cluster; `drivetrain up` cannot read it: give its variables with --env-file FILE",
        f"{base}.envFromSecret (Secret hf-token) is read from the cluster; `drivetrain up` cannot "
        "read it: give its variables with --env-file FILE",
        f"{base}.extraPodSpec.mainContainer.env[REGION].valueFrom.configMapKeyRef (ConfigMap "
        "settings, key region) is read from the cluster; `drivetrain up` cannot read it: give "
        "REGION with --env-file FILE",
        f"{base}.envs[API_KEY].valueFrom.secretKeyRef (Secret keys, key api) is read from the "
        "cluster; `drivetrain up` cannot read it: give API_KEY with --env-file FILE",
    ]


def test_an_env_file_supplies_what_the_cluster_would() -> None:
    supplied = {"HF_TOKEN": "hf_x", "API_KEY": "k3y", "REGION": "eu", "DRIVETRAIN_GRAPH": "no"}
    graph, specs = _plan(textwrap.dedent(SECRETS), env_file=supplied)
    worker = next(s for s in specs if s.service == "Worker")
    assert worker.env["HF_TOKEN"] == "hf_x"  # envFrom: the file stands for the Secret's keys
    assert worker.env["API_KEY"] == "k3y"
    assert worker.env["KEY_USE"] == "key=k3y"  # later entries see the supplied value
    assert worker.env["REGION"] == "eu"
    assert "MAYBE" not in worker.env  # optional and not supplied: left out, as the kubelet does
    # envFrom comes first; the renderer's own entries override what the file brought.
    assert worker.env["DRIVETRAIN_GRAPH"] == "sec"
    # Everything not read from the cluster is still exactly the rendered env.
    _, expected = _kubelet_env(graph, worker)
    from_cluster = {"HF_TOKEN", "API_KEY", "KEY_USE", "REGION", "MAYBE"}
    for name, value in expected.items():
        if name not in from_cluster and name not in {*LOCAL_WORKER_ENV, "DRIVETRAIN_DISCOVERY"}:
            assert worker.env[name] == value, name


def test_an_env_file_missing_a_variable_says_so() -> None:
    with pytest.raises(UnrunnableGraph) as exc:
        _plan(textwrap.dedent(SECRETS), env_file={"HF_TOKEN": "x", "REGION": "eu"})
    assert exc.value.problems == [
        "service Worker: spec.services.Worker.envs[API_KEY].valueFrom.secretKeyRef (Secret keys, "
        "key api) is read from the cluster; the env file does not give API_KEY"
    ]


def _vector_cases() -> list[Any]:
    try:
        data = json.loads(shared("vectors", "kubelet-expansion-vectors.json").read_text())
    except pytest.skip.Exception:
        return []
    cases = (
        data["sequential_env_cases"] + data["extra_kubelet_semantics_cases_not_from_expand_test"]
    )
    return [pytest.param(c, id=c["name"]) for c in cases]


@pytest.mark.parametrize("case", _vector_cases())
def test_local_env_follows_the_kubelet_vectors(case: dict[str, Any]) -> None:
    """The same vectors verify passes, through up's own env builder."""
    resolved = case.get("resolved_env", {})
    env = [
        {"name": e["name"], "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        if "valueFrom" in e
        else e
        for e in case["env"]
    ]
    container = {
        "env": env,
        "envFrom": [{"configMapRef": {"name": "cm"}}] if "envFrom" in case else [],
        "args": case.get("args", []),
    }
    cluster = ClusterEnv({"cm": case.get("envFrom", {})})
    pod = {"status.podIP": next(iter(resolved.values()), "")}
    (graph,) = load_text((REPO / "examples" / "agg.yaml").read_text()).graphs
    built, problems = cluster.container_env(container, pod, graph, "MockerWorker")
    assert problems == []
    expected = case["expected"] if isinstance(case.get("expected"), dict) else resolved
    assert {k: built[k] for k in expected} == expected
    if "expected_args" in case:
        assert expand_argv(container, built) == case["expected_args"]


def test_every_problem_of_every_service_is_listed_at_once() -> None:
    text = textwrap.dedent(SECRETS) + (
        "    Planner: {componentType: planner}\n"
        "    Other:\n"
        "      componentType: worker\n"
        "      extraPodSpec: {mainContainer: {command: [python3, -m, dynamo.vllm]}}\n"
    )
    with pytest.raises(UnrunnableGraph) as exc:
        _plan(text)
    listed = [p.split(":")[0] for p in exc.value.problems]
    assert listed == ["service Planner", "service Other", *["service Worker"] * 4]
