"""The cluster contract of discovery, per pod: which discovery a pod's runtime uses, and whether
the objects that mode needs are among the manifests.

A runtime that finds its peers through the API server only works when the cluster around its
pod is right, and nothing fails loudly when it is not (docs/dynamo-on-kubernetes.md: a worker
Service without the discovery label hides the worker with no error at all).  Per pod:

* the discovery of each runtime process in it: drivetrain's ``kubernetes://`` (``drivetrain
  frontend|worker`` with ``DRIVETRAIN_DISCOVERY=kubernetes://...``, or none, which is
  ``kubernetes://`` in a pod), or Dynamo's Kubernetes discovery (``DYN_DISCOVERY_BACKEND=
  kubernetes``) in pod or container mode; anything else needs nothing around the pod;
* for those: the pod's ServiceAccount is in the manifests (or is the namespace's ``default``),
  its token is mounted, and RoleBindings there grant it every rule the processes call (the table
  in ``drivetrain.rbacrules``); the downward-API env the runtime reads (``POD_NAME``,
  ``POD_UID``, and ``POD_NAMESPACE`` for Dynamo); for a Dynamo worker in pod mode a Service
  selecting the pod with ``nvidia.com/dynamo-discovery-enabled: "true"``; in container mode that
  label on the pod itself.

What is missing is a warning (``drivetrain verify --strict`` makes it an error), not a problem:
the manifests may be one part of what is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from drivetrain import envnames, rbacrules
from drivetrain.rbacrules import Need, Process
from drivetrain.verify.controllers import Pod
from drivetrain.verify.expansion import container_env

ENABLED_LABEL = "nvidia.com/dynamo-discovery-enabled"
_DOWNWARD = {
    envnames.POD_NAME: "metadata.name",
    envnames.POD_UID: "metadata.uid",
    envnames.POD_NAMESPACE: "metadata.namespace",
}


class PodDiscovery(BaseModel):
    """One pod's discovery and what its mode lacks in the manifests."""

    workload: str
    pod: str
    #: e.g. "kubernetes:// (drivetrain worker)", "Dynamo kubernetes, pod mode (worker)", "none"
    mode: str
    service_account: str
    missing: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def warnings(self) -> list[str]:
        where = f"{self.workload} pod {self.pod} ({self.mode})"
        return [f"{where}: {m}" for m in self.missing]


def _words(container: Mapping[str, Any]) -> list[str]:
    return [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]


