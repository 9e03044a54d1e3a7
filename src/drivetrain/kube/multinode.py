"""Which multinode API a graph uses: the spec's choice, else what the cluster serves."""

from __future__ import annotations

from dataclasses import dataclass

from drivetrain.api.models import GraphDeployment
from drivetrain.kube.resources import GROVE_GROUP, LWS_GROUP
from drivetrain.render import graph_needs_multinode, spec_deployer

GROUP_OF = {"lws": LWS_GROUP, "grove": GROVE_GROUP}
NAME_OF = {"lws": "LeaderWorkerSet (leaderworkerset.x-k8s.io)", "grove": "Grove (grove.io)"}


@dataclass(frozen=True)
class Choice:
    deployer: str | None  # "lws" / "grove" / None when no multinode API can be used
    problem: str | None = None  # why the graph cannot be deployed, when it cannot


def choose(graph: GraphDeployment, installed_groups: set[str]) -> Choice:
    """Spec's choice, else LeaderWorkerSet, else Grove; a graph that needs none gets "lws"
    (the renderer then makes plain Deployments and no LeaderWorkerSet)."""
    wanted = spec_deployer(graph)
    needs = graph_needs_multinode(graph)
    if wanted is not None:
        if GROUP_OF[wanted] not in installed_groups and (needs or wanted == "grove"):
            return Choice(None, f"the spec asks for {NAME_OF[wanted]}, which is not installed")
        return Choice(wanted)
    if not needs:
        return Choice("lws")
    for deployer in ("lws", "grove"):
        if GROUP_OF[deployer] in installed_groups:
            return Choice(deployer)
    names = [s for s, svc in graph.spec.services.items() if svc.node_count > 1]
    return Choice(
        None,
        f"service(s) {', '.join(names)} need a multinode API and neither "
        f"{NAME_OF['lws']} nor {NAME_OF['grove']} is installed",
    )
