"""Turn rendered workloads into the concrete pods their controllers would create.

Names, hostnames and injected env follow the controllers' sources:

* LeaderWorkerSet (kubernetes-sigs/lws ``pkg/utils/pod/pod_utils.go`` ``AddLWSVariables``,
  ``pkg/controllers``): group ``g`` has a leader StatefulSet pod ``<lws>-<g>`` and worker pods
  ``<lws>-<g>-<i>`` (i = 1..size-1); hostname = pod name; subdomain = ``<lws>`` (policy
  ``Shared``, the default) or ``<lws>-<g>`` (``UniquePerReplica``). Env, *prepended*:
  ``LWS_LEADER_ADDRESS=<lws>-<g>.<subdomain>.<ns>``, ``LWS_GROUP_SIZE=<size>``,
  ``LWS_WORKER_INDEX=<i>``.
* Grove PodCliqueSet (ai-dynamo/grove ``internal/component/podclique/pod``
  ``addEnvironmentVariables``/``configurePodHostname``, ``api/common`` naming): PodClique
  ``<pcs>-<k>-<clique>`` or, inside a scaling group, ``<pcs>-<k>-<pcsg>-<j>-<clique>``; hostname
  ``<pclq>-<podIndex>``; subdomain = headless service ``<pcs>-<k>``. Env, *appended*: the scaling
  group's ``GROVE_PCSG_NAME=<pcs>-<k>-<pcsg>``, ``GROVE_PCSG_TEMPLATE_NUM_PODS``,
  ``GROVE_PCSG_INDEX`` (on the PodClique template), then per pod ``GROVE_PCS_NAME``,
  ``GROVE_PCS_INDEX``, ``GROVE_PCLQ_NAME``,
  ``GROVE_HEADLESS_SERVICE=<pcs>-<k>.<ns>.svc.cluster.local``, ``GROVE_PCLQ_POD_INDEX`` and
  (newer Grove) ``GROVE_PCSG_POD_INDEX``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drivetrain.verify.expansion import ControllerEnv, PodFacts

LWS_API = "leaderworkerset.x-k8s.io/v1"
GROVE_API = "grove.io/v1alpha1"

# Replicas of a group/set that verify simulates: the first, and the second when there is one
# (enough to catch an index that is hard-coded to 0); further replicas differ only in the index.
MAX_REPLICAS_SIMULATED = 2


@dataclass(frozen=True)
class Group:
    """One multinode group: the pods that must form one distributed process group."""

    key: str  # e.g. "LeaderWorkerSet/g-worker group 1"
    size: int


@dataclass
class Pod:
    """One concrete pod of a workload."""

    workload: str  # "<Kind>/<name>"
    role: str  # service / clique and leader|worker
    facts: PodFacts
    spec: Mapping[str, Any]
    controller_env: ControllerEnv
    subdomain: str | None = None
    group: Group | None = None
    is_leader: bool = False
    member_index: int = 0  # position inside the group (LWS worker index, Grove PCSG pod index)
    dns_names: frozenset[str] = field(default_factory=frozenset)


class _IPs:
    """Hands out distinct fake pod IPs in the order pods are enumerated."""

    def __init__(self) -> None:
        self._next = 0

    def take(self) -> str:
        self._next += 1
        return f"10.244.{self._next // 250}.{self._next % 250 + 2}"


def dns_names(hostname: str, subdomain: str | None, namespace: str) -> frozenset[str]:
    """Every spelling of a pod's DNS name that resolves from a pod in the same namespace."""
    if not subdomain:
        return frozenset()
    base = f"{hostname}.{subdomain}"
    return frozenset(
        {
            base,
            f"{base}.{namespace}",
            f"{base}.{namespace}.svc",
            f"{base}.{namespace}.svc.cluster.local",
        }
    )


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("name", "")), str(meta.get("namespace") or "default")


def _template(
    tpl: Mapping[str, Any] | None,
) -> tuple[Mapping[str, Any], dict[str, str], dict[str, str]]:
    tpl = tpl or {}
    meta = tpl.get("metadata") or {}
    return (
        tpl.get("spec") or {},
        dict(meta.get("labels") or {}),
        dict(meta.get("annotations") or {}),
    )


