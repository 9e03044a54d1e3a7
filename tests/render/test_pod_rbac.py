"""The pods' RBAC and the other children a graph's pods need on a real cluster, as rendered.

Least privilege is asserted exactly: each Role grants what the rules table says its processes
call (drivetrain.rbacrules, established in docs/discovery.md and docs/dynamo-on-kubernetes.md)
and nothing else; which pods run as which account; what turns each piece off.
"""

from __future__ import annotations

from typing import Any

import pytest

from drivetrain import rbacrules
from drivetrain.api import InvalidGraph
from drivetrain.rbacrules import Need
from tests.render.conftest import by_kind, one
from tests.schemas import schema_errors

DRIVETRAIN = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: chat}
spec:
  services:
    Frontend: {componentType: frontend}
    decode:
      componentType: worker
      extraPodSpec:
        mainContainer:
          command: [drivetrain, worker]
          args: [--engine, mocker, --model-name, qwen]
"""

DGD = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: dis
  annotations: {}
spec:
  services:
    Frontend:
      componentType: frontend
      extraPodSpec: {mainContainer: {image: dynamo:1}}
    decode:
      componentType: worker
      modelRef: {name: Qwen/Qwen3-0.6B}
      extraPodSpec:
        mainContainer: {image: dynamo:1, command: [python3, -m, dynamo.mocker]}
    Planner:
      componentType: planner
      extraPodSpec:
        mainContainer: {image: dynamo:1, command: [python3, -m, dynamo.planner]}
"""


def granted(objects: list[dict[str, Any]], role: str) -> set[Need]:
    return {n for r in one(objects, "Role", role)["rules"] for n in rbacrules.expand(r)}


