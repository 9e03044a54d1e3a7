"""Workload objects around pod templates: Deployment, LeaderWorkerSet, PodCliqueSet, Job, and
each component's Service."""

from __future__ import annotations

from typing import Any

from drivetrain.api.enums import ComponentType
from drivetrain.api.kinds import DEPLOYMENT, JOB, LEADER_WORKER_SET, POD_CLIQUE_SET
from drivetrain.api.models import GraphDeployment
from drivetrain.render import checkpoint
from drivetrain.render.deployers import GroveDeployer, LWSDeployer
from drivetrain.render.naming import (
    ROLE_LABEL,
    SELECTOR_LABEL,
    object_meta,
    resource_name,
    service_slug,
)
from drivetrain.render.pod import PodTemplate, build_pod, service_engine
from drivetrain.render.profiles import DYNAMO, profile_of, runtime_namespace, service_discovery

#: The port a frontend's Service listens on, under both profiles (drivetrain's and Dynamo's).
FRONTEND_PORT = 8000
#: The frontend's RL API listener (docs/rl.md), Dynamo's port for it; open only with a token.
ADMIN_PORT = 8002


def is_trainer(graph: GraphDeployment, service_name: str) -> bool:
    """Trainers run to completion as Jobs, whatever the graph's multinode deployer."""
    return graph.spec.services[service_name].componentType == ComponentType.trainer


def deployment(graph: GraphDeployment, service_name: str, namespace: str) -> list[dict[str, Any]]:
    svc = graph.spec.services[service_name]
    name = resource_name(graph, service_name)
    pod = build_pod(graph, service_name, k8s_namespace=namespace)
    obj = {
        "apiVersion": DEPLOYMENT.api_version,
        "kind": "Deployment",
        "metadata": object_meta(graph, name, namespace, service_name),
        "spec": {
            "replicas": svc.replica_count,
            "selector": {"matchLabels": {SELECTOR_LABEL: name}},
            "strategy": _strategy(pod),
            "template": pod.as_template(),
        },
    }
    return [*pod.extra_objects, obj]


def _strategy(pod: PodTemplate) -> dict[str, Any]:
    if pod.is_restore_target:
        # As Dynamo: an old pod holds its GPUs (and the node's restore slot) until it is
        # gone, so a surge pod restoring beside it would wait for them anyway.
        return {"type": "Recreate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}


def checkpoint_job(
    graph: GraphDeployment, service_name: str, namespace: str
) -> list[dict[str, Any]]:
    """The Job that takes a service's checkpoint (``checkpoint.mode: Auto``), and what its
    pod needs; nothing for a service that does not checkpoint that way."""
    ckpt = graph.spec.services[service_name].checkpoint
    if ckpt is None or not ckpt.enabled or ckpt.mode != "Auto" or ckpt.identity is None:
        return []
    pod = build_pod(graph, service_name, k8s_namespace=namespace, purpose="checkpoint")
    meta = object_meta(graph, "", namespace, service_name)
    job = checkpoint.checkpoint_job(
        meta, pod.as_template(), ckpt, checkpoint.identity_hash(ckpt.identity)
    )
    return [*pod.extra_objects, job]


def leader_worker_set(
    graph: GraphDeployment, service_name: str, namespace: str
) -> list[dict[str, Any]]:
    svc = graph.spec.services[service_name]
    name = resource_name(graph, service_name)
    deployer = LWSDeployer()
    leader = build_pod(
        graph, service_name, k8s_namespace=namespace, role="leader", deployer=deployer
    )
    worker = build_pod(
        graph, service_name, k8s_namespace=namespace, role="worker", deployer=deployer
    )
    obj = {
        "apiVersion": LEADER_WORKER_SET.api_version,
        "kind": "LeaderWorkerSet",
        "metadata": object_meta(graph, name, namespace, service_name),
        "spec": {
            "replicas": svc.replica_count,
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": svc.node_count,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": leader.as_template(),
                "workerTemplate": worker.as_template(),
            },
        },
    }
    return [*dedupe([*leader.extra_objects, *worker.extra_objects]), obj]


def pod_clique_set(graph: GraphDeployment, namespace: str) -> list[dict[str, Any]]:
    """The whole graph as one Grove PodCliqueSet named after the graph."""
    deployer = GroveDeployer()
    cliques: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    explicit_startup = False
    for service_name, svc in graph.spec.services.items():
        if is_trainer(graph, service_name):
            continue  # a Job of its own (trainer_job)
        slug = service_slug(service_name)
        if svc.node_count <= 1:
            pod = build_pod(graph, service_name, k8s_namespace=namespace)
            extra += pod.extra_objects
            cliques.append(_clique(slug, svc.replica_count, pod))
            continue
        leader = build_pod(
            graph, service_name, k8s_namespace=namespace, role="leader", deployer=deployer
        )
        worker = build_pod(
            graph, service_name, k8s_namespace=namespace, role="worker", deployer=deployer
        )
        extra += leader.extra_objects + worker.extra_objects
        ldr = _clique(f"{slug}-ldr", 1, leader)
        wkr = _clique(f"{slug}-wkr", svc.node_count - 1, worker)
        if service_engine(graph, service_name) == "trtllm":
            # mpirun on the leader connects to every worker's sshd: start workers first.
            ldr["spec"]["startsAfter"] = [wkr["name"]]
            explicit_startup = True
        cliques += [ldr, wkr]
        groups.append(
            {
                "name": slug,
                "cliqueNames": [ldr["name"], wkr["name"]],
                "replicas": svc.replica_count,
                "minAvailable": 1,
            }
        )
    template: dict[str, Any] = {
        "cliqueStartupType": "CliqueStartupTypeExplicit"
        if explicit_startup
        else "CliqueStartupTypeAnyOrder",
        "headlessServiceConfig": {"publishNotReadyAddresses": True},
        "cliques": cliques,
    }
    if groups:
        template["podCliqueScalingGroups"] = groups
    obj = {
        "apiVersion": POD_CLIQUE_SET.api_version,
        "kind": "PodCliqueSet",
        "metadata": object_meta(graph, graph.name, namespace),
        "spec": {"replicas": 1, "template": template},
    }
    return [*dedupe(extra), obj]


