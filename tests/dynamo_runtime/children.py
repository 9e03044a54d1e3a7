"""What Dynamo's operator creates around a DGD's pods for Kubernetes discovery, as manifests.

``dynamo_children`` mirrors the Dynamo operator (``ai-dynamo/dynamo`` ``deploy/operator``; see
docs/dynamo-on-kubernetes.md for the contract this proves) for a DGD with K8s discovery on,
on the DCD path (one Deployment per single-node component):

* ServiceAccount ``<dgd>-k8s-service-discovery``, Role ``<sa>-role`` and RoleBinding
  ``<sa>-binding`` (``internal/discovery/resource.go``), the Role with the operator's rules;
* per component a Service ``<dgd>-<lower(service)>`` (``GenerateComponentService`` in
  ``internal/dynamo/graph.go``): the component's labels plus the discovery labels, selector
  ``{component-type, dynamo-namespace, component}``, port ``http`` 8000 for the frontend and
  ``system`` 9090 for the others;
* per component a Deployment whose pod template carries what the runtime reads: the labels of
  ``generateLabels`` (discovery labels included), ``serviceAccountName`` (``GenerateBasePodSpec``
  sets it on pods without one), the env of ``component_common.go`` / ``component_worker.go`` /
  ``component_frontend.go``, the ports and the readiness probe.  Image and command are the
  user's in a real DGD; the proof replaces the command anyway (tests/dynamo_runtime/node.py).

It is deliberately a separate, plain function: the renderer's own output (``drivetrain render``
of the same DGD) is meant to be swapped in for it, and must then pass the same proof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GROUP = "nvidia.com"
DISCOVERY_BACKEND_LABEL = "nvidia.com/dynamo-discovery-backend"
DISCOVERY_ENABLED_LABEL = "nvidia.com/dynamo-discovery-enabled"
COMPONENT_LABEL = "nvidia.com/dynamo-component"
COMPONENT_TYPE_LABEL = "nvidia.com/dynamo-component-type"
NAMESPACE_LABEL = "nvidia.com/dynamo-namespace"
GRAPH_NAME_LABEL = "nvidia.com/dynamo-graph-deployment-name"
SELECTOR_LABEL = "nvidia.com/selector"
METRICS_LABEL = "nvidia.com/metrics-enabled"
DISCOVERY_MODE_ANNOTATION = "nvidia.com/dynamo-kube-discovery-mode"

FRONTEND_PORT = 8000  # DynamoServicePort, port name "http"
SYSTEM_PORT = 9090  # DynamoSystemPort, port name "system"
NIXL_PORT = 19090

#: The operator's K8s-discovery Role (``GetK8sDiscoveryRole``), rule for rule.
OPERATOR_DISCOVERY_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["endpoints", "pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": [GROUP],
        "resources": ["dynamoworkermetadatas"],
        "verbs": ["create", "get", "list", "watch", "update", "patch", "delete"],
    },
)


@dataclass(frozen=True)
class Component:
    """One entry of a DGD's ``spec.services``: its name as written and its componentType."""

    name: str
    type: str  # frontend | worker | prefill | decode | planner


def service_account_name(dgd: str) -> str:
    return f"{dgd}-k8s-service-discovery"


def dynamo_namespace(namespace: str, dgd: str) -> str:
    """``ComputeDynamoNamespace`` without ``dynamoNamespace`` overrides: ``<ns>-<dgd>``."""
    return f"{namespace}-{dgd}"


def resource_name(dgd: str, component: str) -> str:
    """``GetDCDResourceName``: ``<dgd>-<lower(service)>``, dots replaced (DNS-1035)."""
    return f"{dgd}-{component.lower()}".replace(".", "-")


def _rbac_labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "dynamo-operator",
        "app.kubernetes.io/component": "rbac",
        "app.kubernetes.io/name": name,
    }


