"""A drivetrain worker beside an engine's own OpenAI server: the native-sidecar pairing (pure).

Under the drivetrain profile, a worker whose main container runs an engine's OpenAI-compatible
server (detected: ``vllm serve``, ``python -m vllm.entrypoints.openai.api_server``, ``python -m
sglang.launch_server``, ``trtllm-serve``; or declared with ``engineServer``) renders as:

* the engine as ``main``: the user's image and command, listening on a fixed local port (the
  engine's ``--port``; ``--host 0.0.0.0`` where the engine binds loopback by default, so the
  kubelet's probes reach it), probed on its ``/health`` as the engines document, with the
  user's env only;
* ``drivetrain worker --engine http --upstream http://127.0.0.1:<port>`` as a native sidecar (an
  init container with ``restartPolicy: Always``, Kubernetes 1.29+) in the drivetrain image, with
  the env the worker reads (namespace, discovery, request plane).  It registers only while the
  engine answers and names the model after the engine's ``/v1/models`` (docs/runtime.md).

In a multinode group only the leader serves HTTP, so only the leader gets the sidecar.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.models import GraphDeployment
from drivetrain.cmdline import int_flag
from drivetrain.render.engines.detect import engine_server
from drivetrain.render.engines.inject import arg_tokens, flags, inject_flags
from drivetrain.render.profiles import DRIVETRAIN, profile_of

#: The port an engine server listens on when the graph does not say (vLLM's and trtllm-serve's
#: own default).
ENGINE_PORT = 8000
ENGINE_PORT_NAME = "engine"
#: The sidecar's container name; ``local.plan`` and ``verify`` recognise it by this name.
SIDECAR_NAME = "drivetrain-worker"
#: Engines whose server binds loopback unless told otherwise (SGLang 127.0.0.1, trtllm-serve
#: localhost): the kubelet probes the pod IP, so they are given ``--host 0.0.0.0``.
_LOOPBACK_BY_DEFAULT = {"sglang", "trtllm"}


@dataclass(frozen=True)
class EngineServer:
    """The engine server in a paired pod's main container."""

    engine: str | None  # vllm | sglang | trtllm; None for a declared server of another kind
    port: int
    health_path: str = "/health"
    #: whether the port (and host) must be passed to the engine (the user did not)
    inject_port: bool = True

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def engine_server_of(
    graph: GraphDeployment, service_name: str, command: list[str], args: list[str]
) -> EngineServer | None:
    """The engine server a drivetrain-profile worker runs as its main container, or None."""
    svc = graph.spec.services[service_name]
    if profile_of(graph) is not DRIVETRAIN or not svc.is_worker:
        return None
    declared = svc.engineServer
    engine = engine_server(command, args)
    if engine is None and declared is None:
        return None
    tokens = arg_tokens({"command": command, "args": args})
    given = int_flag(tokens, "--port") if engine else None
    base = f"spec.services.{service_name}"
    if isinstance(given, str):
        raise InvalidGraph(
            [
                FieldError(
                    f"{base}.extraPodSpec.mainContainer",
                    f"{engine}'s --port must be a number (got {given!r}): the drivetrain worker "
                    "beside it connects to that port",
                )
            ]
        )
    wanted = declared.port if declared and declared.port else None
    if given is not None and wanted is not None and given != wanted:
        raise InvalidGraph(
            [
                FieldError(
                    f"{base}.engineServer.port",
                    f"is {wanted} but the command passes --port {given}; say one port",
                )
            ]
        )
    port = given or wanted or ENGINE_PORT
    health = declared.healthPath if declared else "/health"
    # A declared server of an unknown kind is told nothing: its command is the user's to write.
    return EngineServer(engine, port, health, inject_port=engine is not None and given is None)


def engine_container(server: EngineServer) -> dict[str, Any]:
    """The main container's defaults in a paired pod: the engine's port and its probes.

    Probes as the engines document for Kubernetes: ``/health`` on the server's port; a startup
    probe gives a model up to two hours to load (as Dynamo's workers) before readiness and
    liveness count.
    """

    def probe(failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": server.health_path, "port": ENGINE_PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        }

    return {
        "name": "main",
        "ports": [{"name": ENGINE_PORT_NAME, "containerPort": server.port, "protocol": "TCP"}],
        "livenessProbe": probe(3),
        "readinessProbe": probe(3),
        "startupProbe": probe(720),
    }


def with_port_flags(container: dict[str, Any], server: EngineServer) -> dict[str, Any]:
    """The engine's command with ``--port`` (and ``--host 0.0.0.0`` where needed) added."""
    if not server.inject_port or server.engine is None:
        return copy.deepcopy(container)
    words = ["--port", str(server.port)]
    tokens = arg_tokens(container)
    if server.engine in _LOOPBACK_BY_DEFAULT and int_flag(tokens, "--host") is None:
        words += ["--host", "0.0.0.0"]
    return inject_flags(container, flags(*words), server.engine)


def worker_sidecar(
    server: EngineServer,
    image: str,
    env: list[dict[str, Any]],
    ports: list[dict[str, Any]],
    readiness: dict[str, Any] | None,
) -> dict[str, Any]:
    """The drivetrain worker as a native sidecar (init container, ``restartPolicy: Always``)."""
    container: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": image,
        "restartPolicy": "Always",
        "command": ["drivetrain"],
        "args": ["worker", "--engine", "http", "--upstream", server.upstream],
        "env": env,
    }
    if ports:
        container["ports"] = copy.deepcopy(ports)
    if readiness:
        container["readinessProbe"] = copy.deepcopy(readiness)
    return container


def is_worker_sidecar(container: dict[str, Any]) -> bool:
    """Whether an init container is the drivetrain worker paired with the engine."""
    return container.get("name") == SIDECAR_NAME and container.get("restartPolicy") == "Always"