def _process(container: Mapping[str, Any], env: Mapping[str, str]) -> tuple[str, Process] | None:
    """("drivetrain" | "dynamo-pod" | "dynamo-container", frontend | worker) of a container
    whose runtime discovers through the API server; None for anything else."""
    words = _words(container)
    joined = " ".join(words)
    if env.get(envnames.DYN_DISCOVERY_BACKEND) == "kubernetes":
        mode = "container" if env.get(envnames.DYN_KUBE_DISCOVERY_MODE) == "container" else "pod"
        return f"dynamo-{mode}", "frontend" if "dynamo.frontend" in joined else "worker"
    program = words[0].rsplit("/", 1)[-1] if words else ""
    if program != "drivetrain" or len(words) < 2 or words[1] not in ("frontend", "worker"):
        return None
    given = [w.split("=", 1)[1] for w in words if w.startswith("--discovery=")]
    given += [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--discovery"]
    url = given[-1] if given else env.get(envnames.DISCOVERY, "")
    if url and not url.startswith("kubernetes://"):
        return None  # an empty value is the default in a pod: kubernetes://
    return "drivetrain", "worker" if words[1] == "worker" else "frontend"


def _needs(runtime: str, process: Process) -> tuple[Need, ...]:
    if runtime == "drivetrain":
        return rbacrules.DRIVETRAIN_DISCOVERY[process]
    mode: rbacrules.DynamoMode = "container" if runtime == "dynamo-container" else "pod"
    return rbacrules.DYNAMO_DISCOVERY[(mode, process)]


def _bound_rules(objects: Sequence[Mapping[str, Any]], namespace: str, account: str) -> list[Any]:
    """The rules of every Role and ClusterRole in the manifests bound to the account."""
    roles = {
        (o.get("kind"), (o.get("metadata") or {}).get("namespace") or namespace,
         (o.get("metadata") or {}).get("name")): o
        for o in objects
        if o.get("kind") in ("Role", "ClusterRole")
    }  # fmt: skip
    groups = {"system:serviceaccounts", f"system:serviceaccounts:{namespace}"}
    out: list[Any] = []
    for binding in objects:
        kind = binding.get("kind")
        meta = binding.get("metadata") or {}
        if kind == "RoleBinding" and (meta.get("namespace") or namespace) != namespace:
            continue
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        bound = False
        for subject in binding.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                bound |= (
                    subject.get("name") == account
                    and (subject.get("namespace") or meta.get("namespace") or namespace)
                    == namespace
                )
            elif subject.get("kind") == "Group":
                bound |= subject.get("name") in groups
        if not bound:
            continue
        ref = binding.get("roleRef") or {}
        role_ns = namespace if ref.get("kind") == "Role" else None
        for (k, ns, name), role in roles.items():
            same = k == ref.get("kind") and name == ref.get("name")
            if same and (k == "ClusterRole" or ns == role_ns):
                out += role.get("rules") or []
    return out


def _selects(service: Mapping[str, Any], pod: Pod) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    labels = pod.facts.labels
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _check_pod(pod: Pod, objects: Sequence[Mapping[str, Any]]) -> PodDiscovery | None:
    spec = pod.spec
    namespace = pod.facts.namespace
    account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    runtimes: dict[tuple[str, Process], Mapping[str, Any]] = {}
    containers = [
        *(c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"),
        *(spec.get("containers") or []),
    ]
    for container in containers:
        env = container_env(container, pod.controller_env, pod.facts).values
        found = _process(container, env)
        if found:
            runtimes.setdefault(found, container)
    if not runtimes:
        return None
    missing: list[str] = []
    accounts = [
        o
        for o in objects
        if o.get("kind") == "ServiceAccount"
        and (o.get("metadata") or {}).get("name") == account
        and ((o.get("metadata") or {}).get("namespace") or namespace) == namespace
    ]
    if account == "default":
        missing.append(
            "runs as the namespace's default ServiceAccount; set serviceAccountName to one "
            "bound to the discovery rules"
        )
    elif not accounts:
        missing.append(f"ServiceAccount {account} is not in the manifests")
    if spec.get("automountServiceAccountToken") is False or any(
        a.get("automountServiceAccountToken") is False for a in accounts
    ):
        missing.append("automountServiceAccountToken is false: the runtime has no token")
    needs = [n for runtime, process in runtimes for n in _needs(runtime, process)]
    lacking = rbacrules.missing(needs, _bound_rules(objects, namespace, account))
    if lacking:
        missing.append(
            f"no RoleBinding in the manifests grants ServiceAccount {account}: "
            + ", ".join(str(n) for n in lacking)
        )
    for (runtime, process), container in runtimes.items():
        writer = runtime != "drivetrain" or process == "worker"
        wanted = [envnames.POD_NAME, envnames.POD_UID] if writer else []
        if runtime != "drivetrain":
            wanted.append(envnames.POD_NAMESPACE)
        have = {
            e.get("name")
            for e in container.get("env") or []
            if ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            == _DOWNWARD.get(str(e.get("name")))
        }
        absent = [name for name in wanted if name not in have]
        if absent:
            missing.append(
                f"container {container.get('name')}: no downward-API "
                + ", ".join(f"{n} ({_DOWNWARD[n]})" for n in absent)
            )
    leader = pod.group is None or pod.is_leader
    dynamo_workers = {r for r, p in runtimes if r.startswith("dynamo") and p == "worker"}
    if "dynamo-pod" in dynamo_workers and leader:
        services = [
            o
            for o in objects
            if o.get("kind") == "Service"
            and ((o.get("metadata") or {}).get("namespace") or namespace) == namespace
            and _selects(o, pod)
        ]
        if not any(
            ((s.get("metadata") or {}).get("labels") or {}).get(ENABLED_LABEL) == "true"
            for s in services
        ):
            missing.append(
                f"no Service in the manifests selects the pod with label {ENABLED_LABEL}: "
                '"true" (the frontend never sees the worker, and nothing fails)'
            )
    if (
        "dynamo-container" in {r for r, _ in runtimes}
        and pod.facts.labels.get(ENABLED_LABEL) != "true"
    ):
        missing.append(f'the pod lacks the label {ENABLED_LABEL}: "true" (container mode)')
    modes = ", ".join(
        f"{_MODE_NAMES[runtime]} ({process})" for runtime, process in sorted(runtimes)
    )
    return PodDiscovery(
        workload=pod.workload,
        pod=pod.facts.hostname,
        mode=modes,
        service_account=account,
        missing=missing,
    )


_MODE_NAMES = {
    "drivetrain": "kubernetes://",
    "dynamo-pod": "Dynamo kubernetes, pod mode",
    "dynamo-container": "Dynamo kubernetes, container mode",
}


def discovery_contract(
    objects: Sequence[Mapping[str, Any]], pods: Iterable[Pod]
) -> list[PodDiscovery]:
    """Every pod whose runtime discovers through the API server, and what its mode lacks: the
    first pod of each workload and role (its replicas differ only in name)."""
    out: list[PodDiscovery] = []
    seen: set[tuple[str, str, bool]] = set()
    for pod in pods:
        template = (pod.workload, pod.role, pod.group is None or pod.is_leader)
        if template in seen:
            continue
        seen.add(template)
        checked = _check_pod(pod, objects)
        if checked is not None:
            out.append(checked)
    return out
