"""Concrete pods of each rendered workload, with what their controllers inject.

A Deployment gives one representative pod.  A LeaderWorkerSet gives, per group, the leader
(worker index 0) and workers 1..size-1 with ``LWS_LEADER_ADDRESS``, ``LWS_GROUP_SIZE`` and
``LWS_WORKER_INDEX``.  A Grove PodCliqueSet gives every pod of every clique with the
``GROVE_*`` variables.  Each pod knows its own DNS name, so checks can compare the address
a worker dials with the address its leader really has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pod:
    workload: str  # "LeaderWorkerSet/foo"
    name: str
    spec: dict[str, Any]
    role: str  # main | leader | worker
    group: str | None  # the multinode group this pod belongs to, if any
    rank: int  # the pod's index in its group (leader 0)
    address: str  # the pod's own DNS name
    leader_address: str | None  # the group leader's DNS name
    group_size: int
    ip: str
    namespace: str
    controller_env: list[tuple[str, str]] = field(default_factory=list)

    def field(self, path: str) -> str:
        return {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": f"uid-{self.name}",
            "status.podIP": self.ip,
            "spec.nodeName": "node-1",
            "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
        }.get(path, f"<{path}>")


#: How many replicas of a multinode group to walk (the first two prove indexing).
GROUPS_TO_WALK = 2


def pods_of(obj: dict[str, Any]) -> Iterator[Pod]:
    kind = obj.get("kind")
    if kind == "Deployment":
        yield from _deployment(obj)
    elif kind == "LeaderWorkerSet":
        yield from _lws(obj)
    elif kind == "PodCliqueSet":
        yield from _pcs(obj)


def _ns(obj: dict[str, Any]) -> str:
    return obj["metadata"].get("namespace") or "default"


def _deployment(obj: dict[str, Any]) -> Iterator[Pod]:
    name = obj["metadata"]["name"]
    yield Pod(
        workload=f"Deployment/{name}",
        name=f"{name}-0",
        spec=obj["spec"]["template"]["spec"],
        role="main",
        group=None,
        rank=0,
        address=f"{name}-0",
        leader_address=None,
        group_size=1,
        ip="10.1.0.1",
        namespace=_ns(obj),
    )


def _lws(obj: dict[str, Any]) -> Iterator[Pod]:
    name, ns = obj["metadata"]["name"], _ns(obj)
    template = obj["spec"]["leaderWorkerTemplate"]
    size = template.get("size", 1)
    groups = min(obj["spec"].get("replicas", 1), GROUPS_TO_WALK)
    for g in range(groups):
        leader_address = f"{name}-{g}.{name}.{ns}"
        for index in range(size):
            role = "leader" if index == 0 else "worker"
            tmpl = template["leaderTemplate"] if index == 0 else template["workerTemplate"]
            pod_name = f"{name}-{g}" if index == 0 else f"{name}-{g}-{index}"
            yield Pod(
                workload=f"LeaderWorkerSet/{name}",
                name=pod_name,
                spec=tmpl["spec"],
                role=role,
                group=f"{name}-{g}",
                rank=index,
                address=f"{pod_name}.{name}.{ns}",
                leader_address=leader_address,
                group_size=size,
                ip=f"10.2.{g}.{index + 1}",
                namespace=ns,
                controller_env=[
                    ("LWS_LEADER_ADDRESS", leader_address),
                    ("LWS_GROUP_SIZE", str(size)),
                    ("LWS_WORKER_INDEX", str(index)),
                ],
            )


def _pcs(obj: dict[str, Any]) -> Iterator[Pod]:
    pcs, ns = obj["metadata"]["name"], _ns(obj)
    template = obj["spec"]["template"]
    headless = f"{pcs}-0.{ns}.svc.cluster.local"
    cliques = {c["name"]: c for c in template.get("cliques", [])}
    in_group: dict[str, dict[str, Any]] = {}
    for group in template.get("podCliqueScalingGroups", []):
        for clique in group.get("cliqueNames", []):
            in_group[clique] = group
    base = [("GROVE_PCS_NAME", pcs), ("GROVE_PCS_INDEX", "0"), ("GROVE_HEADLESS_SERVICE", headless)]
    for name, clique in cliques.items():
        if name in in_group:
            continue
        replicas = clique["spec"].get("replicas", 1)
        for i in range(min(replicas, GROUPS_TO_WALK)):
            pclq = f"{pcs}-0-{name}"
            yield Pod(
                workload=f"PodCliqueSet/{pcs}",
                name=f"{pclq}-{i}",
                spec=clique["spec"]["podSpec"],
                role="main",
                group=None,
                rank=0,
                address=f"{pclq}-{i}.{headless}",
                leader_address=None,
                group_size=1,
                ip=f"10.3.0.{i + 1}",
                namespace=ns,
                controller_env=[*base, ("GROVE_PCLQ_NAME", pclq), ("GROVE_PCLQ_POD_INDEX", str(i))],
            )
    for group in template.get("podCliqueScalingGroups", []):
        names = group["cliqueNames"]
        pcsg = f"{pcs}-0-{group['name']}"
        size = sum(cliques[c]["spec"].get("replicas", 1) for c in names if c in cliques)
        for g in range(min(group.get("replicas", 1), GROUPS_TO_WALK)):
            leader_clique = names[0]
            leader_address = f"{pcsg}-{g}-{leader_clique}-0.{headless}"
            rank = 0
            for clique_name in names:
                clique = cliques[clique_name]
                pclq = f"{pcsg}-{g}-{clique_name}"
                for i in range(clique["spec"].get("replicas", 1)):
                    role = "leader" if clique_name == leader_clique else "worker"
                    yield Pod(
                        workload=f"PodCliqueSet/{pcs}",
                        name=f"{pclq}-{i}",
                        spec=clique["spec"]["podSpec"],
                        role=role,
                        group=f"{pcsg}-{g}",
                        rank=rank,
                        address=f"{pclq}-{i}.{headless}",
                        leader_address=leader_address,
                        group_size=size,
                        ip=f"10.4.{g}.{rank + 1}",
                        namespace=ns,
                        controller_env=[
                            *base,
                            ("GROVE_PCSG_NAME", pcsg),
                            ("GROVE_PCSG_INDEX", str(g)),
                            ("GROVE_PCSG_TEMPLATE_NUM_PODS", str(size)),
                            ("GROVE_PCLQ_NAME", pclq),
                            ("GROVE_PCLQ_POD_INDEX", str(i)),
                        ],
                    )
                    rank += 1