def discovery_rbac(
    dgd: str, namespace: str, rules: Sequence[dict[str, Any]] = OPERATOR_DISCOVERY_RULES
) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding of K8s discovery (``rules`` replaceable for proofs)."""
    sa = service_account_name(dgd)
    role = f"{sa}-role"
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": sa, "namespace": namespace, "labels": _rbac_labels(sa)},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": role, "namespace": namespace, "labels": _rbac_labels(sa)},
            "rules": [dict(rule) for rule in rules],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": f"{sa}-binding",
                "namespace": namespace,
                "labels": _rbac_labels(sa),
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        },
    ]


def component_labels(dgd: str, namespace: str, component: Component) -> dict[str, str]:
    return {
        GRAPH_NAME_LABEL: dgd,
        COMPONENT_LABEL: component.name,
        NAMESPACE_LABEL: dynamo_namespace(namespace, dgd),
        COMPONENT_TYPE_LABEL: component.type,
    }


DISCOVERY_LABELS = {DISCOVERY_BACKEND_LABEL: "kubernetes", DISCOVERY_ENABLED_LABEL: "true"}


def component_service(dgd: str, namespace: str, component: Component) -> dict[str, Any]:
    frontend = component.type == "frontend"
    port_name, port = ("http", FRONTEND_PORT) if frontend else ("system", SYSTEM_PORT)
    labels = component_labels(dgd, namespace, component)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": resource_name(dgd, component.name),
            "namespace": namespace,
            "labels": {**labels, **DISCOVERY_LABELS},
        },
        "spec": {
            "selector": {
                COMPONENT_TYPE_LABEL: component.type,
                NAMESPACE_LABEL: labels[NAMESPACE_LABEL],
                COMPONENT_LABEL: component.name,
            },
            "ports": [
                {"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}
            ],
        },
    }


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _main_container(
    dgd: str, namespace: str, component: Component, mode: str = "pod"
) -> dict[str, Any]:
    dyn_ns = dynamo_namespace(namespace, dgd)
    frontend = component.type == "frontend"
    env: list[dict[str, Any]] = [
        {"name": "DYN_NAMESPACE", "value": dyn_ns},
        {"name": "DYN_COMPONENT", "value": component.type},
        {"name": "DYN_PARENT_DGD_K8S_NAME", "value": dgd},
        {"name": "DYN_PARENT_DGD_K8S_NAMESPACE", "value": namespace},
        _field("POD_NAME", "metadata.name"),
        _field("POD_NAMESPACE", "metadata.namespace"),
        _field("POD_UID", "metadata.uid"),
        {"name": "DYN_DISCOVERY_BACKEND", "value": "kubernetes"},
    ]
    if mode == "container":
        env += [
            {"name": "CONTAINER_NAME", "value": "main"},
            {"name": "DYN_KUBE_DISCOVERY_MODE", "value": "container"},
        ]
    if frontend:
        env += [
            {"name": "DYNAMO_PORT", "value": str(FRONTEND_PORT)},
            {"name": "DYN_HTTP_PORT", "value": str(FRONTEND_PORT)},
            {"name": "DYN_NAMESPACE_PREFIX", "value": dyn_ns},
        ]
        ports = [{"name": "http", "containerPort": FRONTEND_PORT, "protocol": "TCP"}]
        probe_port = "http"
    else:
        env += [
            {"name": "DYN_SYSTEM_ENABLED", "value": "true"},
            {"name": "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "value": '["generate"]'},
            {"name": "DYN_SYSTEM_PORT", "value": str(SYSTEM_PORT)},
            {"name": "DYN_HEALTH_CHECK_ENABLED", "value": "false"},
        ]
        ports = [
            {"name": "system", "containerPort": SYSTEM_PORT, "protocol": "TCP"},
            {"name": "nixl", "containerPort": NIXL_PORT, "protocol": "TCP"},
        ]
        probe_port = "system"
    return {
        "name": "main",
        "image": "nvcr.io/nvidia/ai-dynamo/dynamo-runtime:1.6.1",
        # The frontend's default command; a worker's is the user's (here, Dynamo's mocker).
        "command": ["python3", "-m", "dynamo.frontend" if frontend else "dynamo.mocker"],
        "env": env,
        "ports": ports,
        "readinessProbe": {"httpGet": {"path": "/health", "port": probe_port}},
    }


def component_deployment(
    dgd: str, namespace: str, component: Component, mode: str = "pod"
) -> dict[str, Any]:
    name = resource_name(dgd, component.name)
    labels = {
        SELECTOR_LABEL: name,
        **component_labels(dgd, namespace, component),
        METRICS_LABEL: "true",
        **DISCOVERY_LABELS,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": component_labels(dgd, namespace, component),
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {SELECTOR_LABEL: name}},
            "template": {
                "metadata": {
                    "labels": labels,
                    # Propagated from the DGD only when the user sets it (pod is the default).
                    **({"annotations": {DISCOVERY_MODE_ANNOTATION: mode}} if mode != "pod" else {}),
                },
                "spec": {
                    "serviceAccountName": service_account_name(dgd),
                    "containers": [_main_container(dgd, namespace, component, mode)],
                },
            },
        },
    }


def dynamo_children(
    dgd: str,
    namespace: str,
    components: Sequence[Component],
    rules: Sequence[dict[str, Any]] = OPERATOR_DISCOVERY_RULES,
    mode: str = "pod",
) -> list[dict[str, Any]]:
    """Every object Dynamo's operator creates for the DGD's K8s discovery, plus its Deployments.

    ``mode`` is the DGD's ``nvidia.com/dynamo-kube-discovery-mode`` annotation (``pod`` or
    ``container``), which the operator propagates to the pods and turns into env.
    """
    out = discovery_rbac(dgd, namespace, rules)
    for component in components:
        out.append(component_service(dgd, namespace, component))
        out.append(component_deployment(dgd, namespace, component, mode))
    return out
