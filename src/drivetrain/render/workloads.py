"""Workload objects around pod templates: Deployment, LeaderWorkerSet, PodCliqueSet, Job, Service."""

from __future__ import annotations

from typing import Any

from drivetrain.api.enums import ComponentType
from drivetrain.api.kinds import DEPLOYMENT, JOB, LEADER_WORKER_SET, POD_CLIQUE_SET
from drivetrain.api.models import GraphDeployment
from drivetrain.render.deployers import GroveDeployer, LWSDeployer
from drivetrain.render.naming import GRAPH_LABEL, SELECTOR_LABEL, resource_name, service_slug
from drivetrain.render.pod import PodTemplate, build_pod, service_engine

#: The port a frontend's Service listens on, under both profiles (drivetrain's and Dynamo's).
FRONTEND_PORT = 8000


def is_trainer(graph: GraphDeployment, service_name: str) -> bool:
    """Trainers run to completion as Jobs, whatever the graph's multinode deployer."""
    return graph.spec.services[service_name].componentType == ComponentType.trainer


def object_meta(
    graph: GraphDeployment, name: str, namespace: str, service_name: str | None = None
) -> dict[str, Any]:
    labels = dict(graph.spec.labels or {})
    annotations = dict(graph.spec.annotations or {})
    if service_name is not None:
        svc = graph.spec.services[service_name]
        labels.update(svc.labels or {})
        annotations.update(svc.annotations or {})
    labels[GRAPH_LABEL] = graph.name
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return meta


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
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": pod.as_template(),
        },
    }
    return [*pod.extra_objects, obj]


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
    """A ClusterIP Service for a frontend: port 8000 named http."""
    svc = graph.spec.services[service_name]
    if svc.componentType != "frontend":
        return None
    name = resource_name(graph, service_name)
    selector = {SELECTOR_LABEL: name}
    if svc.node_count > 1:
        selector["drivetrain.dev/role"] = "leader"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(graph, name, namespace, service_name),
        "spec": {
            "selector": selector,
            "ports": [
                {"name": "http", "port": FRONTEND_PORT, "targetPort": "http", "protocol": "TCP"}
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
