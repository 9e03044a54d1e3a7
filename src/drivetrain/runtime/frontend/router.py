"""Choosing an instance for a request: round-robin, random, least-loaded.

``kv`` and ``kv-approx`` choose by the prompt (``kv_router.py``); what they do not see
(embeddings) goes least-loaded."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Protocol

from drivetrain.runtime.frontend.registry import Target

ROUTER_MODES = ("round-robin", "random", "least-loaded", "kv", "kv-approx")


class Router(Protocol):
    def pick(self, model: str, targets: Sequence[Target]) -> Target:
        """``targets`` is never empty."""


class RoundRobin:
    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def pick(self, model: str, targets: Sequence[Target]) -> Target:
        counter = self._counters.get(model)
        if counter is None:
            counter = self._counters[model] = itertools.count()
        return targets[next(counter) % len(targets)]


class RandomRouter:
    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def pick(self, model: str, targets: Sequence[Target]) -> Target:
        return self._random.choice(targets)


class LeastLoaded:
    """Fewest requests in flight on the instance's connection; ties broken at random so that
    idle instances share the load instead of the first one taking every request."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def pick(self, model: str, targets: Sequence[Target]) -> Target:
        low = min(t.in_flight for t in targets)
        best = [t for t in targets if t.in_flight == low]
        return best[0] if len(best) == 1 else self._random.choice(best)


def make_router(mode: str) -> Router:
    if mode == "round-robin":
        return RoundRobin()
    if mode == "random":
        return RandomRouter()
    if mode in ("least-loaded", "kv", "kv-approx"):
        return LeastLoaded()
    raise ValueError(f"--router: expected one of {', '.join(ROUTER_MODES)}, got {mode!r}")
