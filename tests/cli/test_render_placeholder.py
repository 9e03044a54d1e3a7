"""``drivetrain render`` of TRT-LLM multinode: the MPI SSH Secret is a placeholder, and render says
so on stderr and above the object, with a command that makes the real one."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.cli.helpers import run_cli

GRAPH = """\
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


def test_render_says_the_secret_is_a_placeholder_and_how_to_make_it(tmp_path) -> None:
    result = run_cli("render", "-f", "-", "-n", "ml", stdin=GRAPH)
    assert result.returncode == 0, result.stderr
    assert "<stdin>: Secret mpi-run-ssh-secret is a placeholder:" in result.stderr
    documents = result.stdout.split("---\n")
    (secret_doc,) = [d for d in documents if "kind: Secret" in d]
    comments = [line[2:] for line in secret_doc.splitlines() if line.startswith("# ")]
    assert comments[0].startswith("PLACEHOLDER: TRT-LLM multinode pods mount this Secret")
    command = comments[-1]
    assert command.startswith("ssh-keygen -t ed25519")
    assert yaml.safe_load(secret_doc)["kind"] == "Secret"  # the comments keep it valid YAML
    if shutil.which("ssh-keygen") is None or shutil.which("kubectl") is None:
        pytest.skip("ssh-keygen or kubectl is not installed: the command is not run")
    made = subprocess.run(
        ["sh", "-c", command + " --dry-run=client -o yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert made.returncode == 0, made.stderr
    secret = yaml.safe_load(made.stdout[made.stdout.index("apiVersion") :])
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == (
        "mpi-run-ssh-secret",
        "ml",
    )
    assert set(secret["data"]) == {"private.key", "private.key.pub"}  # what the pods copy
