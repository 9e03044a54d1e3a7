"""Pod RBAC: one ServiceAccount per graph role, each bound to a namespaced Role with only its rules.

The one module that renders the RBAC a graph's own pods need (pure).  The graph roles:

* ``discovery``: the pods whose runtime finds the others through the API server.  Under the
  drivetrain profile (``kubernetes://``) the frontend and worker processes; under the dynamo
  profile every component with Kubernetes discovery on (Dynamo's ``<dgd>-k8s-service-discovery``).
  Frontends and workers share the account: a pod may run both (``frontendSidecar``) and a pod
  has one ServiceAccount; the Role grants the union of what the graph's processes call, so a
  graph of workers only gets the workers' rules.
* ``planner``: Dynamo's planner in a DynamoGraphDeployment (scales its own graph); its account
  is bound to the discovery Role too, since the planner runs Dynamo's runtime.
* ``trainer``: JAX's own Kubernetes bootstrap in trainer pods.

The rules come from the table in ``drivetrain.rbacrules`` (what each process calls, and why:
docs/rendering.md).  A pod that names its own ``serviceAccountName`` keeps it and counts for
no role.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from drivetrain import rbacrules
from drivetrain.api.models import GraphDeployment
from drivetrain.rbacrules import Need, Process
from drivetrain.render.naming import SELECTOR_LABEL, object_meta, resource_name
from drivetrain.render.profiles import DYNAMO, profile_of, service_discovery

GraphRole = Literal["discovery", "planner", "trainer"]
ROLES: tuple[GraphRole, ...] = ("discovery", "planner", "trainer")
RBAC_API = "rbac.authorization.k8s.io/v1"


@dataclass(frozen=True)
class PodRole:
    """One graph role: its ServiceAccount, what its processes call, who is bound to its Role."""

    role: GraphRole
    service_account: str
    needs: tuple[Need, ...]
    #: ServiceAccounts bound to this role's Role (its own first).
    subjects: tuple[str, ...]

    @property
    def role_name(self) -> str:
        return f"{self.service_account}-role"

    @property
    def binding_name(self) -> str:
        return f"{self.service_account}-binding"


def service_account_name(graph: GraphDeployment, role: GraphRole) -> str:
    """``<dgd>-k8s-service-discovery`` for Dynamo's discovery (its operator's name, which its
    docs and tools use), else ``<graph>-<role>``."""
    if role == "discovery" and profile_of(graph) is DYNAMO:
        return f"{graph.name}-k8s-service-discovery"
    return f"{graph.name}-{role}"


def _own_account(graph: GraphDeployment, service_name: str) -> bool:
    eps = graph.spec.services[service_name].extraPodSpec
    extra = (eps.model_extra or {}) if eps else {}
    return bool(extra.get("serviceAccountName") or extra.get("serviceAccount"))


def discovery_processes(graph: GraphDeployment, service_name: str) -> set[Process]:
    """The runtime processes of one service's pods that use Kubernetes discovery."""
    svc = graph.spec.services[service_name]
    if not service_discovery(graph, service_name).kubernetes:
        return set()
    out: set[Process] = set()
    if svc.componentType == "trainer":
        return out  # the user's training program, not a runtime
    if svc.componentType == "frontend":
        out.add("frontend")
    elif profile_of(graph) is DYNAMO or svc.is_worker:
        # Dynamo's runtime runs in every component (planner, EPP...) and may register.
        out.add("worker")
    if svc.frontendSidecar is not None:
        out.add("frontend")
    return out


def discovery_needs(graph: GraphDeployment, service_name: str) -> tuple[Need, ...]:
    """What one service's runtime calls for discovery (empty when it does not use the API)."""
    processes = sorted(discovery_processes(graph, service_name))
    if profile_of(graph) is DYNAMO:
        mode = service_discovery(graph, service_name).mode
        return tuple(n for p in processes for n in rbacrules.DYNAMO_DISCOVERY[(mode, p)])
    return tuple(n for p in processes for n in rbacrules.DRIVETRAIN_DISCOVERY[p])


def _is_planner(graph: GraphDeployment, service_name: str) -> bool:
    # Dynamo's planner scales DynamoGraphDeployments only (it reads the DGD by name).
    return graph.is_dynamo and graph.spec.services[service_name].componentType == "planner"


def role_of(graph: GraphDeployment, service_name: str) -> GraphRole | None:
    """The graph role whose ServiceAccount the service's pods run as (None: they keep theirs, or
    the namespace's ``default``, which needs no rule)."""
    if _own_account(graph, service_name):
        return None
    svc = graph.spec.services[service_name]
    if svc.componentType == "trainer":
        return "trainer"
    if _is_planner(graph, service_name):
        return "planner"
    if discovery_needs(graph, service_name):
        return "discovery"
    return None


