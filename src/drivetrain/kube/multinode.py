"""Which multinode API a graph uses: the spec's choice, else what the cluster serves."""

from __future__ import annotations

from dataclasses import dataclass

from drivetrain.api.models import Deployer, GraphDeployment
from drivetrain.kube.resources import GROVE_GROUP, LWS_GROUP
from drivetrain.render import graph_needs_multinode, spec_deployer

GROUP_OF = {Deployer.lws: LWS_GROUP, Deployer.grove: GROVE_GROUP}
NAME_OF = {
    Deployer.lws: "LeaderWorkerSet (leaderworkerset.x-k8s.io)",
    Deployer.grove: "Grove (grove.io)",
}


@dataclass(frozen=True)
class Choice:
    deployer: Deployer | None  # None when no multinode API can be used
    problem: str | None = None  # why the graph cannot be deployed, when it cannot


def choose(graph: GraphDeployment, installed_groups: set[str]) -> Choice:
    """Spec's choice, else LeaderWorkerSet, else Grove; a graph that needs none gets "lws"
    (the renderer then makes plain Deployments and no LeaderWorkerSet)."""
    wanted = spec_deployer(graph)
    needs = graph_needs_multinode(graph)
    if wanted is not None:
        if GROUP_OF[wanted] not in installed_groups and (needs or wanted is Deployer.grove):
            return Choice(None, f"the spec asks for {NAME_OF[wanted]}, which is not installed")
        return Choice(wanted)
    if not needs:
        return Choice(Deployer.lws)
    for deployer in Deployer:
        if GROUP_OF[deployer] in installed_groups:
            return Choice(deployer)
    names = [s for s, svc in graph.spec.services.items() if svc.node_count > 1]
    return Choice(
        None,
        f"service(s) {', '.join(names)} need a multinode API and neither "
        f"{NAME_OF[Deployer.lws]} nor {NAME_OF[Deployer.grove]} is installed",
    )