def accounts(objects: list[dict[str, Any]]) -> dict[str, str | None]:
    """Deployment or Job (trainers) name → its pods' serviceAccountName."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"].get("serviceAccountName")
        for kind in ("Deployment", "Job")
        for d in by_kind(objects, kind)
    }


def test_drivetrain_pods_share_one_discovery_account_with_exactly_their_rules(render) -> None:
    objects = render(DRIVETRAIN)
    assert [o["kind"] for o in objects[:3]] == ["ServiceAccount", "Role", "RoleBinding"]
    assert accounts(objects) == {"chat-frontend": "chat-discovery", "chat-decode": "chat-discovery"}
    wanted = {
        *rbacrules.DRIVETRAIN_DISCOVERY["worker"],
        *rbacrules.DRIVETRAIN_DISCOVERY["frontend"],
    }
    assert granted(objects, "chat-discovery-role") == wanted
    binding = one(objects, "RoleBinding", "chat-discovery-binding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "chat-discovery", "namespace": "ml"}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "chat-discovery-role",
    }
    for obj in objects:
        assert obj["metadata"]["labels"]["drivetrain.dev/graph"] == "chat"
        assert schema_errors(obj) == [], obj["kind"]


def test_workers_alone_get_the_workers_rules_only(render) -> None:
    objects = render(DRIVETRAIN.replace("    Frontend: {componentType: frontend}\n", ""))
    assert granted(objects, "chat-discovery-role") == set(rbacrules.DRIVETRAIN_DISCOVERY["worker"])


def test_drivetrain_pods_get_the_env_the_kubernetes_backend_reads(render) -> None:
    for deployment in by_kind(render(DRIVETRAIN), "Deployment"):
        (main,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in main["env"]}
        assert env["DRIVETRAIN_DISCOVERY"]["value"] == "kubernetes://"
        for name, path in (
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
            ("POD_UID", "metadata.uid"),
        ):
            assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == path


@pytest.mark.parametrize("url", ["etcd://etcd.infra:2379", "file:///shared"])
def test_an_explicit_store_needs_no_rbac(render, url: str) -> None:
    objects = render(
        DRIVETRAIN.replace("spec:\n  services:", f"spec:\n  discovery: {url}\n  services:")
    )
    assert not by_kind(objects, "ServiceAccount") and not by_kind(objects, "Role")
    assert set(accounts(objects).values()) == {None}


def test_kubernetes_discovery_of_another_namespace_is_refused_for_workers(render) -> None:
    text = DRIVETRAIN.replace(
        "spec:\n  services:", "spec:\n  discovery: kubernetes://other\n  services:"
    )
    with pytest.raises(InvalidGraph) as info:
        render(text)
    (error,) = info.value.errors
    assert error.path == "spec.discovery" and "beside its own pod" in error.message
    assert by_kind(render(text, namespace="other"), "Role")  # its own namespace is fine


def test_a_pod_with_its_own_account_keeps_it_and_counts_for_no_role(render) -> None:
    text = DRIVETRAIN.replace(
        "      extraPodSpec:\n        mainContainer:\n          command: [drivetrain, worker]",
        "      extraPodSpec:\n        serviceAccountName: mine\n        mainContainer:\n"
        "          command: [drivetrain, worker]",
    )
    objects = render(text)
    assert accounts(objects) == {"chat-frontend": "chat-discovery", "chat-decode": "mine"}
    assert granted(objects, "chat-discovery-role") == set(
        rbacrules.DRIVETRAIN_DISCOVERY["frontend"]
    )


# --------------------------------------------------------------------------------- dynamo profile


def test_dynamo_discovery_account_role_and_binding_are_the_operators_names_with_pod_mode_rules(
    render,
) -> None:
    objects = render(DGD)
    sa = "dis-k8s-service-discovery"
    one(objects, "ServiceAccount", sa)
    assert granted(objects, f"{sa}-role") == set(rbacrules.DYNAMO_DISCOVERY["pod", "worker"])
    binding = one(objects, "RoleBinding", f"{sa}-binding")
    # The planner runs Dynamo's runtime too: its own account is bound to the discovery Role.
    assert [s["name"] for s in binding["subjects"]] == [sa, "dis-planner"]
    assert accounts(objects) == {"dis-frontend": sa, "dis-decode": sa, "dis-planner": "dis-planner"}


def test_container_mode_grants_pods_and_delete_instead_of_endpointslices(render) -> None:
    objects = render(
        DGD.replace(
            "annotations: {}", "annotations: {nvidia.com/dynamo-kube-discovery-mode: container}"
        )
    )
    rules = granted(objects, "dis-k8s-service-discovery-role")
    assert rules == set(rbacrules.DYNAMO_DISCOVERY["container", "worker"])
    assert Need("nvidia.com", "dynamoworkermetadatas", "delete") in rules
    assert not any(n.resource == "endpointslices" for n in rules)
    for deployment in by_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["nvidia.com/dynamo-discovery-enabled"] == "true"  # what container mode reads


def test_the_planner_may_scale_only_its_own_graph(render) -> None:
    rules = one(render(DGD), "Role", "dis-planner-role")["rules"]
    assert rules == [
        {
            "apiGroups": ["nvidia.com"],
            "resources": ["dynamographdeployments"],
            "verbs": ["get", "patch"],
            "resourceNames": ["dis"],
        },
        {
            "apiGroups": ["nvidia.com"],
            "resources": ["dynamographdeploymentscalingadapters/scale"],
            "verbs": ["get", "patch"],
            "resourceNames": ["dis-decode", "dis-frontend", "dis-planner"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    ]


def test_every_component_gets_a_service_with_the_discovery_labels(render) -> None:
    objects = render(DGD)
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    assert set(services) == {"dis-frontend", "dis-decode", "dis-planner", "dynamo-model-fb68f5a6"}
    decode = services["dis-decode"]
    assert decode["metadata"]["labels"]["nvidia.com/dynamo-discovery-enabled"] == "true"
    assert decode["metadata"]["labels"]["nvidia.com/dynamo-discovery-backend"] == "kubernetes"
    assert decode["spec"] == {
        "selector": {
            "nvidia.com/dynamo-component-type": "worker",
            "nvidia.com/dynamo-namespace": "ml-dis",
            "nvidia.com/dynamo-component": "decode",
        },
        "ports": [{"name": "system", "port": 9090, "targetPort": "system", "protocol": "TCP"}],
    }
    assert services["dis-frontend"]["spec"]["ports"][0]["name"] == "http"
    pod_labels = one(objects, "Deployment", "dis-decode")["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in decode["spec"]["selector"].items())
    assert pod_labels["nvidia.com/metrics-enabled"] == "true"


def test_model_ref_gets_dynamos_headless_model_service(render) -> None:
    objects = render(DGD)
    service = one(objects, "Service", "dynamo-model-fb68f5a6")  # sha256("Qwen/Qwen3-0.6B")[:8]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"nvidia.com/dynamo-base-model-hash": "fb68f5a6"}
    assert service["metadata"]["annotations"]["nvidia.com/dynamo-base-model"] == "Qwen/Qwen3-0.6B"
    template = one(objects, "Deployment", "dis-decode")["spec"]["template"]
    assert template["metadata"]["labels"]["nvidia.com/dynamo-base-model-hash"] == "fb68f5a6"
    assert schema_errors(service) == []


def test_the_etcd_annotation_turns_kubernetes_discovery_off(render) -> None:
    objects = render(
        DGD.replace("annotations: {}", "annotations: {nvidia.com/dynamo-discovery-backend: etcd}")
    )
    # No discovery account; the planner keeps its own (scaling is not discovery).
    assert [o["metadata"]["name"] for o in by_kind(objects, "ServiceAccount")] == ["dis-planner"]
    assert [o["metadata"]["name"] for o in by_kind(objects, "RoleBinding")] == [
        "dis-planner-binding"
    ]
    assert {s["metadata"]["name"] for s in by_kind(objects, "Service")} == {
        "dis-frontend",
        "dynamo-model-fb68f5a6",
    }
    for deployment in by_kind(objects, "Deployment"):
        template = deployment["spec"]["template"]
        assert "nvidia.com/dynamo-discovery-enabled" not in template["metadata"]["labels"]
        env = {e["name"] for c in template["spec"]["containers"] for e in c["env"]}
        assert "DYN_DISCOVERY_BACKEND" not in env
    assert accounts(objects)["dis-decode"] is None


def test_metrics_label_follows_dynamos_annotation(render) -> None:
    objects = render(
        DGD.replace("annotations: {}", 'annotations: {nvidia.com/enable-metrics: "false"}')
    )
    for deployment in by_kind(objects, "Deployment"):
        assert (
            "nvidia.com/metrics-enabled" not in deployment["spec"]["template"]["metadata"]["labels"]
        )


# --------------------------------------------------------------------------------- trainers

TRAINER = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: rl}
spec:
  services:
    trainer:
      componentType: trainer
      extraPodSpec:
        mainContainer: {image: trainer:1, command: [python3, train.py]}
"""


