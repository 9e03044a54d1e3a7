"""One Kubernetes node on this machine: the workload controllers and the kubelet, played.

``LocalNode`` takes the manifests a DGD becomes (``dynamo_children`` today, ``drivetrain render``
later), applies them to the emulator as the operator would, and then, for each pod a workload
would create (``drivetrain.verify.controllers.enumerate_pods``: Deployment, LWS, Grove):

* **ReplicaSet controller / admission**: creates the Pod through the API, refusing it (as the
  ServiceAccount admission plugin does) when its ``serviceAccountName`` does not exist;
* **kubelet**: starts the container as a process with the kubelet's env
  (``drivetrain.verify.expansion.container_env``: downward-API ``POD_NAME``/``POD_NAMESPACE``/
  ``POD_UID`` resolved from the created Pod, ``$(VAR)`` expanded) and a kubeconfig holding a token
  of the pod's ServiceAccount (where a real kubelet projects the token and the in-cluster
  config); writes ``status`` (``Running``, ``podIP`` 127.0.0.1, the container's status); runs
  the readiness probe (``httpGet``) and writes the ``Ready`` condition and the container's
  readiness when they change; marks the pod ``Failed`` when its process exits (no restarts: a
  crash loop would hide the first failure).  Only the ``main`` container runs.

What runs is the node's, not the image's: ``programs`` maps each
``nvidia.com/dynamo-component-type`` to an argv (Dynamo's frontend and mocker from its venv).
All pods share 127.0.0.1, so every declared ``containerPort`` is remapped to a free local port,
and env values naming that port follow it (``DYN_SYSTEM_PORT=9090`` → the remapped port).
The probe runs every 0.1 s instead of ``periodSeconds``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from lightkube import Client, KubeConfig, codecs
from lightkube.resources.core_v1 import Pod, ServiceAccount
from lightkube.types import PatchType

from drivetrain.verify.controllers import Pod as SimulatedPod
from drivetrain.verify.controllers import enumerate_pods
from drivetrain.verify.expansion import container_env
from tests.dynamo_runtime.children import COMPONENT_TYPE_LABEL
from tests.kube.emulator import ClusterEmulator, RunningCluster
from tests.waiting import eventually

POD_IP = "127.0.0.1"
START_TIME = "2026-01-01T00:00:00Z"
NODE_NAME = "local-node"
# The parent's own Dynamo/pod settings must not leak into a pod: it gets only what its spec says.
_PRIVATE_ENV = ("DYN_", "POD_", "KUBERNETES_", "KUBECONFIG", "ETCD_", "NATS_")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TIMESTAMP = re.compile(r"^\S*\d{2}:\d{2}:\d{2}\S*\s+")


class PodRejected(Exception):
    """The API server (its admission) refused the pod."""


def free_port() -> int:
    """A free loopback port below 32768: Dynamo 1.6.1 reads ``DYN_SYSTEM_PORT`` as an i16, and
    the kernel's own choices (``bind(0)``) come from the ephemeral range above it."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768")


