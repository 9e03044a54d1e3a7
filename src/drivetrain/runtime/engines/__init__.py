"""Engines behind one protocol (base.py); ``make_engine`` picks one by name.

Adding an engine (say an in-process vLLM) is one new module implementing ``base.Engine`` plus
one line in ``ENGINES``.  ``transformers`` (the ``hf`` package) needs the optional extra
``drivetrain[transformers]``; the others need nothing beyond drivetrain's own dependencies.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from drivetrain.runtime.engines.base import Engine, ModelType

ENGINES = ("mocker", "echo", "http", "transformers")


def make_engine(
    name: str,
    *,
    model_name: str | None,
    model_path: str | None = None,
    speedup_ratio: float = 1.0,
    upstream: str | None = None,
    upstream_model: str | None = None,
    model_types: tuple[ModelType, ...] | None = None,
    device: str = "auto",
    dtype: str = "auto",
    max_batch: int = 16,
    max_queue: int = 64,
    threads: int | None = None,
    health_interval: float = 1.0,
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
        return HttpEngine(
            upstream, upstream_model or model_name, health_interval=health_interval, **kwargs
        )
    if name == "transformers":
        if not model_path:
            raise ValueError("--model-path: the transformers engine needs a local model folder")
        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(
                f"--engine transformers: {' and '.join(missing)} not installed "
                "(pip install 'drivetrain[transformers]'; on a CPU install torch's CPU wheel first)"
            )
        from drivetrain.runtime.engines.hf.engine import TransformersEngine

        return TransformersEngine(
            model_path,
            device=device,
            dtype=dtype,
            max_batch=max_batch,
            max_queue=max_queue,
            threads=threads,
            **kwargs,
        )
    raise ValueError(f"--engine: expected one of {', '.join(ENGINES)}, got {name!r}")