def service_account(graph: GraphDeployment, service_name: str) -> str | None:
    """The ``serviceAccountName`` the service's pods get when they name none."""
    role = role_of(graph, service_name)
    return service_account_name(graph, role) if role else None


# ------------------------------------------------------------------ trainers: pod subdomains
def _templates(obj: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], bool]]:
    """(pod template, whether its pods get a subdomain) of a rendered workload."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet"):
        template = spec.get("template") or {}
        # A StatefulSet's controller sets the subdomain (its serviceName); the others copy it.
        yield template, kind == "StatefulSet" or bool((template.get("spec") or {}).get("subdomain"))
    elif kind == "LeaderWorkerSet":  # the LWS controller sets each pod's subdomain
        lwt = spec.get("leaderWorkerTemplate") or {}
        for key in ("leaderTemplate", "workerTemplate"):
            if lwt.get(key):
                yield lwt[key], True
    elif kind == "PodCliqueSet":  # Grove: the headless service is every pod's subdomain
        for clique in (spec.get("template") or {}).get("cliques") or []:
            yield {"metadata": {"labels": clique.get("labels") or {}}}, True


def _trainer_needs(
    graph: GraphDeployment, trainers: Sequence[str], workloads: Sequence[Mapping[str, Any]]
) -> tuple[Need, ...]:
    """JAX's bootstrap rules; Services only for a trainer pod without a subdomain (or one whose
    workload is of a kind not known here)."""
    selectors = {resource_name(graph, name) for name in trainers}
    seen: set[str] = set()
    without_subdomain = False
    for obj in workloads:
        for template, subdomain in _templates(obj):
            selector = ((template.get("metadata") or {}).get("labels") or {}).get(SELECTOR_LABEL)
            if selector in selectors:
                seen.add(selector)
                without_subdomain |= not subdomain
    if without_subdomain or seen != selectors:
        return rbacrules.TRAINER + rbacrules.TRAINER_WITHOUT_SUBDOMAIN
    return rbacrules.TRAINER


def pod_roles(graph: GraphDeployment, workloads: Sequence[Mapping[str, Any]] = ()) -> list[PodRole]:
    """The graph's roles that some pod runs as, in ``ROLES`` order.

    ``workloads`` are the graph's rendered objects: a trainer's Role depends on whether its pods
    get a subdomain.
    """
    by_role: dict[GraphRole, list[str]] = {}
    for name in graph.spec.services:
        role = role_of(graph, name)
        if role is not None:
            by_role.setdefault(role, []).append(name)
    # Every service with discovery rules counts for the discovery Role, whichever account
    # its pods run as (the planner's is bound to it).
    discovery = [
        name
        for name in graph.spec.services
        if role_of(graph, name) is not None and discovery_needs(graph, name)
    ]
    out: list[PodRole] = []
    if discovery:
        needs = tuple(dict.fromkeys(n for name in discovery for n in discovery_needs(graph, name)))
        subjects = [service_account_name(graph, "discovery")]
        if any(role_of(graph, name) == "planner" for name in discovery):
            subjects.append(service_account_name(graph, "planner"))
        out.append(PodRole("discovery", subjects[0], needs, tuple(subjects)))
    if "planner" in by_role:
        adapters = [name.lower() for name in graph.spec.services]
        sa = service_account_name(graph, "planner")
        needs = rbacrules.planner(graph.name, [f"{graph.name}-{a}" for a in adapters])
        out.append(PodRole("planner", sa, needs, (sa,)))
    if "trainer" in by_role:
        sa = service_account_name(graph, "trainer")
        needs = _trainer_needs(graph, by_role["trainer"], workloads)
        out.append(PodRole("trainer", sa, needs, (sa,)))
    return out


def rules_table(
    graph: GraphDeployment, workloads: Sequence[Mapping[str, Any]] = ()
) -> dict[GraphRole, list[dict[str, Any]]]:
    """Each role's Role rules as rendered (for deploy/'s escalation check and for tests)."""
    return {r.role: rbacrules.policy_rules(r.needs) for r in pod_roles(graph, workloads)}


def render_rbac(
    graph: GraphDeployment, namespace: str, workloads: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding of every role some pod of the graph runs as."""

    def meta(name: str) -> dict[str, Any]:
        return object_meta(graph, name, namespace)

    out: list[dict[str, Any]] = []
    for role in pod_roles(graph, workloads):
        out += [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": meta(role.service_account),
            },
            {
                "apiVersion": RBAC_API,
                "kind": "Role",
                "metadata": meta(role.role_name),
                "rules": rbacrules.policy_rules(role.needs),
            },
            {
                "apiVersion": RBAC_API,
                "kind": "RoleBinding",
                "metadata": meta(role.binding_name),
                "subjects": [
                    {"kind": "ServiceAccount", "name": sa, "namespace": namespace}
                    for sa in role.subjects
                ],
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": role.role_name,
                },
            },
        ]
    return out
