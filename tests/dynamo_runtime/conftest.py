"""Fixtures of the Dynamo-runtime proof: Dynamo 1.6.1's interpreter, the cluster, the node.

Dynamo is installed once per machine (``benchmarks/frontend/setup_dynamo.sh``, run by
``scripts/test-deps.sh``) into ``~/.cache/drivetrain/dynamo-1.6.1``; a test run installs nothing
and skips, saying why, where it is missing or does not start.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lightkube import Client, KubeConfig, codecs

from tests.dynamo_runtime.node import LocalNode
from tests.kube.emulator import ClusterEmulator, RunningCluster
from tests.paths import REPO, shared

NS = "ml"
DYNAMO_VENV = Path(
    os.environ.get("DYNAMO_VENV")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drivetrain/dynamo-1.6.1"
)
MODEL_DIR = REPO / "examples" / "models" / "tiny"
MODEL = "tiny"


@pytest.fixture(scope="session")
def dynamo_python() -> Path:
    """Dynamo 1.6.1's interpreter, or a skip that says why it cannot be used."""
    python = DYNAMO_VENV / "bin" / "python"
    if not (DYNAMO_VENV / ".dynamo-1.6.1").exists() or not python.exists():
        pytest.skip(
            f"Dynamo 1.6.1 is not installed at {DYNAMO_VENV}: run "
            "benchmarks/frontend/setup_dynamo.sh once (scripts/test-deps.sh does)"
        )
    probe = subprocess.run(
        [str(python), "-c", "import dynamo._core, dynamo.frontend, dynamo.mocker"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        pytest.skip(f"Dynamo 1.6.1 at {DYNAMO_VENV} does not import: {probe.stderr[-500:]}")
    return python


@pytest.fixture
def apiserver() -> Iterator[RunningCluster]:
    """The cluster emulator (RBAC enforced, EndpointSlice controller on) with Dynamo's CRD."""
    with RunningCluster(ClusterEmulator(history_limit=2)) as running:
        client = Client(KubeConfig.from_dict(running.kubeconfig()), field_manager="test")
        crd = shared("crds", "dynamo", "nvidia.com_dynamoworkermetadatas.yaml")
        for doc in yaml.safe_load_all(crd.read_text()):
            if doc:
                client.create(codecs.from_dict(doc))
        yield running


@pytest.fixture
def node(tmp_path: Path, apiserver: RunningCluster, dynamo_python: Path) -> Iterator[LocalNode]:
    """A node that runs Dynamo's frontend and mocker for frontend and worker pods."""
    python = str(dynamo_python)
    programs = {
        "frontend": [python, "-m", "dynamo.frontend"],
        "worker": [
            *(python, "-m", "dynamo.mocker"),
            *("--model-path", str(MODEL_DIR), "--model-name", MODEL),
            *("--speedup-ratio", "1000000"),
        ],
    }
    node = LocalNode(apiserver, NS, tmp_path, programs)
    yield node
    node.stop()
