"""Thin adapter from Dynamo's operator test vectors to drivetrain's engine API.

The vectors (``../shared/vectors/dynamo-operator-vectors.json``) record Go calls such as
``SGLangBackend.UpdateContainer(container, nodes, role, component, service, deployer)``.
This module turns one into drivetrain's ``EngineContext`` and container dict, and offers
the two comparisons the tests need:

* ``as_script``: Dynamo writes ``$(VAR)`` into scripts (the kubelet expands it before the
  shell runs); drivetrain writes ``${VAR}`` (the shell reads the env).  The expected
  script is rewritten the way Dynamo's own ``k8sToShellVarSyntax`` does.
* ``sh_words``: what a real ``sh`` makes of a sequence of shell words, for the cases where
  drivetrain spells a script differently on purpose (quoting, arithmetic) and only the
  resulting argv can be compared.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from typing import Any

from drivetrain.render.deployers import (
    FixedDeployer,
    GroveDeployer,
    LWSDeployer,
    MultinodeDeployer,
)
from drivetrain.render.engines import EngineContext, executor_for, parse_gpu_count
from tests.paths import SHARED, shared

VECTORS = ("vectors", "dynamo-operator-vectors.json")
VLLM_DEFAULT_CACHE = "/root/.cache/vllm"


@functools.cache
def _load() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(shared(*VECTORS).read_text()))


def vectors(*functions: str) -> list[dict[str, Any]]:
    """The vectors of the given Go functions (skips when ../shared is absent)."""
    return [v for v in _load() if v["function"] in functions]


def vector(vector_id: str) -> dict[str, Any]:
    (found,) = [v for v in _load() if v["id"] == vector_id]
    return found


def ids(*functions: str) -> list[str]:
    """Vector ids for pytest parametrisation (empty when ../shared is absent)."""
    path = SHARED.joinpath(*VECTORS)
    if not path.exists():
        return ["shared-vectors-missing"]
    return [v["id"] for v in json.loads(path.read_text()) if v["function"] in functions]


def deployer_of(spec: dict[str, Any] | None) -> MultinodeDeployer:
    spec = spec or {"kind": "grove"}
    if spec["kind"] == "lws":
        return LWSDeployer()
    if spec["kind"] == "grove":
        return GroveDeployer()
    # Dynamo's test mocks: literal answers, a rank that may need a shell.
    return FixedDeployer(
        leader=spec["leader_hostname"],
        rank=spec["node_rank"],
        rank_needs_shell=spec["node_rank_needs_shell"],
        needs_dns_wait=spec["needs_dns_wait"],
        worker_format=spec["worker_hostname_format"],
    )


def component(v: dict[str, Any]) -> dict[str, Any]:
    return v.get("input", {}).get("component") or {}


def compilation_cache_mount(comp: dict[str, Any]) -> str | None:
    for mount in comp.get("volumeMounts") or []:
        if mount.get("useAsCompilationCache"):
            return mount.get("mountPoint") or VLLM_DEFAULT_CACHE
    return None


def context_of(v: dict[str, Any], **overrides: Any) -> EngineContext:
    """The EngineContext the vector's Go call corresponds to."""
    comp = component(v)
    resources = comp.get("resources") or {}
    fields: dict[str, Any] = {
        "deployer": deployer_of(v.get("deployer")),
        "role": v.get("role", "main"),
        "node_count": v.get("node_count", 1),
        "service_name": v.get("service_name", "test-service"),
        "graph_name": v.get("parent_dgd_name", "test-dgd"),
        "executor": executor_for(comp.get("annotations")),
        "gpus_limit": parse_gpu_count((resources.get("limits") or {}).get("gpu")),
        "gpus_request": parse_gpu_count((resources.get("requests") or {}).get("gpu")),
        "mpi_secret": v.get("mpi_ssh_secret_name", "mpi-run-ssh-secret"),
        "compilation_cache_mount": compilation_cache_mount(comp),
    }
    fields.update(overrides)
    return EngineContext(**fields)


def container_of(v: dict[str, Any]) -> dict[str, Any]:
    """The vector's input container as a Kubernetes dict (unset fields left out)."""
    inp = v["input"]
    container: dict[str, Any] = {"name": "main"}
    for key in ("command", "args", "env", "livenessProbe", "readinessProbe", "startupProbe"):
        if inp.get(key) is not None:
            container[key] = json.loads(json.dumps(inp[key]))
    return container


_KUBELET_REF = re.compile(r"\$\((\w+)\)")


def as_script(text: str) -> str:
    """Dynamo's script text with ``$(VAR)`` written ``${VAR}`` (its k8sToShellVarSyntax)."""
    return _KUBELET_REF.sub(r"${\1}", text)


def sh_words(words: str, env: dict[str, str] | None = None) -> list[str]:
    """The argv a real ``sh`` builds from ``words`` (quotes, expansions, arithmetic)."""
    result = subprocess.run(
        ["sh", "-c", f"printf '%s\\0' {words}"],
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split("\0")[:-1]
