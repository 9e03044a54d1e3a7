"""Which multinode API a graph gets: the spec's, else LeaderWorkerSet, else Grove, else failed."""

from __future__ import annotations

import pytest

from drivetrain.api import parse_graph
from drivetrain.kube.multinode import choose

LWS, GROVE = "leaderworkerset.x-k8s.io", "grove.io"


def graph(node_count: int = 1, deployer: str | None = None):
    multinode: dict = {"nodeCount": node_count}
    if deployer:
        multinode["deployer"] = deployer
    worker = {
        "componentType": "worker",
        "extraPodSpec": {"mainContainer": {"image": "x:1"}},
        **({"multinode": multinode} if node_count > 1 or deployer else {}),
    }
    return parse_graph(
        {
            "apiVersion": "drivetrain.dev/v1alpha1",
            "kind": "GraphDeployment",
            "metadata": {"name": "g"},
            "spec": {"backendFramework": "sglang", "services": {"w": worker}},
        }
    )


@pytest.mark.parametrize(
    ("installed", "expected"),
    [({LWS, GROVE}, "lws"), ({GROVE}, "grove"), ({LWS}, "lws")],
)
def test_installed_apis_decide_when_the_spec_does_not(installed: set[str], expected: str) -> None:
    assert choose(graph(2), installed).deployer == expected


def test_the_spec_choice_wins_over_what_is_installed_first() -> None:
    assert choose(graph(2, "grove"), {LWS, GROVE}).deployer == "grove"


def test_needing_multinode_with_nothing_installed_is_a_problem_naming_the_service() -> None:
    c = choose(graph(2), set())
    assert c.deployer is None
    assert "w" in (c.problem or "") and "LeaderWorkerSet" in (c.problem or "")


def test_a_spec_choice_that_is_not_installed_is_a_problem() -> None:
    c = choose(graph(2, "grove"), {LWS})
    assert c.deployer is None and "Grove" in (c.problem or "")


def test_a_single_node_graph_needs_no_multinode_api() -> None:
    assert choose(graph(1), set()).deployer == "lws"
