"""The shipped RayCluster schema and its walk: the file is what the trim script makes from
KubeRay's CRD, and the walker decides as jsonschema does over that CRD, on RayCluster specs and
on mutants of them with one value of the wrong type or one unknown field."""

from __future__ import annotations

import copy
import runpy
from importlib import resources
from typing import Any

import pytest
import yaml

from drivetrain.api import kuberay
from tests.api.test_podspec_schema import _mutants
from tests.paths import REPO, shared
from tests.schemas import crd_validators

SPECS = [
    """
    headGroupSpec:
      rayStartParams: {num-cpus: "0"}
      serviceType: ClusterIP
      template:
        metadata: {labels: {team: rl}}
        spec:
          containers:
            - name: ray-head
              image: rayproject/ray:2.52.0
              ports: [{containerPort: 6379, name: gcs}, {containerPort: 8265, name: dashboard}]
              resources: {limits: {cpu: "2", memory: 8Gi}, requests: {cpu: "1", memory: 4Gi}}
              env: [{name: A, value: "1"}]
    """,
    """
    rayVersion: "2.52.0"
    enableInTreeAutoscaling: true
    autoscalerOptions: {idleTimeoutSeconds: 60, upscalingMode: Default}
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers: [{name: ray-head, image: rayproject/ray:2.52.0}]
          tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    workerGroupSpecs:
      - groupName: gpu
        replicas: 2
        minReplicas: 0
        maxReplicas: 4
        rayStartParams: {num-gpus: "8"}
        template:
          spec:
            containers:
              - name: ray-worker
                image: rayproject/ray:2.52.0-gpu
                resources: {limits: {nvidia.com/gpu: 8}}
                volumeMounts: [{name: shm, mountPath: /dev/shm}]
            volumes: [{name: shm, emptyDir: {medium: Memory, sizeLimit: 16Gi}}]
    """,
]


def _samples() -> list[dict[str, Any]]:
    run = yaml.safe_load((REPO / "examples" / "rl" / "run.yaml").read_text())
    return [yaml.safe_load(s) for s in SPECS] + [run["spec"]["ray"]["cluster"]["spec"]]


def test_the_shipped_schema_is_the_trim_scripts_output() -> None:
    shared("crds", "kuberay")
    script = runpy.run_path(str(REPO / "scripts" / "trim-kuberay-schema.py"))
    shipped = resources.files("drivetrain.api").joinpath("schemas/raycluster.json").read_text()
    assert shipped == script["render"]()


@pytest.fixture(scope="module")
def reference():
    shared("crds", "kuberay")
    validator = crd_validators()[("ray.io/v1", "RayCluster")]

    def valid(spec: dict[str, Any]) -> bool:
        obj = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {}, "spec": spec}
        return validator.is_valid(obj)

    return valid


def test_the_walker_agrees_with_jsonschema_over_kuberays_crd(reference) -> None:
    compared = 0
    for sample in _samples():
        assert kuberay.check_cluster_spec(sample, "spec") == [], sample
        for mutant in _mutants(sample, limit=200):
            ours = not kuberay.check_cluster_spec(mutant, "spec")
            assert ours == reference(mutant), (mutant, kuberay.check_cluster_spec(mutant, "spec"))
            compared += 1
    assert compared > 90


def test_a_defaulted_required_field_may_be_left_out() -> None:
    """minReplicas/maxReplicas are required in the CRD but defaulted before validation."""
    spec = _samples()[1]
    for group in spec["workerGroupSpecs"]:
        del group["minReplicas"], group["maxReplicas"]
    assert kuberay.check_cluster_spec(spec, "spec") == []


def test_errors_name_the_field_path() -> None:
    spec = copy.deepcopy(_samples()[1])
    spec["workerGroupSpecs"][0]["replicas"] = "two"
    spec["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    spec["headGroupSpec"]["colour"] = "blue"
    messages = [str(e) for e in kuberay.check_cluster_spec(spec, "spec.ray.cluster.spec")]
    assert messages == [
        "<input>: spec.ray.cluster.spec.headGroupSpec.template.spec.containers[0].imagePullPolicy:"
        " must be a string (got 3)",
        "<input>: spec.ray.cluster.spec.headGroupSpec.colour: unknown field",
        "<input>: spec.ray.cluster.spec.workerGroupSpecs[0].replicas: must be an integer (got 'two')",
    ]


def test_kuberays_own_rules_beyond_the_schema() -> None:
    spec = _samples()[1]
    spec["workerGroupSpecs"][0]["template"]["spec"]["containers"] = []
    (error,) = kuberay.check_cluster_spec(spec, "spec")
    assert error.path == "spec.workerGroupSpecs[0].template.spec.containers"
    assert kuberay.check_name("a" * 47, "RayJob", "metadata.name") == []
    assert "longer than KubeRay's 47" in kuberay.check_name("a" * 48, "RayJob", "x")[0].message
    assert kuberay.check_name("a" * 53, "RayCluster", "x") == []
    assert "DNS-1035" in kuberay.check_name("1run", "RayJob", "x")[0].message
