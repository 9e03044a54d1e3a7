"""Engines behind one protocol (base.py); ``make_engine`` picks one by name.

Adding an engine (say an in-process vLLM) is one new module implementing ``base.Engine`` plus
one line in ``ENGINES``.
"""

from __future__ import annotations

from typing import Any

from drivetrain.runtime.engines.base import Engine, ModelType

ENGINES = ("mocker", "echo", "http")


def make_engine(
    name: str,
    *,
    model_name: str,
    model_path: str | None = None,
    speedup_ratio: float = 1.0,
    upstream: str | None = None,
    upstream_model: str | None = None,
    model_types: tuple[ModelType, ...] | None = None,
) -> Engine:
    """Build the named engine; ValueError with a one-line message on bad options."""
    kwargs: dict[str, Any] = {}
    if model_types:
        kwargs["model_types"] = model_types
    if name == "mocker":
        from drivetrain.runtime.engines.mocker import MockerEngine

        return MockerEngine(model_path=model_path, speedup_ratio=speedup_ratio, **kwargs)
    if name == "echo":
        from drivetrain.runtime.engines.echo import EchoEngine

        return EchoEngine(**kwargs)
    if name == "http":
        from drivetrain.runtime.engines.http import HttpEngine

        if not upstream:
            raise ValueError(
                "--upstream: the http engine needs the URL of an OpenAI-compatible server"
            )
        return HttpEngine(upstream, upstream_model or model_name, **kwargs)
    raise ValueError(f"--engine: expected one of {', '.join(ENGINES)}, got {name!r}")
