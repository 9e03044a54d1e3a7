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

from collections.abc import Callable, Iterator, Mapping, Sequence
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


def replicated_pods(obj: Mapping[str, Any], ips: _IPs) -> Iterator[Pod]:
    """Deployment, ReplicaSet, DaemonSet: one representative pod (every replica is the same)."""
    name, ns = _meta(obj)
    spec, labels, annotations = _template((obj.get("spec") or {}).get("template"))
    # A Deployment's pods are its ReplicaSet's: template hash, then a random suffix.
    suffix = "5d8f7c9b4-x7k2p" if obj.get("kind") == "Deployment" else "x7k2p"
    pod_name = f"{name}-{suffix}"
    facts = _facts(pod_name, ns, ips, spec, labels, annotations)
    yield Pod(
        workload=f"{obj.get('kind')}/{name}",
        role=name,
        facts=facts,
        spec=spec,
        controller_env=ControllerEnv(),
    )


def statefulset_pods(obj: Mapping[str, Any], ips: _IPs) -> Iterator[Pod]:
    """``<sts>-<ordinal>``, hostname = pod name, subdomain = ``serviceName`` (kubernetes
    ``pkg/controller/statefulset/stateful_set_utils.go`` ``newStatefulSetPod``)."""
    name, ns = _meta(obj)
    spec = obj.get("spec") or {}
    pod_spec, labels, annotations = _template(spec.get("template"))
    replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
    subdomain = str(spec.get("serviceName") or "") or None
    for ordinal in range(min(replicas, MAX_REPLICAS_SIMULATED)):
        pod_name = f"{name}-{ordinal}"
        pod_labels = labels | {
            "statefulset.kubernetes.io/pod-name": pod_name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        }
        yield Pod(
            workload=f"StatefulSet/{name}",
            role=name,
            facts=_facts(pod_name, ns, ips, pod_spec, pod_labels, annotations),
            spec=pod_spec,
            controller_env=ControllerEnv(),
            subdomain=subdomain,
            member_index=ordinal,
            dns_names=dns_names(pod_name, subdomain, ns),
        )


JOB_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def job_pods(
    obj: Mapping[str, Any], ips: _IPs, spec: Mapping[str, Any] | None = None
) -> Iterator[Pod]:
    """A Job's pods (``spec`` given: a CronJob's job template).

    NonIndexed: one representative pod. Indexed (kubernetes ``pkg/controller/job``
    ``indexed_job_utils.go``): pod ``<job>-<i>-<suffix>`` with hostname ``<job>-<i>``, the index
    in an annotation and a label, and ``JOB_COMPLETION_INDEX`` (a fieldRef to that annotation)
    appended to every container that does not set it itself.
    """
    name, ns = _meta(obj)
    kind = str(obj.get("kind"))
    spec = spec if spec is not None else obj.get("spec") or {}
    pod_spec, labels, annotations = _template(spec.get("template"))
    if spec.get("completionMode") != "Indexed":
        pod_name = f"{name}-x7k2p"
        yield Pod(
            workload=f"{kind}/{name}",
            role=name,
            facts=_facts(pod_name, ns, ips, pod_spec, labels, annotations),
            spec=pod_spec,
            controller_env=ControllerEnv(),
        )
        return
    completions = int(spec.get("completions") or 1)
    subdomain = str(pod_spec.get("subdomain") or "") or None
    index_env = {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{JOB_INDEX_ANNOTATION}']"}},
    }
    for index in range(min(completions, MAX_REPLICAS_SIMULATED)):
        hostname = f"{name}-{index}"
        facts = _facts(
            f"{hostname}-x7k2p",
            ns,
            ips,
            pod_spec,
            labels | {JOB_INDEX_ANNOTATION: str(index)},
            annotations | {JOB_INDEX_ANNOTATION: str(index)},
            hostname=hostname,
        )
        yield Pod(
            workload=f"{kind}/{name}",
            role=f"{name} index {index}",
            facts=facts,
            spec=pod_spec,
            controller_env=ControllerEnv(entries=(index_env,), placement="append", replace=False),
            subdomain=subdomain,
            member_index=index,
            dns_names=dns_names(hostname, subdomain, ns),
        )


