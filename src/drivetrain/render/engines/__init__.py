"""Engine detection and flag injection for vLLM, SGLang and TRT-LLM (pure functions).

``update_container`` and ``update_pod_spec`` dispatch to one module per engine; adding an
engine is one new module and one line in ``_ENGINES``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from drivetrain.render.engines import sglang, trtllm, vllm
from drivetrain.render.engines.base import EngineChoiceError, EngineContext, parse_gpu_count
from drivetrain.render.engines.detect import detect_engine, is_shell_form, resolve_engine
from drivetrain.render.engines.vllm import executor_for

_ENGINES: dict[str, ModuleType] = {"vllm": vllm, "sglang": sglang, "trtllm": trtllm}


def _module(engine: str) -> ModuleType:
    try:
        return _ENGINES[engine]
    except KeyError:
        raise EngineChoiceError(
            f"unknown engine {engine!r} (expected vllm, sglang or trtllm)"
        ) from None


def update_container(engine: str, container: dict[str, Any], ctx: EngineContext) -> dict[str, Any]:
    """The container with the engine's flags, env, mounts and probe changes for ``ctx.role``."""
    return _module(engine).update_container(container, ctx)  # type: ignore[no-any-return]


def update_pod_spec(
    engine: str, pod_spec: dict[str, Any], ctx: EngineContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The pod spec with the engine's pod-level changes, and any objects they need.

    The objects (today only vLLM's wait-for-leader ConfigMap) carry no namespace; the caller
    sets it.  The same object may come back for several pods; the caller keeps one.
    """
    return _module(engine).update_pod_spec(pod_spec, ctx)  # type: ignore[no-any-return]


def wait_leader_configmap(graph_name: str, namespace: str) -> dict[str, Any] | None:
    """The ConfigMap holding the script vLLM mp workers run before starting (see vllm.py)."""
    return vllm.wait_leader_configmap(graph_name, namespace)


__all__ = [
    "EngineChoiceError",
    "EngineContext",
    "detect_engine",
    "executor_for",
    "is_shell_form",
    "parse_gpu_count",
    "resolve_engine",
    "update_container",
    "update_pod_spec",
    "wait_leader_configmap",
]
