"""The sampling fields of a chat or completions body, checked, with the model's defaults.

Fields read: ``max_completion_tokens``/``max_tokens``, ``temperature``, ``top_p``, ``seed`` and
``stop``.  Other OpenAI fields (penalties, ``logprobs``, ``logit_bias``...) are ignored.  A bad
value is a 400 naming the field, as the frontend's own validation does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivetrain.runtime.engines import text
from drivetrain.runtime.engines.base import EngineError

MAX_STOP_STRINGS = 16


@dataclass(frozen=True)
class Defaults:
    """What a request gets for the fields it leaves out (the model's generation_config.json)."""

    temperature: float = 1.0
    top_p: float = 1.0

    @classmethod
    def from_generation_config(cls, config: dict[str, Any]) -> Defaults:
        temperature = config.get("temperature")
        top_p = config.get("top_p")
        return cls(
            temperature=float(temperature) if isinstance(temperature, int | float) else 1.0,
            top_p=float(top_p) if isinstance(top_p, int | float) else 1.0,
        )


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int | None  # None: until the context is full or the model ends
    temperature: float  # 0: greedy
    top_p: float
    seed: int | None
    stop: tuple[str, ...]


def sampling_params(body: dict[str, Any], defaults: Defaults) -> SamplingParams:
    return SamplingParams(
        max_tokens=_max_tokens(body),
        temperature=_number(body, "temperature", defaults.temperature, 0.0, 2.0),
        top_p=_number(body, "top_p", defaults.top_p, 0.0, 1.0),
        seed=_seed(body.get("seed")),
        stop=_stop(body.get("stop")),
    )


def _max_tokens(body: dict[str, Any]) -> int | None:
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EngineError(400, f"{field}: expected an integer >= 1, got {value!r}")
    value = text.max_tokens(body, 0)
    return value or None


def _number(body: dict[str, Any], field: str, default: float, low: float, high: float) -> float:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise EngineError(400, f"{field}: expected a number from {low} to {high}, got {value!r}")
    return float(value)


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EngineError(400, f"seed: expected an integer, got {value!r}")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise EngineError(
            400, f"stop: expected a non-empty string or a list of them, got {value!r}"
        )
    if len(stops) > MAX_STOP_STRINGS:
        raise EngineError(400, f"stop: at most {MAX_STOP_STRINGS} strings, got {len(stops)}")
    return tuple(stops)
