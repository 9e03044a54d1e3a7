"""``drivetrain.podrefs``: every field of a pod spec that names an object the pod needs."""

from __future__ import annotations

from drivetrain.podrefs import format_tokens, parse_tokens, pod_references

SPEC = {
    "serviceAccountName": "planner",
    "imagePullSecrets": [{"name": "registry"}],
    "initContainers": [
        {"name": "init", "envFrom": [{"configMapRef": {"name": "init-env"}}]},
    ],
    "containers": [
        {
            "name": "main",
            "envFrom": [
                {"secretRef": {"name": "hf-token-secret"}},
                {"secretRef": {"name": "maybe", "optional": True}},
            ],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "ACCESS"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        }
    ],
    "ephemeralContainers": [
        {
            "name": "debug",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "dbg", "key": "x"}}}],
        }
    ],
    "volumes": [
        {"name": "ssh", "secret": {"secretName": "mpi", "items": [{"key": "id", "path": "id"}]}},
        {"name": "conf", "configMap": {"name": "trtllm-config"}},
        {"name": "models", "persistentVolumeClaim": {"claimName": "model-cache"}},
        {
            "name": "both",
            "projected": {
                "sources": [
                    {"secret": {"name": "proj-secret"}},
                    {"configMap": {"name": "proj-cm", "items": [{"key": "k", "path": "k"}]}},
                    {"serviceAccountToken": {"path": "token"}},
                ]
            },
        },
        {"name": "csi", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi-creds"}}},
        {"name": "ceph", "cephfs": {"monitors": ["m"], "secretRef": {"name": "ceph-creds"}}},
        {"name": "shm", "emptyDir": {"medium": "Memory"}},
        {"name": "gone", "secret": {"secretName": "opt", "optional": True}},
    ],
    "resourceClaims": [
        {"name": "gpu", "resourceClaimTemplateName": "gpu-template"},
        {"name": "old", "source": {"resourceClaimTemplateName": "old-template"}},
        {"name": "shared", "resourceClaimName": "one-claim"},
    ],
}


def test_every_field_that_names_an_object_is_read_and_optional_ones_are_not() -> None:
    refs = pod_references(SPEC)
    assert [(r.token, r.where) for r in refs] == [
        ("configmap/init-env", "container init envFrom"),
        ("secret/hf-token-secret", "container main envFrom"),
        ("secret/s3", "container main env KEY"),
        ("configmap/cfg", "container main env MODE"),
        ("secret/dbg", "container debug env X"),
        ("secret/mpi", "volume ssh"),
        ("configmap/trtllm-config", "volume conf"),
        ("persistentvolumeclaim/model-cache", "volume models"),
        ("secret/proj-secret", "volume both"),
        ("configmap/proj-cm", "volume both"),
        ("secret/csi-creds", "volume csi"),
        ("secret/ceph-creds", "volume ceph"),
        ("secret/registry", "imagePullSecrets"),
        ("serviceaccount/planner", "serviceAccountName"),
        ("resourceclaimtemplate/gpu-template", "resourceClaims gpu"),
        ("resourceclaimtemplate/old-template", "resourceClaims old"),
        ("resourceclaim/one-claim", "resourceClaims shared"),
    ]
    by_token = {r.token: r for r in refs}
    assert by_token["secret/s3"].keys == ("ACCESS",)
    assert by_token["secret/hf-token-secret"].every_key
    assert by_token["secret/mpi"].keys == ("id",) and not by_token["secret/mpi"].every_key
    assert by_token["configmap/trtllm-config"].every_key


def test_the_default_service_account_needs_no_creating() -> None:
    assert pod_references({"serviceAccountName": "default", "containers": []}) == []
    (ref,) = pod_references({"serviceAccount": "legacy", "containers": []})
    assert ref.token == "serviceaccount/legacy"


def test_malformed_parts_are_passed_over_not_raised() -> None:
    spec = {
        "containers": ["not a container", {"name": "m", "env": [None, {"valueFrom": 3}]}],
        "volumes": {"not": "a list"},
        "imagePullSecrets": [{"name": ""}, "x"],
    }
    assert pod_references(spec) == []


def test_tokens_are_written_sorted_and_read_back() -> None:
    value = format_tokens(["secret/b", "configmap/a", "secret/b"])
    assert value == "configmap/a,secret/b"
    assert parse_tokens(value) == {"configmap/a", "secret/b"}
    assert parse_tokens(" secret/x , ,") == {"secret/x"}
    assert parse_tokens(None) == set()
