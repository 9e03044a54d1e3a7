"""Dynamo's vectors for DRA, the GMS sidecar, the failover pod and the checkpoint identity:
drivetrain's functions on the vectors' own inputs give the vectors' outputs.

Where drivetrain deliberately differs (it resolves the main container by name; Dynamo takes
``Containers[0]``) the test says so; docs/gms-failover.md lists the differences.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from drivetrain.api.models import CheckpointIdentity
from drivetrain.render import checkpoint, failover, gpu
from tests.paths import SHARED
from tests.render import vector_adapter as va

if not (SHARED / "vectors").exists():
    pytest.skip("../shared/vectors is not beside this clone", allow_module_level=True)


def _table(vector_id: str) -> list[Any]:
    return va.vector(vector_id)["expected"]["table"]  # type: ignore[no-any-return]


def test_claim_template_names() -> None:
    for (graph, service), name in _table("dra.resourceClaimTemplateName"):
        assert gpu.claim_template_name(graph, service) == name


def test_claim_templates_ask_for_the_gpus_of_the_device_class() -> None:
    for given, expected in _table("dra.generateResourceClaimTemplate"):
        template = gpu.resource_claim_template(
            given["name"],
            namespace=given["ns"],
            gpus=given["gpus"],
            device_class=given["deviceClass"] or None,
            graph_name="myapp",
        )
        if expected["toDelete"]:
            assert template is None
            continue
        assert template is not None
        assert template["apiVersion"] == "resource.k8s.io/v1"
        assert template["metadata"]["name"] == given["name"]
        assert template["spec"]["spec"]["devices"]["requests"] == expected["requests"]


def _pod_with_gpus(first_is_main: bool) -> dict[str, Any]:
    main = {
        "name": "main",
        "image": "test-image:latest",
        "resources": {
            "limits": {"nvidia.com/gpu": "2", "memory": "8Gi"},
            "requests": {"nvidia.com/gpu": "2"},
        },
    }
    sidecar = {"name": "sidecar", "image": "busybox", "resources": {"limits": {"cpu": "1"}}}
    return {"containers": [main, sidecar] if first_is_main else [sidecar, main]}


@pytest.mark.parametrize("first_is_main", [True, False], ids=["main-first", "sidecar-first"])
def test_apply_claim_replaces_the_gpus_of_main_with_the_claim(first_is_main: bool) -> None:
    expected = va.vector("dra.applyClaim")["expected"]
    spec = _pod_with_gpus(first_is_main)
    gpu.apply_claim(spec, va.vector("dra.applyClaim")["input"]["claim_template_name"])
    main = next(c for c in spec["containers"] if c["name"] == "main")
    sidecar = next(c for c in spec["containers"] if c["name"] == "sidecar")
    assert main["resources"] == {
        "limits": {"memory": "8Gi"},  # the GPUs went, the rest stayed; requests had only GPUs
        "claims": expected["containers[0].resources.claims"],
    }
    # Dynamo's quirk would put the claim on Containers[0], the sidecar, in the second case.
    assert sidecar["resources"] == {"limits": {"cpu": "1"}}
    assert spec["resourceClaims"] == expected["resourceClaims"]
    assert expected["tolerations_contains"] in spec["tolerations"]
    assert "initContainers" not in spec
    again = copy.deepcopy(spec)
    gpu.apply_claim(again, "myapp-worker-gpu")
    assert again == spec, "apply_claim is idempotent"


def test_apply_claim_needs_a_container() -> None:
    with pytest.raises(gpu.NoMainContainer):
        gpu.apply_claim({"containers": []}, "x-gpu")


def test_the_gms_server_sidecar_is_dynamos() -> None:
    vector = va.vector("gms.ensureServerSidecar")
    spec = copy.deepcopy(vector["input"]["pod_spec"])
    gpu.ensure_gms_server(spec)
    expected = vector["expected"]
    assert spec["initContainers"] == expected["initContainers"]
    assert expected["volumes_contains"] in spec["volumes"]
    (main,) = spec["containers"]
    assert {"name": "GMS_SOCKET_DIR", "value": "/gms-intrapod-control"} in main["env"]
    assert expected["main.volumeMounts_contains"] in main["volumeMounts"]
    again = copy.deepcopy(spec)
    gpu.ensure_gms_server(again)
    assert again == spec, "ensure_gms_server is idempotent"


@pytest.mark.parametrize("vector_id", ["failover.vllm.nodes-1", "failover.vllm.nodes-4"])
def test_the_failover_pod_is_dynamos(vector_id: str) -> None:
    vector = va.vector(vector_id)
    spec = copy.deepcopy(vector["input"]["pod_spec"])
    failover.apply_failover(spec, profile="dynamo", engine="vllm", node_count=vector["node_count"])
    expected = vector["expected"]
    assert [c["name"] for c in spec["containers"]] == expected["container_names"]
    assert spec["containers"][:2] == expected["derived_exact_engines"]
    assert spec["containers"][2] == vector["input"]["pod_spec"]["containers"][1]


@pytest.mark.parametrize("engine", ["sglang", "trtllm", None])
def test_failover_of_other_engines_is_refused(engine: str | None) -> None:
    spec = copy.deepcopy(va.vector("failover.vllm.nodes-1")["input"]["pod_spec"])
    with pytest.raises(failover.FailoverError, match="supported only for vLLM"):
        failover.apply_failover(spec, profile="dynamo", engine=engine, node_count=1)


@pytest.mark.parametrize(
    "vector_id", ["checkpoint.identityHash.basic", "checkpoint.identityHash.all-fields"]
)
def test_identity_hash(vector_id: str) -> None:
    vector = va.vector(vector_id)
    identity = CheckpointIdentity.model_validate(vector["input"]["identity"])
    assert checkpoint.canonical_identity(identity) == vector["expected"]["canonical_json"]
    assert checkpoint.identity_hash(identity) == vector["expected"]["hash"]


def test_identity_hash_escapes_as_go_does() -> None:
    # Go's json.Marshal escapes <, > and & (HTML-safe) and keeps other characters as UTF-8.
    identity = CheckpointIdentity(model="a<b>&ü", backendFramework="vllm")
    assert checkpoint.canonical_identity(identity).startswith('{"model":"a\\u003cb\\u003e\\u0026ü"')


def test_checkpoint_job_names() -> None:
    for (checkpoint_id, version), name in _table("snapshot.checkpointJobName"):
        assert checkpoint.job_name(checkpoint_id, version) == name
