"""Loading graph files: multi-document YAML, both kinds, and errors that say where."""

from __future__ import annotations

import textwrap

import pytest

from drivetrain.api import InvalidGraph, load_file, load_text

GRAPH = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: demo}
spec:
  services:
    Frontend:
      componentType: frontend
    worker:
      componentType: worker
      replicas: 2
      extraPodSpec:
        mainContainer:
          image: example/worker:1
          command: [drivetrain, worker]
          args: [--engine, mocker, --model-name, tiny]
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(InvalidGraph) as info:
        load_text(textwrap.dedent(text), "graph.yaml")
    return [str(e) for e in info.value.errors]


def test_a_graph_loads_with_its_services_in_written_order() -> None:
    loaded = load_text(GRAPH, "graph.yaml")
    (graph,) = loaded.graphs
    assert graph.name == "demo"
    assert list(graph.spec.services) == ["Frontend", "worker"]
    assert graph.spec.services["worker"].replica_count == 2
    assert graph.profile.value == "drivetrain"


def test_dynamo_graphs_are_accepted_and_use_the_dynamo_profile() -> None:
    text = GRAPH.replace("drivetrain.dev/v1alpha1", "nvidia.com/v1alpha1").replace(
        "kind: GraphDeployment", "kind: DynamoGraphDeployment"
    )
    (graph,) = load_text(text).graphs
    assert graph.is_dynamo
    assert graph.profile.value == "dynamo"


def test_a_spec_field_selects_the_dynamo_profile_for_a_graph_deployment() -> None:
    text = GRAPH.replace("spec:\n", "spec:\n  profile: dynamo\n")
    (graph,) = load_text(text).graphs
    assert graph.profile.value == "dynamo"


def test_several_documents_load_and_other_kinds_are_kept_beside_the_graphs() -> None:
    config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n"
    second = GRAPH.replace("name: demo", "name: other")
    loaded = load_text(f"{GRAPH}\n---\n{config_map}---\n{second}")
    assert [g.name for g in loaded.graphs] == ["demo", "other"]
    assert loaded.documents == [0, 2]
    assert [s.describe() for s in loaded.siblings] == ["document 2: ConfigMap extra"]
    assert loaded.siblings[0].obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "extra"},
    }


def test_null_values_count_as_absent() -> None:
    text = GRAPH.replace(
        "      componentType: frontend\n",
        "      componentType: frontend\n      subComponentType:\n      extraPodSpec:\n"
        "        containers:\n",
    )
    (graph,) = load_text(text).graphs
    frontend = graph.spec.services["Frontend"]
    assert frontend.subComponentType is None


def test_yaml_that_does_not_parse_names_line_and_column() -> None:
    (message,) = errors_of("apiVersion: v1\nkind: [unclosed\nmetadata: {}\n")
    assert message.startswith("graph.yaml:3:9: YAML does not parse")


def test_an_unknown_field_is_named_by_its_path() -> None:
    (message,) = errors_of(GRAPH.replace("      replicas: 2", "      replica: 2"))
    assert "spec.services.worker.replica: unknown field" in message
    assert "(document 1)" in message


def test_a_wrong_type_says_what_was_expected() -> None:
    (message,) = errors_of(GRAPH.replace("replicas: 2", "replicas: two"))
    assert "spec.services.worker.replicas: must be a valid integer" in message
    assert "'two'" in message


def test_node_count_under_multinode_must_be_at_least_two() -> None:
    text = GRAPH.replace("      replicas: 2", "      replicas: 2\n      multinode: {nodeCount: 1}")
    (message,) = errors_of(text)
    assert "spec.services.worker.multinode.nodeCount" in message
    assert "greater than or equal to 2" in message


def test_every_error_of_every_document_is_reported() -> None:
    bad_a = GRAPH.replace("replicas: 2", "replicas: -1")
    bad_b = GRAPH.replace("componentType: frontend", "componentType: gateway")
    messages = errors_of(f"{bad_a}---\n{bad_b}")
    assert any("(document 1)" in m and "replicas" in m for m in messages)
    assert any("(document 2)" in m and "componentType: must be one of" in m for m in messages)


def test_unknown_pod_spec_and_container_fields_are_named() -> None:
    text = GRAPH.replace(
        "        mainContainer:\n",
        "        nodeSelectr: {a: b}\n        mainContainer:\n          imagePullPolcy: Always\n",
    )
    messages = errors_of(text)
    assert any("extraPodSpec.nodeSelectr: unknown field" in m for m in messages)
    assert any("mainContainer.imagePullPolcy: unknown field" in m for m in messages)


def test_shared_memory_needs_a_size_unless_disabled() -> None:
    text = GRAPH.replace("      replicas: 2", "      replicas: 2\n      sharedMemory: {}")
    (message,) = errors_of(text)
    assert "sharedMemory.size: required unless disabled" in message


def test_the_vllm_executor_annotation_must_be_mp_or_ray() -> None:
    text = GRAPH.replace(
        "metadata: {name: demo}",
        "metadata:\n  name: demo\n  annotations:\n"
        "    nvidia.com/vllm-distributed-executor-backend: nccl",
    )
    (message,) = errors_of(text)
    assert "must be mp or ray" in message


def test_a_missing_file_is_an_error_not_a_traceback(tmp_path) -> None:
    with pytest.raises(InvalidGraph) as info:
        load_file(tmp_path / "nope.yaml")
    assert str(info.value).endswith("file not found")


def test_a_file_without_graphs_is_an_error() -> None:
    (message,) = errors_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert "no GraphDeployment or DynamoGraphDeployment document found" in message


def test_a_graph_deployment_must_carry_its_own_api_version() -> None:
    (message,) = errors_of(GRAPH.replace("drivetrain.dev/v1alpha1", "nvidia.com/v1alpha1"))
    assert "apiVersion: must be drivetrain.dev/v1alpha1 for kind GraphDeployment" in message
