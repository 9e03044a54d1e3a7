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
    max_num_seqs: int | None = None,
    num_blocks: int | None = None,
    block_size: int | None = None,
    context_length: int | None = None,
    weight_load_s: float = 0.0,
    upstream_api: str = "vllm",
    prefix_caching: bool = True,
    disaggregation_mode: str = "agg",
    kv_transfer_us_per_token: float | None = None,
) -> Engine:
    """Build the named engine; ValueError with a one-line message on bad options.

    ``context_length`` overrides what the engine reads from the model (or the upstream)."""
    kwargs: dict[str, Any] = {}
    if model_types:
        kwargs["model_types"] = model_types
    if context_length is not None and context_length < 1:
        raise ValueError(f"--context-length: expected at least 1, got {context_length}")
    if name == "mocker":
        from drivetrain.runtime.engines import mocker

        return mocker.MockerEngine(
            model_path=model_path,
            speedup_ratio=speedup_ratio,
            max_num_seqs=max_num_seqs or mocker.DEFAULT_MAX_NUM_SEQS,
            num_blocks=num_blocks or mocker.DEFAULT_NUM_BLOCKS,
            block_size=block_size or mocker.DEFAULT_BLOCK_SIZE,
            context_length=context_length,
            weight_load_s=weight_load_s,
            prefix_caching=prefix_caching,
            disaggregation_mode=disaggregation_mode,
            kv_transfer_us_per_token=mocker.DEFAULT_KV_TRANSFER_US_PER_TOKEN
            if kv_transfer_us_per_token is None
            else kv_transfer_us_per_token,
            **kwargs,
        )
    if disaggregation_mode != "agg":
        raise ValueError(
            f"--disaggregation-mode {disaggregation_mode}: only the mocker engine serves "
            "disaggregated prefill and decode"
        )
    if name == "echo":
        from drivetrain.runtime.engines.echo import EchoEngine

        return EchoEngine(weight_load_s=weight_load_s, **kwargs)
    if name == "http":
        from drivetrain.runtime.engines.http import HttpEngine

        if not upstream:
            raise ValueError(
                "--upstream: the http engine needs the URL of an OpenAI-compatible server"
            )
        return HttpEngine(
            upstream,
            upstream_model or model_name,
            health_interval=health_interval,
            context_length=context_length,
            max_num_seqs=max_num_seqs,
            upstream_api=upstream_api,
            **kwargs,
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
            context_length=context_length,
            **kwargs,
        )
    raise ValueError(f"--engine: expected one of {', '.join(ENGINES)}, got {name!r}")
