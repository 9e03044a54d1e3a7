"""``drivetrain render`` of a file with documents beside the graph, as a user runs it: the
documents on stdout, one stderr line per external reference, ``--graphs-only``, errors."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cli.helpers import run_cli
from tests.render.test_siblings import CONFIG_MAP, FILE, GRAPH


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "graph.yaml"
    path.write_text(text)
    return str(path)


def external_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("external: ")]


def test_render_prints_the_documents_and_says_how_to_create_each_external_object(
    tmp_path: Path,
) -> None:
    result = run_cli("render", "-f", write(tmp_path, FILE), "-n", "ml")
    assert result.returncode == 0, result.stderr
    kinds = [(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(result.stdout)]
    assert ("ConfigMap", "engine-config") in kinds
    assert ("PersistentVolumeClaim", "model-cache") in kinds
    assert external_lines(result.stderr) == [
        "external: secret/hf-token-secret (used by Deployment/demo-worker): kubectl create "
        "secret generic hf-token-secret -n ml --from-literal=<NAME>=<value> (each key becomes an "
        "env variable of the containers)",
        "external: secret/registry (used by Deployment/demo-worker): kubectl create secret "
        "docker-registry registry -n ml --docker-server=<registry> --docker-username=<user> "
        "--docker-password=<password>",
        "external: secret/s3 (used by Deployment/demo-worker): kubectl create secret generic s3 "
        "-n ml --from-literal=AWS_ACCESS_KEY_ID=...",
    ]


def test_graphs_only_passes_the_documents_over_and_names_them_where_external(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, FILE)
    result = run_cli("render", "-f", path, "-n", "ml", "--graphs-only")
    assert result.returncode == 0, result.stderr
    kinds = [o["kind"] for o in yaml.safe_load_all(result.stdout)]
    assert kinds == [
        *("ServiceAccount", "Role", "RoleBinding"),  # the pods' discovery RBAC
        *("PersistentVolumeClaim", "Deployment", "Deployment", "Service", "Service"),
    ]
    assert f"{path}: document 1: ConfigMap engine-config is not a graph; passed over" in (
        result.stderr
    )
    (line,) = [x for x in external_lines(result.stderr) if "configmap/engine-config" in x]
    assert line.endswith(
        "kubectl create configmap engine-config -n ml --from-file=<path> (each key becomes a file "
        f"in the mounted volume); {path} document 1 defines it, passed over by --graphs-only"
    )


def test_a_document_in_another_namespace_fails_render_with_nothing_on_stdout_but_validates(
    tmp_path: Path,
) -> None:
    other = CONFIG_MAP.replace("name: engine-config}", "name: engine-config, namespace: prod}")
    path = write(tmp_path, f"{GRAPH}---\n{other}")
    result = run_cli("render", "-f", path, "-n", "ml")
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"error: {path} (document 2): metadata.namespace: 'prod' is not the namespace" in (
        result.stderr
    )
    assert run_cli("render", "-f", path, "-n", "prod").returncode == 0
    validated = run_cli("validate", "-f", path)
    assert validated.returncode == 0, validated.stderr