def deployment_pods(obj: Mapping[str, Any], ips: _IPs) -> Iterator[Pod]:
    name, ns = _meta(obj)
    spec, labels, annotations = _template((obj.get("spec") or {}).get("template"))
    pod_name = f"{name}-5d8f7c9b4-x7k2p"  # a ReplicaSet pod: hash and random suffix
    facts = PodFacts(
        name=pod_name,
        namespace=ns,
        ip=ips.take(),
        hostname=pod_name,
        labels=labels,
        annotations=annotations,
        service_account=str(spec.get("serviceAccountName") or "default"),
    )
    yield Pod(
        workload=f"Deployment/{name}",
        role=name,
        facts=facts,
        spec=spec,
        controller_env=ControllerEnv(),
    )


def lws_pods(obj: Mapping[str, Any], ips: _IPs) -> Iterator[Pod]:
    name, ns = _meta(obj)
    spec = obj.get("spec") or {}
    lwt = spec.get("leaderWorkerTemplate") or {}
    size = int(lwt.get("size") or 1)
    replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
    policy = ((spec.get("networkConfig") or {}).get("subdomainPolicy")) or "Shared"
    worker_tpl = lwt.get("workerTemplate")
    leader_tpl = lwt.get("leaderTemplate") or worker_tpl
    for g in range(min(replicas, MAX_REPLICAS_SIMULATED)):
        subdomain = f"{name}-{g}" if policy == "UniquePerReplica" else name
        leader_address = f"{name}-{g}.{subdomain}.{ns}"
        group = Group(key=f"LeaderWorkerSet/{name} group {g}", size=size)
        for index in range(size):
            tpl = leader_tpl if index == 0 else worker_tpl
            pod_spec, labels, annotations = _template(tpl)
            pod_name = f"{name}-{g}" if index == 0 else f"{name}-{g}-{index}"
            labels |= {
                "leaderworkerset.sigs.k8s.io/name": name,
                "leaderworkerset.sigs.k8s.io/group-index": str(g),
                "leaderworkerset.sigs.k8s.io/worker-index": str(index),
            }
            annotations |= {"leaderworkerset.sigs.k8s.io/size": str(size)}
            env = ControllerEnv(
                entries=(
                    {"name": "LWS_LEADER_ADDRESS", "value": leader_address},
                    {"name": "LWS_GROUP_SIZE", "value": str(size)},
                    {"name": "LWS_WORKER_INDEX", "value": str(index)},
                ),
                placement="prepend",
            )
            facts = PodFacts(
                name=pod_name,
                namespace=ns,
                ip=ips.take(),
                hostname=pod_name,
                labels=labels,
                annotations=annotations,
                service_account=str(pod_spec.get("serviceAccountName") or "default"),
            )
            yield Pod(
                workload=f"LeaderWorkerSet/{name}",
                role=f"{name} {'leader' if index == 0 else 'worker'}",
                facts=facts,
                spec=pod_spec,
                controller_env=env,
                subdomain=subdomain,
                group=group if size > 1 else None,
                is_leader=index == 0,
                member_index=index,
                dns_names=dns_names(pod_name, subdomain, ns),
            )


def _is_leader_clique(clique: Mapping[str, Any]) -> bool:
    name = str(clique.get("name", ""))
    role = str((clique.get("spec") or {}).get("roleName", ""))
    return name.endswith("-ldr") or name.endswith("leader") or "leader" in role.lower()