def test_trainers_get_jax_bootstrap_rules_and_services_only_without_a_subdomain(render) -> None:
    objects = render(TRAINER)
    assert accounts(objects) == {"rl-trainer": "rl-trainer"}
    assert granted(objects, "rl-trainer-role") == {
        *rbacrules.TRAINER,
        *rbacrules.TRAINER_WITHOUT_SUBDOMAIN,
    }
    with_subdomain = TRAINER.replace(
        "      extraPodSpec:\n", "      extraPodSpec:\n        subdomain: rl\n"
    )
    assert granted(render(with_subdomain), "rl-trainer-role") == set(rbacrules.TRAINER)
    # A multinode trainer is an Indexed Job whose pods have a subdomain, whatever the deployer.
    multinode = TRAINER.replace(
        "      componentType: trainer\n",
        "      componentType: trainer\n      multinode: {nodeCount: 2}\n",
    )
    for deployer in ("lws", "grove"):
        assert granted(render(multinode, multinode=deployer), "rl-trainer-role") == set(
            rbacrules.TRAINER
        )


# --------------------------------------------------------------------------------- MPI SSH secret

TRTLLM = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: big}
spec:
  backendFramework: trtllm
  services:
    decode:
      componentType: worker
      multinode: {nodeCount: 2}
      resources: {limits: {gpu: "8"}}
      extraPodSpec:
        mainContainer: {image: dyn:1, command: [python3, -m, dynamo.trtllm]}
"""


def test_trtllm_multinode_gets_a_placeholder_for_the_secret_it_mounts(render) -> None:
    objects = render(TRTLLM)
    secret = one(objects, "Secret", "mpi-run-ssh-secret")
    assert "data" not in secret and "stringData" not in secret  # kubectl apply keeps real keys
    note = secret["metadata"]["annotations"]["drivetrain.dev/placeholder"]
    assert "kubectl create secret generic mpi-run-ssh-secret -n ml" in note
    lws = one(objects, "LeaderWorkerSet")
    volumes = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["volumes"]
    assert {
        "name": "mpi-run-ssh-secret",
        "secret": {"secretName": "mpi-run-ssh-secret", "defaultMode": 0o644},
    } in volumes
    assert schema_errors(secret) == []
    single = TRTLLM.replace("      multinode: {nodeCount: 2}\n", "")
    assert not by_kind(render(single), "Secret")
