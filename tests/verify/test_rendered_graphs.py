"""verify over the renderer's own output: the Dynamo bug written by hand fails, and the same
graph passes once the renderer injects the leader address and rank itself."""

from __future__ import annotations

import textwrap

import pytest

from drivetrain.api import load_text
from drivetrain.render import render_graph
from drivetrain.verify import verify_manifests

GRAPH = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: sg
spec:
  backendFramework: sglang
  services:
    Frontend:
      componentType: frontend
      extraPodSpec:
        mainContainer:
          image: runtime:1
    decode:
      componentType: worker
      replicas: 2
      multinode:
        nodeCount: 3
      resources:
        limits:
          gpu: "4"
      extraPodSpec:
        mainContainer:
          image: runtime:1
          command: [python3, -m, dynamo.sglang]
          args: [--model-path, Qwen/Qwen3-0.6B, --tp-size, "12"{extra}]
"""


def render(extra: str, multinode: str) -> list[dict]:
    (graph,) = load_text(textwrap.dedent(GRAPH.replace("{extra}", extra))).graphs
    return render_graph(graph, namespace="dyn", multinode=multinode)


@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_renderer_injection_passes_for_every_rank(multinode: str) -> None:
    report = verify_manifests(render("", multinode))
    assert report.ok, "\n".join(map(str, report.problems))
    ranks = sorted(p.rank for p in report.processes if p.rank is not None)
    assert ranks == [0, 0, 1, 1, 2, 2]  # two groups of three


def test_bare_lws_leader_address_in_exec_args_fails_naming_the_token() -> None:
    report = verify_manifests(render(", --dist-init-addr, $LWS_LEADER_ADDRESS:29500", "lws"))
    assert not report.ok
    assert any(p.token == "$LWS_LEADER_ADDRESS:29500" for p in report.problems)