def grove_pods(obj: Mapping[str, Any], ips: _IPs) -> Iterator[Pod]:
    pcs, ns = _meta(obj)
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    cliques = {str(c.get("name")): c for c in template.get("cliques") or []}
    groups = template.get("podCliqueScalingGroups") or []
    grouped = {str(n) for g in groups for n in g.get("cliqueNames") or []}
    replicas = int(spec.get("replicas") or 1)
    for k in range(min(replicas, MAX_REPLICAS_SIMULATED)):
        headless = f"{pcs}-{k}"
        for clique_name, clique in cliques.items():
            if clique_name in grouped:
                continue
            yield from _clique_pods(
                pcs,
                k,
                ns,
                headless,
                clique,
                f"{pcs}-{k}-{clique_name}",
                pcsg_env=(),
                group=None,
                offset=0,
                ips=ips,
            )
        for sg in groups:
            sg_name = str(sg.get("name"))
            members = [cliques[n] for n in sg.get("cliqueNames") or [] if n in cliques]
            leaders = [c for c in members if _is_leader_clique(c)]
            # The leader's pods come first, so the group's index 0 is the leader.
            members = leaders + [c for c in members if c not in leaders]
            num_pods = sum(int((c.get("spec") or {}).get("replicas") or 1) for c in members)
            for j in range(min(int(sg.get("replicas") or 1), MAX_REPLICAS_SIMULATED)):
                group = Group(key=f"PodCliqueSet/{pcs} scaling group {sg_name} {j}", size=num_pods)
                pcsg_env = (
                    {"name": "GROVE_PCSG_NAME", "value": f"{pcs}-{k}-{sg_name}"},
                    {"name": "GROVE_PCSG_TEMPLATE_NUM_PODS", "value": str(num_pods)},
                    {"name": "GROVE_PCSG_INDEX", "value": str(j)},
                )
                offset = 0
                for clique in members:
                    pclq = f"{pcs}-{k}-{sg_name}-{j}-{clique.get('name')}"
                    yield from _clique_pods(
                        pcs,
                        k,
                        ns,
                        headless,
                        clique,
                        pclq,
                        pcsg_env=pcsg_env,
                        group=group,
                        offset=offset,
                        ips=ips,
                        leader_clique=bool(leaders) and clique is leaders[0],
                    )
                    offset += int((clique.get("spec") or {}).get("replicas") or 1)


def _clique_pods(
    pcs: str,
    k: int,
    ns: str,
    headless: str,
    clique: Mapping[str, Any],
    pclq: str,
    *,
    pcsg_env: tuple[dict[str, Any], ...],
    group: Group | None,
    offset: int,
    ips: _IPs,
    leader_clique: bool = False,
) -> Iterator[Pod]:
    cspec = clique.get("spec") or {}
    pod_spec = cspec.get("podSpec") or {}
    count = int(cspec.get("replicas") or 1)
    labels = dict(clique.get("labels") or {})
    annotations = dict(clique.get("annotations") or {})
    for index in range(count):
        hostname = f"{pclq}-{index}"
        entries = (
            *pcsg_env,
            {"name": "GROVE_PCS_NAME", "value": pcs},
            {"name": "GROVE_PCS_INDEX", "value": str(k)},
            {"name": "GROVE_PCLQ_NAME", "value": pclq},
            {"name": "GROVE_HEADLESS_SERVICE", "value": f"{headless}.{ns}.svc.cluster.local"},
            {"name": "GROVE_PCLQ_POD_INDEX", "value": str(index)},
        )
        if group is not None:
            entries = (*entries, {"name": "GROVE_PCSG_POD_INDEX", "value": str(offset + index)})
        facts = PodFacts(
            name=f"{pclq}-{_suffix(index)}",
            namespace=ns,
            ip=ips.take(),
            hostname=hostname,
            labels=labels,
            annotations=annotations,
            service_account=str(pod_spec.get("serviceAccountName") or "default"),
        )
        role = str(cspec.get("roleName") or clique.get("name"))
        yield Pod(
            workload=f"PodCliqueSet/{pcs}",
            role=f"{clique.get('name')} ({role})",
            facts=facts,
            spec=pod_spec,
            controller_env=ControllerEnv(entries=entries, placement="append"),
            subdomain=headless,
            group=group,
            is_leader=leader_clique and index == 0,
            member_index=offset + index,
            dns_names=dns_names(hostname, headless, ns),
        )


def _suffix(index: int) -> str:
    # Grove names pods with generateName; a fixed suffix keeps reports reproducible.
    return "abcde"[index % 5] + f"{index:04d}"


def enumerate_pods(manifests: Sequence[Mapping[str, Any]]) -> Iterator[Pod]:
    """Every pod verify simulates, in manifest order."""
    ips = _IPs()
    for obj in manifests:
        kind = obj.get("kind")
        api = obj.get("apiVersion")
        if kind == "Deployment":
            yield from deployment_pods(obj, ips)
        elif kind == "LeaderWorkerSet" and api == LWS_API:
            yield from lws_pods(obj, ips)
        elif kind == "PodCliqueSet" and api == GROVE_API:
            yield from grove_pods(obj, ips)
