"""The operator holds every rule it grants: the API server's escalation check, which no emulator
enforces (a subject may write a Role only with rules it holds itself, or with ``escalate``).

Every Role rendered for every graph the repository knows (Dynamo's corpus with both multinode
deployers, examples/, and graphs written here to reach each role and mode of the rules table)
is compared rule by rule against the operator's own rules in deploy/: the base install for
GraphDeployments, plus the claim-dynamo component for DynamoGraphDeployments, in both the
cluster-wide and the namespaced variant.
"""

from __future__ import annotations

import functools
import glob
import textwrap
from pathlib import Path
from typing import Any

from drivetrain import rbacrules
from drivetrain.api import InvalidGraph, load_file, load_text
from drivetrain.api.models import GraphDeployment
from drivetrain.rbacrules import Need
from drivetrain.render import render_graph
from tests.kube.test_deploy_manifests import build
from tests.paths import REPO, SHARED

CORPUS = sorted(glob.glob(str(SHARED / "dgd-examples" / "*.yaml")))
EXAMPLES = sorted(glob.glob(str(REPO / "examples" / "*.yaml")))

#: Graphs that reach the roles and modes Dynamo's corpus and examples/ do not.
WRITTEN = {
    "drivetrain-trainer-and-workers": """
        apiVersion: drivetrain.dev/v1alpha1
        kind: GraphDeployment
        metadata: {name: rl}
        spec:
          services:
            Frontend: {componentType: frontend}
            rollout:
              componentType: worker
              extraPodSpec:
                mainContainer: {image: vllm/vllm-openai:v0.11.0, command: [vllm, serve, m]}
            trainer:
              componentType: trainer
              extraPodSpec:
                mainContainer: {image: trainer:1, command: [python3, train.py]}
    """,
    "dynamo-container-mode-frontend-only": """
        apiVersion: nvidia.com/v1alpha1
        kind: DynamoGraphDeployment
        metadata:
          name: fe
          annotations: {nvidia.com/dynamo-kube-discovery-mode: container}
        spec:
          services:
            Frontend:
              componentType: frontend
              extraPodSpec: {mainContainer: {image: dynamo:1}}
    """,
    "dynamo-container-mode-with-planner": """
        apiVersion: nvidia.com/v1alpha1
        kind: DynamoGraphDeployment
        metadata:
          name: cm
          annotations: {nvidia.com/dynamo-kube-discovery-mode: container}
        spec:
          services:
            Frontend:
              componentType: frontend
              extraPodSpec: {mainContainer: {image: dynamo:1}}
            decode:
              componentType: worker
              extraPodSpec:
                mainContainer: {image: dynamo:1, command: [python3, -m, dynamo.mocker]}
            Planner:
              componentType: planner
              extraPodSpec:
                mainContainer: {image: dynamo:1, command: [python3, -m, dynamo.planner]}
    """,
    "dynamo-pod-mode-frontend-only": """
        apiVersion: nvidia.com/v1alpha1
        kind: DynamoGraphDeployment
        metadata: {name: fe2}
        spec:
          services:
            Frontend:
              componentType: frontend
              extraPodSpec: {mainContainer: {image: dynamo:1}}
    """,
}


def _graphs() -> list[tuple[str, GraphDeployment]]:
    out: list[tuple[str, GraphDeployment]] = []
    for path in [*CORPUS, *EXAMPLES]:
        try:
            graphs = load_file(path).graphs
        except InvalidGraph:
            continue  # the corpus test says why each of these does not load
        out += [(Path(path).name, g) for g in graphs]
    for name, text in WRITTEN.items():
        out += [(name, g) for g in load_text(textwrap.dedent(text)).graphs]
    return out


@functools.cache
def _operator_rules(variant: str, dynamo: bool) -> tuple[dict[str, Any], ...]:
    """The rules the operator holds in a graph's namespace, in the install that reconciles it
    (DynamoGraphDeployments: with the claim-dynamo component)."""
    install = f"{variant}+claim-dynamo" if dynamo else variant
    kinds = ("ClusterRole",) if variant == "cluster-wide" else ("Role",)
    return tuple(r for o in build(install) if o["kind"] in kinds for r in o["rules"])


def _granted(objects: list[dict[str, Any]]) -> list[Need]:
    return [
        n for o in objects if o["kind"] == "Role" for r in o["rules"] for n in rbacrules.expand(r)
    ]


def test_the_operator_holds_every_rule_a_rendered_role_grants() -> None:
    graphs = _graphs()
    assert len(graphs) > 80  # the corpus is there (else this proves little)
    every: set[Need] = set()
    for source, graph in graphs:
        for multinode in ("lws", "grove"):
            try:
                objects = render_graph(graph, namespace="team", multinode=multinode)
            except InvalidGraph:
                continue  # the corpus test says why
            granted = _granted(objects)
            every |= set(granted)
            for variant in ("cluster-wide", "namespaced"):
                held = _operator_rules(variant, graph.is_dynamo)
                lacking = rbacrules.missing(granted, held)
                assert not lacking, (
                    f"{source} ({multinode}, {variant}): the operator lacks {lacking}"
                )
    # Every entry of the rules table was rendered by some graph above, so each was compared.
    table = [
        *(n for needs in rbacrules.DRIVETRAIN_DISCOVERY.values() for n in needs),
        *(n for needs in rbacrules.DYNAMO_DISCOVERY.values() for n in needs),
        *rbacrules.TRAINER,
        *rbacrules.TRAINER_WITHOUT_SUBDOMAIN,
    ]
    assert not [n for n in table if n not in every]
    planner = {(n.group, n.resource, n.verb) for n in every if n.name is not None}
    assert {
        ("nvidia.com", "dynamographdeployments", "patch"),
        ("nvidia.com", "dynamographdeploymentscalingadapters/scale", "patch"),
    } <= planner
