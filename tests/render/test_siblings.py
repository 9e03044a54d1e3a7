"""Documents beside a graph (ConfigMaps, PVCs, RBAC, ResourceClaimTemplates...) are rendered
with it as ``kubectl apply -f FILE -n NS`` would apply them, and what none of them nor the render
provides is declared external on the pod templates (docs/rendering.md)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from drivetrain.api import InvalidGraph, load_text
from drivetrain.podrefs import EXTERNAL_REFS_ANNOTATION
from drivetrain.render.external import pod_templates
from drivetrain.render.siblings import render_documents

GRAPH = """\
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: demo}
spec:
  pvcs:
    - {name: made, create: true, size: 1Gi, storageClass: standard, volumeAccessMode: ReadWriteOnce}
  services:
    Frontend:
      componentType: frontend
      extraPodSpec:
        mainContainer: {image: "dynamo:1"}
    worker:
      componentType: worker
      envFromSecret: hf-token-secret
      volumeMounts: [{name: made, mountPoint: /made}]
      extraPodMetadata:
        annotations: {team: ml}
      extraPodSpec:
        imagePullSecrets: [{name: registry}]
        volumes:
          - name: conf
            configMap: {name: engine-config}
          - name: models
            persistentVolumeClaim: {claimName: model-cache}
        mainContainer:
          image: "dynamo:1"
          command: [python3, -m, dynamo.vllm]
          args: [--model, m]
          env:
            - name: AWS_KEY
              valueFrom: {secretKeyRef: {name: s3, key: AWS_ACCESS_KEY_ID}}
          volumeMounts:
            - {name: conf, mountPath: /etc/engine}
            - {name: models, mountPath: /models}
"""
CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: engine-config}
data: {engine.yaml: "tp: 1"}
"""
PVC = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: model-cache, labels: {tier: storage}}
spec:
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 10Gi}}
"""
FILE = f"{CONFIG_MAP}---\n{GRAPH}---\n{PVC}"


def render(text: str, **options: Any) -> list[dict[str, Any]]:
    options.setdefault("namespace", "ml")
    return render_documents(load_text(textwrap.dedent(text), "f.yaml"), **options)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def external_refs(objects: list[dict[str, Any]]) -> dict[str, str | None]:
    """Each pod template's annotation, by workload (and clique)."""
    out = {}
    for obj in objects:
        for i, template in enumerate(pod_templates(obj)):
            key = f"{obj['kind']}/{obj['metadata']['name']}#{i}"
            out[key] = template.annotations.get(EXTERNAL_REFS_ANNOTATION)
    return out


def test_documents_beside_the_graph_come_out_in_file_order_in_its_namespace_labelled() -> None:
    objects = render(FILE)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ConfigMap", "engine-config"),
        # the graph's own objects, in apply order (docs/rendering.md)
        ("ServiceAccount", "demo-k8s-service-discovery"),
        ("Role", "demo-k8s-service-discovery-role"),
        ("RoleBinding", "demo-k8s-service-discovery-binding"),
        ("PersistentVolumeClaim", "made"),
        ("Deployment", "demo-frontend"),
        ("Deployment", "demo-worker"),
        ("Service", "demo-frontend"),
        ("Service", "demo-worker"),
        ("PersistentVolumeClaim", "model-cache"),
    ]
    config_map, pvc = objects[0], objects[-1]
    assert config_map == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "engine-config",
            "namespace": "ml",
            "labels": {"drivetrain.dev/graph": "demo"},
        },
        "data": {"engine.yaml": "tp: 1"},
    }
    assert pvc["metadata"]["labels"] == {"tier": "storage", "drivetrain.dev/graph": "demo"}
    assert pvc["spec"] == yaml.safe_load(PVC)["spec"]


def test_what_neither_the_render_nor_the_file_provides_is_declared_on_the_pod_template() -> None:
    objects = render(FILE)
    assert external_refs(objects) == {
        "Deployment/demo-frontend#0": None,
        "Deployment/demo-worker#0": "secret/hf-token-secret,secret/registry,secret/s3",
    }
    worker = by_kind(objects, "Deployment")[1]
    # The user's own pod annotations stay beside it.
    assert worker["spec"]["template"]["metadata"]["annotations"]["team"] == "ml"


def test_graphs_only_renders_today_s_objects_and_the_documents_count_as_external() -> None:
    objects = render(FILE, graphs_only=True)
    assert [o["kind"] for o in objects] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "PersistentVolumeClaim",
        "Deployment",
        "Deployment",
        "Service",
        "Service",
    ]
    assert external_refs(objects)["Deployment/demo-worker#0"] == (
        "configmap/engine-config,persistentvolumeclaim/model-cache,secret/hf-token-secret,"
        "secret/registry,secret/s3"
    )


def test_rendering_twice_gives_the_same_objects_and_leaves_the_graph_model_alone() -> None:
    loaded = load_text(FILE, "f.yaml")
    first = render_documents(loaded, namespace="ml")
    assert loaded.graphs[0].spec.services["worker"].extraPodMetadata.annotations == {"team": "ml"}
    assert render_documents(loaded, namespace="ml") == first


def test_multinode_templates_and_grove_cliques_carry_the_annotation() -> None:
    multinode = GRAPH.replace(
        "      componentType: worker\n",
        "      componentType: worker\n      multinode: {nodeCount: 2}\n"
        "      resources: {limits: {gpu: '1'}}\n",
    ).replace("args: [--model, m]", "args: [--model, m, --tensor-parallel-size, '2']")
    for multinode_api, expected in (
        ("lws", ["LeaderWorkerSet/demo-worker#0", "LeaderWorkerSet/demo-worker#1"]),
        ("grove", ["PodCliqueSet/demo#1", "PodCliqueSet/demo#2"]),
    ):
        refs = external_refs(render(multinode, multinode=multinode_api))
        declared = [key for key, value in refs.items() if value]
        assert declared == expected, multinode_api
        assert all(
            refs[key] == "configmap/engine-config,persistentvolumeclaim/model-cache,"
            "secret/hf-token-secret,secret/registry,secret/s3"
            for key in expected
        )


