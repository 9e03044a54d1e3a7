"""A thin adapter from Dynamo's operator vectors to drivetrain's own API.

Dynamo's tests call Go functions with Go structs; here each vector becomes an
``EngineContext`` and a container dict, and the expected strings are translated where
drivetrain renders on purpose differently (see docs/rendering.md):

* a script the shell evaluates references env as ``${VAR}``, not the kubelet's ``$(VAR)``;
* arithmetic is one ``$((...))`` expression, not nested ``$(( a * $((b)) ))``;
* argv words inside generated scripts are quoted with single quotes, not double quotes.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from drivetrain.render.deployers import FixedDeployer, GroveDeployer, LWSDeployer, MultinodeDeployer
from drivetrain.render.engines import EngineContext
from tests.paths import shared

_KUBELET_REF = re.compile(r"\$\((\w+)\)")
_NESTED_ARITH = re.compile(r"\$\(\( (\d+) \* \$\(\((.+?)\)\) \)\)")


@cache
def vectors() -> list[dict[str, Any]]:
    return json.loads(shared("vectors", "dynamo-operator-vectors.json").read_text())


def by_function(*names: str) -> list[dict[str, Any]]:
    return [v for v in vectors() if v["function"] in names]


def deployer(spec: dict[str, Any] | None) -> MultinodeDeployer:
    spec = spec or {"kind": "grove"}
    if spec["kind"] == "lws":
        return LWSDeployer()
    if spec["kind"] == "grove":
        return GroveDeployer()
    return FixedDeployer(
        leader=spec["leader_hostname"],
        rank=spec["node_rank"],
        rank_needs_shell=spec["node_rank_needs_shell"],
        needs_dns_wait=spec["needs_dns_wait"],
        worker_format=spec.get("worker_hostname_format") or "worker{i}",
    )


def _gpu(component: dict[str, Any], side: str) -> int:
    value = ((component.get("resources") or {}).get(side) or {}).get("gpu")
    return int(value) if value else 0


def context(vector: dict[str, Any], executor: str = "mp") -> EngineContext:
    component = vector["input"].get("component") or {}
    cache_mount = next(
        (
            vm.get("mountPoint")
            for vm in component.get("volumeMounts") or []
            if vm.get("useAsCompilationCache")
        ),
        None,
    )
    return EngineContext(
        deployer=deployer(vector.get("deployer")),
        role=vector.get("role") or "main",
        # Vectors of the leader/worker setup functions imply a multinode group.
        node_count=vector.get("node_count")
        or (2 if vector.get("role") in ("leader", "worker") else 1),
        service_name=vector.get("service_name") or "test-service",
        graph_name="test-dgd",
        executor=executor,  # type: ignore[arg-type]
        gpus_limit=_gpu(component, "limits"),
        gpus_request=_gpu(component, "requests"),
        compilation_cache_mount=cache_mount,
    )


def container(vector: dict[str, Any]) -> dict[str, Any]:
    inp = vector["input"]
    c: dict[str, Any] = {"name": "main"}
    if inp.get("command"):
        c["command"] = list(inp["command"])
    if inp.get("args"):
        c["args"] = list(inp["args"])
    if inp.get("env"):
        c["env"] = list(inp["env"])
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in inp:
            c[probe] = dict(inp[probe]) or {"periodSeconds": 10}
    return c


def executor_of(vector: dict[str, Any]) -> str:
    """Dynamo's choice for this vector: the annotation, else mp from origin version 1.0.0."""
    annotations = (vector["input"].get("component") or {}).get("annotations") or {}
    explicit = annotations.get("nvidia.com/vllm-distributed-executor-backend", "").lower()
    if explicit in ("mp", "ray"):
        return explicit
    version = annotations.get("nvidia.com/dynamo-operator-origin-version", "")
    return (
        "mp"
        if version and version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 1
        else "ray"
    )


def as_drivetrain_script(text: str) -> str:
    """Dynamo's script text as drivetrain writes it."""
    text = _NESTED_ARITH.sub(lambda m: f"$(({m.group(1)} * ({m.group(2)})))", text)
    return _KUBELET_REF.sub(r"${\1}", text)
