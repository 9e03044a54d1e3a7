"""Engine detection and flag injection for vLLM, SGLang and TRT-LLM (pure functions).

``update_container`` and ``update_pod_spec`` dispatch to one module per engine; adding an
engine is one new module and one line in ``_ENGINES``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from drivetrain.render.engines import sglang, trtllm, vllm
from drivetrain.render.engines.base import EngineContext, EngineError
from drivetrain.render.engines.detect import detect_engine, is_shell_form

_ENGINES: dict[str, ModuleType] = {"vllm": vllm, "sglang": sglang, "trtllm": trtllm}


def _module(engine: str) -> ModuleType:
    try:
        return _ENGINES[engine]
    except KeyError:
        raise EngineError(f"unknown engine {engine!r} (expected vllm, sglang or trtllm)") from None


def update_container(engine: str, container: dict[str, Any], ctx: EngineContext) -> dict[str, Any]:
    """The container with the engine's flags, env, mounts and probe changes for ``ctx.role``."""
    return _module(engine).update_container(container, ctx)  # type: ignore[no-any-return]


def update_pod_spec(
    engine: str, pod_spec: dict[str, Any], ctx: EngineContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The pod spec with the engine's pod-level changes, and any objects they need."""
    return _module(engine).update_pod_spec(pod_spec, ctx)  # type: ignore[no-any-return]


__all__ = [
    "EngineContext",
    "EngineError",
    "detect_engine",
    "is_shell_form",
    "update_container",
    "update_pod_spec",
]
