"""The RLRun API: strict models, manifests read relative to the run file and inlined, overrides
deep-merged, and every bad input a clear error naming its file and field path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from drivetrain.api import InvalidGraph
from drivetrain.api.rlrun import deep_merge
from drivetrain.api.rlrun_loader import load_runs
from drivetrain.api.rlrun_validate import parse_applied_run

GRAPH = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: before-the-graph}
---
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: serving, labels: {from: manifest}}
spec:
  services:
    Frontend: {componentType: frontend}
    worker:
      componentType: worker
      replicas: 2
      envs: [{name: A, value: "1"}]
      extraPodSpec:
        tolerations: [{key: a, operator: Exists}]
        mainContainer: {args: [worker, --engine, mocker, --model-name, m]}
---
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: second-is-ignored}
"""

RUN = """\
apiVersion: drivetrain.dev/v1alpha1
kind: RLRun
metadata: {name: grpo}
spec:
  image: trainer:1
  imagePullSecrets: [regcred]
  labels: {team: rl}
  graphs:
    policy:
      manifest: graphs/graph.yaml
      labels: {from: run}
      overrides:
        services:
          worker:
            replicas: 3
            extraPodSpec:
              tolerations: [{key: b, operator: Exists}]
  ray:
    cluster:
      spec:
        headGroupSpec:
          rayStartParams: {}
          template:
            spec:
              containers: [{name: ray-head}]
    job:
      entrypoint: python3 train.py
"""


def write(tmp_path: Path, run: str = RUN, graph: str | None = GRAPH) -> Path:
    (tmp_path / "graphs").mkdir(exist_ok=True)
    if graph is not None:
        (tmp_path / "graphs" / "graph.yaml").write_text(graph)
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(run))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(InvalidGraph) as exc:
        load_runs(path)
    return [str(e) for e in exc.value.errors]


def test_the_manifest_is_read_relative_to_the_run_file_and_inlined(tmp_path: Path) -> None:
    (loaded,) = load_runs(write(tmp_path)).runs
    graph = loaded.graphs["policy"]
    assert graph.name == "serving", "the first graph document of the manifest"
    entry = loaded.applied["spec"]["graphs"]["policy"]
    assert "manifest" not in entry
    assert entry["graph"]["metadata"]["name"] == "serving"
    assert entry["overrides"]["services"]["worker"]["replicas"] == 3, "overrides kept apart"


def test_overrides_deep_merge_mappings_and_replace_lists_and_scalars(tmp_path: Path) -> None:
    (loaded,) = load_runs(write(tmp_path)).runs
    worker = loaded.graphs["policy"].document["spec"]["services"]["worker"]
    assert worker["replicas"] == 3
    assert worker["envs"] == [{"name": "A", "value": "1"}], "siblings are kept"
    assert worker["extraPodSpec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2], "d": 3}}) == {
        "a": {"b": 1, "c": [2], "d": 3}
    }
    assert deep_merge({"a": {"b": 1}}, {"a": 5}) == {"a": 5}


def test_labels_image_and_pull_secrets_fill_the_graph_where_it_has_none(tmp_path: Path) -> None:
    (loaded,) = load_runs(write(tmp_path)).runs
    doc = loaded.graphs["policy"].document
    assert doc["metadata"]["labels"] == {"team": "rl", "from": "run"}
    worker = doc["spec"]["services"]["worker"]["extraPodSpec"]
    assert worker["mainContainer"]["image"] == "trainer:1"
    assert worker["imagePullSecrets"] == [{"name": "regcred"}]
    assert "extraPodSpec" not in doc["spec"]["services"]["Frontend"], "its profile's image"


def test_a_name_comes_from_the_entry_then_the_manifest_then_the_run(tmp_path: Path) -> None:
    named = RUN.replace("      labels: {from: run}", "      name: my-graph")
    assert load_runs(write(tmp_path, named)).runs[0].graphs["policy"].name == "my-graph"
    nameless = GRAPH.replace("metadata: {name: serving, labels: {from: manifest}}\n", "")
    nameless = nameless.replace(
        "kind: GraphDeployment\nspec", "kind: GraphDeployment\nmetadata: {}\nspec", 1
    )
    assert load_runs(write(tmp_path, RUN, nameless)).runs[0].graphs["policy"].name == "grpo-policy"