def test_a_namespace_other_than_the_rendered_one_is_an_error_as_in_kubectl() -> None:
    other = CONFIG_MAP.replace("name: engine-config}", "name: engine-config, namespace: prod}")
    with pytest.raises(InvalidGraph) as info:
        render(f"{GRAPH}---\n{other}")
    (error,) = info.value.errors
    assert str(error) == (
        "f.yaml (document 2): metadata.namespace: 'prod' is not the namespace the graph renders "
        "into ('ml'); kubectl apply -n ml refuses it too: remove it, or render with -n prod"
    )
    same = render(f"{GRAPH}---\n{other}", namespace="prod")
    assert by_kind(same, "ConfigMap")[0]["metadata"]["namespace"] == "prod"
    # validate renders into no namespace in particular: the written one stays.
    kept = render(f"{GRAPH}---\n{other}", check_namespaces=False)
    assert by_kind(kept, "ConfigMap")[0]["metadata"]["namespace"] == "prod"


def test_cluster_scoped_documents_get_no_namespace() -> None:
    binding = """\
    apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: {name: planner}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
    subjects: [{kind: ServiceAccount, name: planner, namespace: ml}]
    """
    (crb,) = by_kind(render(f"{GRAPH}---\n{textwrap.dedent(binding)}"), "ClusterRoleBinding")
    assert crb["metadata"] == {"name": "planner", "labels": {"drivetrain.dev/graph": "demo"}}


def test_with_several_graphs_a_document_belongs_to_the_first_graph_that_uses_it() -> None:
    plain = GRAPH.replace("name: demo", "name: plain").replace("engine-config", "other-config")
    objects = render(f"{plain}---\n{GRAPH}---\n{CONFIG_MAP}---\n{PVC.replace('model-cache', 'x')}")
    labels = {
        o["metadata"]["name"]: o["metadata"]["labels"]["drivetrain.dev/graph"]
        for o in objects
        if o["kind"] in ("ConfigMap", "PersistentVolumeClaim")
    }
    # engine-config is used by demo only; x by no graph: the first graph of the file.
    assert labels["engine-config"] == "demo"
    assert labels["x"] == "plain"


def test_a_document_with_the_name_of_a_rendered_object_or_of_another_document_is_an_error() -> None:
    made = PVC.replace("model-cache", "made")
    with pytest.raises(InvalidGraph) as info:
        render(f"{GRAPH}---\n{made}---\n{CONFIG_MAP}---\n{CONFIG_MAP}")
    assert [str(e) for e in info.value.errors] == [
        "f.yaml (document 2): metadata.name: PersistentVolumeClaim made is also rendered by "
        "graph demo; rename one of them",
        "f.yaml (document 4): metadata.name: ConfigMap engine-config is also written in "
        "document 3; kubectl apply would let this one replace it",
    ]


def test_the_items_of_a_list_are_documents_of_their_own() -> None:
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [yaml.safe_load(CONFIG_MAP), yaml.safe_load(PVC)],
    }
    objects = render(f"{GRAPH}---\n{yaml.safe_dump(listed)}")
    assert [o["metadata"]["name"] for o in objects[-2:]] == ["engine-config", "model-cache"]
    assert external_refs(objects)["Deployment/demo-worker#0"] == (
        "secret/hf-token-secret,secret/registry,secret/s3"
    )
    listed["items"].append(yaml.safe_load(GRAPH))
    with pytest.raises(InvalidGraph, match=r"document 2\): items\[2\]: a graph inside a List"):
        render(f"{GRAPH}---\n{yaml.safe_dump(listed)}")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {a: b}}\n",
            "metadata.name: expected a non-empty string (kubectl apply needs a name)",
        ),
        ("apiVersion: v1\nkind: ConfigMap\n", "metadata: expected a mapping with a name"),
        (
            "kind: ConfigMap\nmetadata: {name: x}\n",
            "apiVersion: a Kubernetes object needs a non-empty string here",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: {tier: true}}\n",
            "metadata.labels.tier: expected a string, got True (quote it)",
        ),
        ("apiVersion: v1\nkind: List\nitems: 3\n", "items: a List needs a list of items"),
    ],
)
def test_a_document_kubectl_could_not_apply_is_an_error_with_its_field(
    document: str, message: str
) -> None:
    with pytest.raises(InvalidGraph) as info:
        load_text(f"{GRAPH}---\n{document}", "f.yaml")
    assert [str(e) for e in info.value.errors] == [f"f.yaml (document 2): {message}"]


def test_a_compute_domain_provides_the_resource_claim_template_its_controller_creates() -> None:
    claimed = GRAPH.replace(
        "        imagePullSecrets: [{name: registry}]\n",
        "        imagePullSecrets: [{name: registry}]\n"
        "        resourceClaims: [{name: ch, resourceClaimTemplateName: domain-channel}]\n",
    )
    domain = """\
    apiVersion: resource.nvidia.com/v1beta1
    kind: ComputeDomain
    metadata: {name: domain}
    spec:
      numNodes: 2
      channel: {resourceClaimTemplate: {name: domain-channel}}
    """
    with_domain = render(f"{claimed}---\n{textwrap.dedent(domain)}")
    assert "domain-channel" not in str(external_refs(with_domain))
    without = render(claimed)
    assert "resourceclaimtemplate/domain-channel" in str(external_refs(without))
