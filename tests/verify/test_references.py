"""verify: a Secret or ConfigMap a pod reads must be among the verified objects or declared
external (``drivetrain.dev/external-refs``); otherwise a warning per pod, an error with
``--strict`` (docs/verify.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from drivetrain.podrefs import EXTERNAL_REFS_ANNOTATION
from drivetrain.verify import verify_manifests
from tests.cli.helpers import run_cli
from tests.render.test_siblings import FILE
from tests.verify.manifests import container, lws, pod_template

MAIN = container(
    ["python3", "serve.py"],
    envFrom=[{"secretRef": {"name": "hf-token-secret"}}],
    env=[
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "o", "key": "k", "optional": True}}},
    ],
)


def deployment(
    main: dict[str, Any] = MAIN, annotations: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    template = pod_template(main, **spec)
    if annotations:
        template["metadata"]["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ml"},
        "spec": {"template": template},
    }


def config_map(data: dict[str, str], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "cfg"}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def warnings_of(objects: list[dict[str, Any]]) -> list[str]:
    return [str(w) for w in verify_manifests(objects).reference_warnings]


def test_a_secret_and_a_configmap_nobody_creates_are_one_warning_each_per_pod() -> None:
    assert warnings_of([deployment()]) == [
        "Deployment/d pod d-5d8f7c9b4-x7k2p (container main envFrom): secret/hf-token-secret is "
        "neither among the verified objects nor declared external (drivetrain.dev/external-refs); "
        "without it the container cannot start (CreateContainerConfigError)",
        "Deployment/d pod d-5d8f7c9b4-x7k2p (container main env MODE): configmap/cfg is neither "
        "among the verified objects nor declared external (drivetrain.dev/external-refs); "
        "without it the container cannot start (CreateContainerConfigError)",
    ]


def test_objects_verified_beside_the_pod_or_declared_external_are_no_warning() -> None:
    declared = {EXTERNAL_REFS_ANNOTATION: "secret/hf-token-secret"}
    assert warnings_of([deployment(annotations=declared), config_map({"mode": "fast"})]) == []
    assert warnings_of([deployment(annotations=declared), config_map({"mode": "x"}, "ml")]) == []
    # In another namespace it is no help to this pod.
    (warning,) = warnings_of([deployment(annotations=declared), config_map({"mode": "x"}, "qa")])
    assert "configmap/cfg is neither among the verified objects" in warning


def test_a_key_the_verified_object_does_not_hold_is_a_warning() -> None:
    declared = {EXTERNAL_REFS_ANNOTATION: "secret/hf-token-secret"}
    (warning,) = warnings_of([deployment(annotations=declared), config_map({"other": "1"})])
    assert warning == (
        "Deployment/d pod d-5d8f7c9b4-x7k2p (container main env MODE): configmap/cfg has no key "
        "'mode'; without it the container cannot start (CreateContainerConfigError)"
    )
    volume = {"name": "v", "secret": {"secretName": "tls", "items": [{"key": "crt", "path": "c"}]}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}}
    main = container(["python3", "serve.py"])
    (missing,) = warnings_of([deployment(main, volumes=[volume]), secret])
    assert "secret/tls has no key 'crt'; without it the volume cannot be mounted" in missing
    assert (
        warnings_of([deployment(main, volumes=[volume]), {**secret, "stringData": {"crt": "x"}}])
        == []
    )


def test_pvcs_and_service_accounts_are_not_this_check_s() -> None:
    main = container(["python3", "serve.py"])
    volume = {"name": "m", "persistentVolumeClaim": {"claimName": "models"}}
    assert warnings_of([deployment(main, volumes=[volume], serviceAccountName="sa")]) == []


def test_each_pod_of_a_group_is_reported() -> None:
    reader = container(["python3", "serve.py"], envFrom=[{"secretRef": {"name": "tok"}}])
    group = lws(reader, reader, size=2, replicas=1)
    pods = [w.split(" (")[0] for w in warnings_of([group])]
    assert pods == [
        "LeaderWorkerSet/g-worker pod g-worker-0",
        "LeaderWorkerSet/g-worker pod g-worker-0-1",
    ]


def test_verify_of_a_rendered_graph_warns_only_when_the_declaration_is_taken_away(
    tmp_path: Path,
) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(FILE)
    result = run_cli("verify", "-f", str(graph), "-n", "ml", "--strict")
    assert result.returncode == 0, result.stderr
    rendered = run_cli("render", "-f", str(graph), "-n", "ml")
    objects = list(yaml.safe_load_all(rendered.stdout))
    for obj in objects:
        if obj["kind"] == "Deployment":
            template_meta = obj["spec"]["template"]["metadata"]
            (template_meta.get("annotations") or {}).pop(EXTERNAL_REFS_ANNOTATION, None)
    stripped = tmp_path / "stripped.yaml"
    stripped.write_text(yaml.safe_dump_all(objects))
    warned = run_cli("verify", "-f", str(stripped))
    assert warned.returncode == 0, warned.stderr
    lines = [line for line in warned.stderr.splitlines() if line.startswith("warning: ")]
    assert [line.split(": ")[2].split(" is ")[0] for line in lines] == [
        "secret/hf-token-secret",
        "secret/s3",
        "secret/registry",
    ]
    strict = run_cli("verify", "-f", str(stripped), "--strict")
    assert strict.returncode == 1
    assert strict.stdout == ""
    assert strict.stderr.count("(a warning; --strict makes it an error)") == 3