def cronjob_pods(obj: Mapping[str, Any], ips: _IPs) -> Iterator[Pod]:
    """A CronJob: the pods of one Job made from its ``jobTemplate``."""
    template = (obj.get("spec") or {}).get("jobTemplate") or {}
    yield from job_pods(obj, ips, template.get("spec") or {})


def bare_pods(obj: Mapping[str, Any], ips: _IPs) -> Iterator[Pod]:
    """A Pod as written: hostname ``spec.hostname`` or its name, subdomain ``spec.subdomain``."""
    name, ns = _meta(obj)
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    hostname = str(spec.get("hostname") or name)
    subdomain = str(spec.get("subdomain") or "") or None
    facts = _facts(
        name,
        ns,
        ips,
        spec,
        dict(meta.get("labels") or {}),
        dict(meta.get("annotations") or {}),
        hostname=hostname,
    )
    yield Pod(
        workload=f"Pod/{name}",
        role=name,
        facts=facts,
        spec=spec,
        controller_env=ControllerEnv(),
        subdomain=subdomain,
        dns_names=dns_names(hostname, subdomain, ns),
    )


def _facts(
    name: str,
    namespace: str,
    ips: _IPs,
    spec: Mapping[str, Any],
    labels: dict[str, str],
    annotations: dict[str, str],
    hostname: str | None = None,
) -> PodFacts:
    return PodFacts(
        name=name,
        namespace=namespace,
        ip=ips.take(),
        hostname=hostname or name,
        labels=labels,
        annotations=annotations,
        service_account=str(spec.get("serviceAccountName") or "default"),
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
            facts = _facts(pod_name, ns, ips, pod_spec, labels, annotations)
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
        facts = _facts(
            f"{pclq}-{_suffix(index)}", ns, ips, pod_spec, labels, annotations, hostname=hostname
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


Producer = Callable[[Mapping[str, Any], _IPs], Iterator[Pod]]

#: Workload kinds verify simulates: ``(apiVersion it knows, or None for any, producer)``.
SIMULATED: dict[str, tuple[str | None, Producer]] = {
    "Deployment": (None, replicated_pods),
    "ReplicaSet": (None, replicated_pods),
    "DaemonSet": (None, replicated_pods),
    "StatefulSet": (None, statefulset_pods),
    "Job": (None, job_pods),
    "CronJob": (None, cronjob_pods),
    "Pod": (None, bare_pods),
    "LeaderWorkerSet": (LWS_API, lws_pods),
    "PodCliqueSet": (GROVE_API, grove_pods),
}


def object_name(obj: Mapping[str, Any]) -> str:
    """``Kind/name``, as reports name objects."""
    meta = obj.get("metadata")
    return f"{obj.get('kind')}/{meta.get('name', '') if isinstance(meta, Mapping) else ''}"


#: Kinds that create no pods: listed as not simulated, with this reason.
_NO_PODS = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "CustomResourceDefinition",
        "Endpoints",
        "EndpointSlice",
        "HorizontalPodAutoscaler",
        "Ingress",
        "LimitRange",
        "Namespace",
        "NetworkPolicy",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "PriorityClass",
        "ResourceClaim",
        "ResourceClaimTemplate",
        "ResourceQuota",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "StorageClass",
    }
)


def why_not_simulated(obj: Mapping[str, Any]) -> str | None:
    """None for an object verify simulates; otherwise the reason it does not."""
    kind = str(obj.get("kind"))
    known = SIMULATED.get(kind)
    if known is None:
        return "no pods of its own" if kind in _NO_PODS else "a kind verify does not simulate"
    api, _ = known
    if api is not None and obj.get("apiVersion") != api:
        return f"apiVersion {obj.get('apiVersion')} (verify simulates {api})"
    return None


def enumerate_pods(manifests: Sequence[Mapping[str, Any]]) -> Iterator[Pod]:
    """Every pod verify simulates, in manifest order."""
    ips = _IPs()
    for obj in manifests:
        if why_not_simulated(obj) is None:
            _, produce = SIMULATED[str(obj.get("kind"))]
            yield from produce(obj, ips)