@dataclasses.dataclass
class RunningPod:
    name: str
    container: str  # the one container the node runs ("main")
    image: str
    component_type: str
    service_account: str
    ports: dict[str, int]  # container port name -> local port
    probe: dict[str, Any] | None
    process: subprocess.Popen[bytes]
    log: Path
    ready: bool = False
    exit_code: int | None = None

    def local_port(self, name: str) -> int:
        return self.ports[name]

    def log_tail(self, lines: int = 25) -> str:
        """The last ``lines`` distinct lines of the log, colours and repeats left out: a
        failure's report must show every pod, and a readiness probe every 0.1 s would fill it
        with one line."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        seen: set[str] = set()
        kept: list[str] = []
        for line in reversed(_ANSI.sub("", text).splitlines()):
            message = _TIMESTAMP.sub("", line)
            if message not in seen:
                seen.add(message)
                kept.append(line)
            if len(kept) == lines:
                break
        return "\n".join(reversed(kept))


class LocalNode:
    def __init__(
        self,
        running: RunningCluster,
        namespace: str,
        workdir: Path,
        programs: Mapping[str, Sequence[str]],
    ) -> None:
        self.running = running
        emulator = running.emulator
        assert isinstance(emulator, ClusterEmulator)
        self.emulator = emulator
        self.namespace = namespace
        self.workdir = workdir
        self.programs = programs
        self.pods: dict[str, RunningPod] = {}
        admin = workdir / "admin.kubeconfig"
        admin.write_text(yaml.safe_dump(running.kubeconfig()))
        self.client = Client(KubeConfig.from_file(admin), namespace=namespace, field_manager="node")
        self._stop = threading.Event()
        self._kubelet = threading.Thread(target=self._sync_loop, daemon=True, name="kubelet")
        # The ServiceAccount controller gives every namespace its "default" account.
        self.client.create(ServiceAccount.from_dict({"metadata": {"name": "default"}}))

    # ------------------------------------------------------------------ the operator's part

    def apply(self, manifests: Sequence[Mapping[str, Any]]) -> None:
        """Create every object (what the operator, or ``kubectl apply``, does)."""
        for obj in manifests:
            self.client.create(codecs.from_dict(dict(obj)))

    # ------------------------------------------------------------------ controllers + kubelet

    def run(self, manifests: Sequence[Mapping[str, Any]]) -> None:
        """Create and start every pod the workloads in ``manifests`` stand for."""
        for sim in enumerate_pods(manifests):
            self._start(sim)
        if not self._kubelet.is_alive():
            self._kubelet.start()

    def _start(self, sim: SimulatedPod) -> None:
        name, labels = sim.facts.name, dict(sim.facts.labels)
        if sim.facts.namespace != self.namespace:
            raise ValueError(f"pod {name} is for namespace {sim.facts.namespace!r}")
        account = sim.spec.get("serviceAccountName") or "default"
        try:
            token = self.emulator.service_account_token(self.namespace, account, pod=name)
        except LookupError as exc:
            raise PodRejected(
                f'pods "{name}" is forbidden: error looking up service account '
                f"{self.namespace}/{account}: {exc}"
            ) from None
        component_type = labels.get(COMPONENT_TYPE_LABEL, "")
        if component_type not in self.programs:
            raise KeyError(f"no program for component type {component_type!r} (pod {name})")
        spec = {**sim.spec, "nodeName": NODE_NAME}
        pod = self.client.create(
            Pod.from_dict({"metadata": {"name": name, "labels": labels}, "spec": spec})
        )
        assert pod.metadata is not None and pod.metadata.uid is not None
        facts = dataclasses.replace(
            sim.facts,
            uid=pod.metadata.uid,
            ip=POD_IP,
            node_name=NODE_NAME,
            service_account=account,
        )
        # Dynamo's runtime runs in "main" (not always the first container: user containers
        # come before it); the node runs that one container.
        container = next(
            (c for c in spec["containers"] if c.get("name") == "main"), spec["containers"][0]
        )
        ports = {
            str(p.get("name") or p["containerPort"]): free_port()
            for p in container.get("ports", [])
        }
        by_number = {
            str(p["containerPort"]): ports[str(p.get("name") or p["containerPort"])]
            for p in container.get("ports", [])
        }
        env = container_env(container, sim.controller_env, facts).values
        env = {k: str(by_number.get(v, v)) for k, v in env.items()}
        kubeconfig = self.workdir / f"{name}.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(self.running.kubeconfig(token, self.namespace)))
        base = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV)}
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:  # the child keeps its own descriptor
            process = subprocess.Popen(
                list(self.programs[component_type]),
                env={**base, **env, "KUBECONFIG": str(kubeconfig)},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.workdir,
            )
        self.pods[name] = RunningPod(
            name=name,
            container=str(container.get("name", "main")),
            image=str(container.get("image", "")),
            component_type=component_type,
            service_account=account,
            ports=ports,
            probe=container.get("readinessProbe"),
            process=process,
            log=log,
        )
        self._write_status(self.pods[name])

    def _write_status(self, pod: RunningPod) -> None:
        failed = pod.exit_code is not None
        state = (
            {
                "terminated": {
                    "exitCode": pod.exit_code,
                    "reason": "Completed" if pod.exit_code == 0 else "Error",
                }
            }
            if failed
            else {"running": {"startedAt": START_TIME}}
        )
        status = {
            "phase": "Failed" if failed else "Running",
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "hostIP": POD_IP,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": str(pod.ready)},
                {"type": "Ready", "status": str(pod.ready)},
            ],
            # Container-mode discovery reads readiness per container from here.
            "containerStatuses": [
                {
                    "name": pod.container,
                    "image": pod.image,
                    "imageID": "",
                    "ready": pod.ready,
                    "started": not failed,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
        self.client.patch(Pod.Status, pod.name, {"status": status}, patch_type=PatchType.MERGE)

    def _probe(self, pod: RunningPod) -> bool:
        get = (pod.probe or {}).get("httpGet")
        if not get:
            return pod.exit_code is None  # no probe: ready while running
        port = get["port"]
        local = pod.ports.get(str(port), port)
        url = f"http://{POD_IP}:{local}{get.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return 200 <= response.status < 400
        except urllib.error.HTTPError as exc:
            return 200 <= exc.code < 400
        except OSError:
            return False

    def _sync_loop(self) -> None:
        while not self._stop.wait(0.1):
            for pod in list(self.pods.values()):
                if pod.exit_code is not None:
                    continue
                code = pod.process.poll()
                ready = code is None and self._probe(pod)
                if code is not None or ready != pod.ready:
                    pod.exit_code, pod.ready = code, ready
                    with contextlib.suppress(Exception):  # the cluster may be stopping
                        self._write_status(pod)

    # ------------------------------------------------------------------ shutdown

    def stop(self) -> None:
        self._stop.set()
        if self._kubelet.is_alive():
            self._kubelet.join(5)
        for pod in self.pods.values():
            _terminate(pod.process)


def _terminate(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until(check: Any, timeout: float, what: str, node: LocalNode) -> Any:
    """``eventually``, failing with the pods' API requests (which calls a pod made, or never
    made, tells a pod that is stuck from one the API server refused) and their log tails."""

    def logs() -> str:
        requests = [
            f"{e.pod} {e.verb} {e.resource} {e.name or ''} -> {e.code}"
            for e in node.emulator.audit
            if e.pod is not None
        ]
        return "\n".join(
            [
                f"--- the pods' API requests (last 20 of {len(requests)})",
                *requests[-20:],
                *(f"--- {p.name} (exit {p.exit_code})\n{p.log_tail()}" for p in node.pods.values()),
            ]
        )

    return eventually(check, timeout, what=what, details=logs, interval=0.1)
