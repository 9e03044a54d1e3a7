"""The package outside the tree: each command's smoke path, run from the installed wheel.

One venv for the module (see ``installed.py``); every command runs in a folder outside the
repository with the venv's ``drivetrain`` on PATH and no PYTHONPATH, so nothing can come from
the sources: package data (the PodSpec schema, ``distenv.sh``) must be in the wheel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.package.installed import Installed, install
from tests.paths import REPO
from tests.ports import free_port

pytestmark = pytest.mark.slow

TRAINER = """\
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: rl}
spec:
  services:
    trainer:
      componentType: trainer
      multinode: {nodeCount: 2}
      extraPodSpec:
        mainContainer:
          image: python:3.11
          command: [python3, train.py]
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working folder with a copy of the example graph, away from the repository."""
    assert REPO not in tmp_path.parents
    shutil_copy = (REPO / "examples" / "agg.yaml").read_text()
    (tmp_path / "agg.yaml").write_text(shutil_copy)
    (tmp_path / "trainer.yaml").write_text(TRAINER)
    return tmp_path


def drivetrain(
    installed: Installed, cwd: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(installed.bin / "drivetrain"), *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=cwd,
        env={**installed.env(), **env},
        timeout=60,
    )


def test_the_package_comes_from_the_venv_and_needs_no_test_extra(
    installed: Installed, outside: Path
) -> None:
    code = (
        "import importlib.util, drivetrain\n"
        "print(drivetrain.__file__)\n"
        "print([m for m in ('httpx', 'jsonschema', 'kubernetes_validate', 'pytest')"
        " if importlib.util.find_spec(m)])"
    )
    result = subprocess.run(
        [str(installed.bin / "python"), "-c", code],
        capture_output=True,
        text=True,
        cwd=outside,
        env=installed.env(),
        check=True,
    )
    where, extras = result.stdout.splitlines()
    assert Path(where).is_relative_to(installed.venv)
    assert extras == "[]", f"test extras reachable at run time: {extras}"


def test_crd(installed: Installed, outside: Path) -> None:
    result = drivetrain(installed, outside, "crd")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (REPO / "deploy" / "crd.yaml").read_text()


def test_render_validate_and_stdin(installed: Installed, outside: Path) -> None:
    result = drivetrain(installed, outside, "render", "-f", "agg.yaml", "-n", "ml")
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    # The pods' RBAC for kubernetes:// discovery, then the workloads and the frontend's Service.
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "Deployment", "Deployment", "Service"]
    piped = drivetrain(installed, outside, "render", "-f", "-", "-n", "ml", stdin=TRAINER)
    assert piped.returncode == 0, piped.stderr
    configmap = next(d for d in yaml.safe_load_all(piped.stdout) if d["kind"] == "ConfigMap")
    assert configmap["data"]["distenv.sh"].startswith("#!/bin/sh")  # package data
    bad = TRAINER.replace("      extraPodSpec:", "      extraPodSpec:\n        priority: high")
    refused = drivetrain(installed, outside, "validate", "-f", "-", stdin=bad)
    assert refused.returncode == 1
    assert (
        "<stdin> (document 1): spec.services.trainer.extraPodSpec.priority: must be an integer"
        in (refused.stderr)
    )


def test_verify(installed: Installed, outside: Path) -> None:
    result = drivetrain(installed, outside, "verify", "-f", "trainer.yaml")
    assert result.returncode == 0, result.stderr
    assert "train.py" in result.stdout


def test_distenv_in_python_and_in_the_shipped_script(installed: Installed, outside: Path) -> None:
    lws = {"LWS_LEADER_ADDRESS": "rl-0.rl.ml", "LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "1"}
    result = drivetrain(installed, outside, "distenv", "--json", **lws)
    assert result.returncode == 0, result.stderr
    derived = json.loads(result.stdout)
    assert (derived["MASTER_ADDR"], derived["NODE_RANK"]) == ("rl-0.rl.ml", "1")
    script = subprocess.run(
        [
            str(installed.bin / "python"),
            "-c",
            "from drivetrain.distenv import script_path; print(script_path())",
        ],
        capture_output=True,
        text=True,
        cwd=outside,
        env=installed.env(),
        check=True,
    ).stdout.strip()
    assert Path(script).is_relative_to(installed.venv)
    shell = subprocess.run(
        ["sh", script, "--print"],
        capture_output=True,
        text=True,
        env={**lws, "PATH": "/usr/bin:/bin"},
    )
    assert shell.returncode == 0, shell.stderr
    assert "export NODE_RANK='1'" in shell.stdout


def _started(installed: Installed, cwd: Path, ready: str, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [str(installed.bin / "drivetrain"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env=installed.env(),
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if ready in line:
            return process
    raise AssertionError(f"{args[0]} exited before {ready!r}: {''.join(seen)[-2000:]}")


@pytest.fixture
def serving(installed: Installed, outside: Path) -> Iterator[str]:
    discovery = f"file://{outside / 'discovery'}"
    port = free_port()
    worker = _started(
        installed,
        outside,
        "worker ready",
        "worker",
        "--engine",
        "echo",
        "--model-name",
        "echo",
        "--discovery",
        discovery,
    )
    frontend = _started(
        installed,
        outside,
        "listening",
        "frontend",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--discovery",
        discovery,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in (frontend, worker):
            process.send_signal(signal.SIGTERM)
        for process in (frontend, worker):
            assert process.wait(timeout=20) == 0


def _get(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


def test_worker_and_frontend_serve_one_request(serving: str) -> None:
    deadline = time.monotonic() + 20
    while not _get(f"{serving}/v1/models")["data"]:
        assert time.monotonic() < deadline, "the frontend never saw the worker"
        time.sleep(0.1)
    body = {"model": "echo", "messages": [{"role": "user", "content": "outside"}]}
    reply = _get(f"{serving}/v1/chat/completions", body)
    assert reply["choices"][0]["message"]["content"] == "outside"  # type: ignore[index]


def test_no_source_tree_on_the_path(installed: Installed) -> None:
    assert "PYTHONPATH" not in installed.env()
    assert str(REPO / "src") not in installed.env()["PATH"]
    assert os.path.exists(installed.bin / "drivetrain")