def test_a_missing_manifest_names_the_field_and_where_it_looked(tmp_path: Path) -> None:
    (error,) = errors_of(write(tmp_path, graph=None))
    assert error.startswith(f"{tmp_path / 'run.yaml'} (document 1): spec.graphs.policy.manifest: ")
    assert f"{tmp_path / 'graphs' / 'graph.yaml'} not found" in error
    assert f"relative to {tmp_path}" in error


def test_a_manifest_without_a_graph_says_which_kinds_it_saw(tmp_path: Path) -> None:
    (error,) = errors_of(write(tmp_path, graph=GRAPH.split("---")[0]))
    assert "spec.graphs.policy.manifest:" in error
    assert (
        "has no GraphDeployment or DynamoGraphDeployment document (saw kinds: ['ConfigMap'])"
        in error
    )


def test_an_override_of_an_unknown_service_is_an_error(tmp_path: Path) -> None:
    run = RUN.replace(
        "          worker:\n            replicas: 3", "          wroker:\n            replicas: 3"
    )
    (error,) = errors_of(write(tmp_path, run))
    assert "spec.graphs.policy.overrides.services.wroker: no service 'wroker' in the graph" in error
    assert "(its services: Frontend, worker)" in error


def test_a_ray_cluster_spec_that_fails_kuberays_schema_names_its_path(tmp_path: Path) -> None:
    run = RUN.replace(
        "containers: [{name: ray-head}]",
        "containers: [{name: ray-head, ports: [{containerPort: http}]}]",
    )
    (error,) = errors_of(write(tmp_path, run))
    assert error == (
        f"{tmp_path / 'run.yaml'} (document 1): spec.ray.cluster.spec.headGroupSpec.template.spec"
        ".containers[0].ports[0].containerPort: must be an integer (got 'http')"
    )


def test_an_invalid_merged_graph_names_the_manifest_and_the_run_entry(tmp_path: Path) -> None:
    run = RUN.replace("            replicas: 3", "            replicas: -1")
    (error,) = errors_of(write(tmp_path, run))
    assert error.startswith(
        f"{tmp_path / 'graphs' / 'graph.yaml'} (document 2): spec.services.worker.replicas:"
    )
    assert "(the graph of spec.graphs.policy, overrides merged)" in error


def test_unknown_fields_are_errors_with_paths_and_null_is_absent(tmp_path: Path) -> None:
    run = RUN.replace("  keepGraphs", "").replace(
        "  ray:\n", "  keepGraph: true\n  serviceAccount:\n  ray:\n"
    )
    (error,) = errors_of(write(tmp_path, run))
    assert error.endswith("spec.keepGraph: unknown field")


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        (
            "      entrypoint: python3 train.py",
            "      env: {A: 1}",
            "spec.ray.job.entrypoint",
            "required",
        ),
        (
            "      entrypoint: python3 train.py",
            "      entrypoint: python3 train.py\n      shutdownAfterJobFinishes: false",
            "spec.ray.job.shutdownAfterJobFinishes",
            "KubeRay refuses to suspend",
        ),
        ("  ray:\n", "  ray:\n    mode: raycluster\n", "spec.ray.job", "applies to mode rayjob"),
        (
            "metadata: {name: grpo}",
            "metadata: {name: " + "g" * 48 + "}",
            "metadata.name",
            "KubeRay's 47",
        ),
        ("    policy:\n", "    policy:\n      graph: {}\n", "spec.graphs.policy", "exactly one of"),
        ("    policy:\n", "    9lives:\n", "spec.graphs.9lives", "DRIVETRAIN_FRONTEND_URL_KEY"),
    ],
)
def test_run_rules_name_the_field(
    tmp_path: Path, old: str, new: str, path: str, words: str
) -> None:
    assert old in RUN
    errors = errors_of(write(tmp_path, RUN.replace(old, new)))
    assert any(f": {path}: " in e and words in e for e in errors), errors


def test_the_cluster_never_reads_a_manifest_path() -> None:
    import yaml

    run, graphs, errors = parse_applied_run(yaml.safe_load(RUN))
    assert run is None and graphs == {}
    (error,) = errors
    assert error.path == "spec.graphs.policy.manifest"
    assert "apply the run with `drivetrain apply -f`" in error.message


def test_a_run_file_holds_runs_only(tmp_path: Path) -> None:
    path = write(tmp_path, RUN + "---\n" + GRAPH.split("---\n")[1])
    (error,) = errors_of(path)
    assert (
        "(document 2): kind: a run file holds RLRun documents only (got GraphDeployment)" in error
    )