def _clique(name: str, replicas: int, pod: PodTemplate) -> dict[str, Any]:
    # As Dynamo does: the role name is the clique name, and every replica of a clique must be
    # available (a multinode group is useless with a missing rank).
    clique: dict[str, Any] = {
        "name": name,
        "labels": pod.metadata.get("labels", {}),
        "spec": {
            "roleName": name,
            "replicas": replicas,
            "minAvailable": replicas,
            "podSpec": pod.spec,
        },
    }
    if pod.metadata.get("annotations"):
        clique["annotations"] = pod.metadata["annotations"]
    return clique


#: A component Service's port, by component type (Dynamo's ``GenerateComponentService``).
_FRONTEND_PORT = {"name": "http", "port": FRONTEND_PORT, "targetPort": "http", "protocol": "TCP"}
_ADMIN_PORT = {"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"}
_EPP_PORT = {
    "name": "grpc",
    "port": 9002,
    "targetPort": 9002,
    "protocol": "TCP",
    "appProtocol": "http2",
}
_SYSTEM_PORT = {"name": "system", "port": 9090, "targetPort": "system", "protocol": "TCP"}


def trainer_job(graph: GraphDeployment, service_name: str, namespace: str) -> list[dict[str, Any]]:
    """A trainer as a ``batch/v1`` Job that runs to completion (docs/rendering.md).

    One node: a plain Job. Several: an Indexed Job with ``completions = parallelism =
    nodeCount``, pods with ``subdomain: <job>`` and a headless Service of that name, so that
    pod *i* is ``<job>-<i>.<job>`` (the names ``distenv``'s ``indexedjob`` source and JAX's own
    Kubernetes bootstrap build). ``restartPolicy: Never`` and ``backoffLimit`` (default 0):
    a finished run stays finished.
    """
    svc = graph.spec.services[service_name]
    name = resource_name(graph, service_name)
    nodes = svc.node_count
    indexed = nodes > 1
    pod = build_pod(
        graph, service_name, k8s_namespace=namespace, indexed_job=(name, name) if indexed else None
    )
    template = pod.as_template()
    spec: dict[str, Any] = {"backoffLimit": svc.backoffLimit or 0}
    if indexed:
        template["spec"]["subdomain"] = name
        spec.update(completionMode="Indexed", completions=nodes, parallelism=nodes)
    if svc.replicas == 0:
        spec["suspend"] = True  # scaled to zero: the Job exists and runs nothing
    spec["template"] = template
    objects = list(pod.extra_objects)
    if indexed:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": object_meta(graph, name, namespace, service_name),
                "spec": {
                    "clusterIP": "None",
                    # Rank 0 must resolve before it is Ready: every rank waits for it.
                    "publishNotReadyAddresses": True,
                    "selector": {SELECTOR_LABEL: name},
                },
            }
        )
    job = {
        "apiVersion": JOB.api_version,
        "kind": JOB.kind,
        "metadata": object_meta(graph, name, namespace, service_name),
        "spec": spec,
    }
    return [*objects, job]


def service(graph: GraphDeployment, service_name: str, namespace: str) -> dict[str, Any] | None:
    """The Service of one component, or None when it needs none.

    * A frontend always gets one: port 8000 named ``http``, for clients; under the drivetrain
      profile also port 8002 named ``admin``, the RL API (listening only with a token).
    * Under the dynamo profile with Kubernetes discovery on, every component gets one: the
      runtime finds workers through the EndpointSlices of Services labelled
      ``nvidia.com/dynamo-discovery-enabled`` (docs/dynamo-on-kubernetes.md); port ``system``
      9090 (EPP: ``grpc`` 9002), the component and discovery labels, and Dynamo's selector
      (component type, Dynamo namespace, component).
    * A multinode component's Service selects each group's leader only.
    """
    svc = graph.spec.services[service_name]
    table = profile_of(graph)
    dynamo = table is DYNAMO
    kubernetes = service_discovery(graph, service_name).kubernetes
    if svc.componentType != "frontend" and not (dynamo and kubernetes):
        return None
    name = resource_name(graph, service_name)
    meta = object_meta(graph, name, namespace, service_name)
    if dynamo:
        keys = table.label_keys
        dyn_namespace = runtime_namespace(graph, service_name, namespace)
        selector = {
            keys["component_type"]: svc.componentType,
            keys["namespace"]: dyn_namespace,
            keys["service"]: service_name,
        }
        component = {keys["graph"]: graph.name, **selector}
        meta["labels"].update(component)
        if kubernetes:
            meta["labels"].update(table.discovery_labels)
    else:
        selector = {SELECTOR_LABEL: name}
    if svc.node_count > 1:
        selector[ROLE_LABEL] = "leader"
    port = (
        _FRONTEND_PORT
        if svc.componentType == "frontend"
        else _EPP_PORT
        if svc.componentType == "epp"
        else _SYSTEM_PORT
    )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": selector,
            "ports": [
                dict(port),
                *([dict(_ADMIN_PORT)] if svc.componentType == "frontend" and not dynamo else []),
            ],
        },
    }


def dedupe(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first object of each kind and name (roles and services share ConfigMaps)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        if key not in seen:
            seen.add(key)
            out.append(obj)
    return out
