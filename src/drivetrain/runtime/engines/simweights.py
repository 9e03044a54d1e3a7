"""Simulated weight updates for the mocker and echo engines: the version is recorded, the load
takes ``load_s`` seconds, and a load can be made to fail (tests, benchmarks, docs/rl.md).

Nothing is read: a ``path`` is where a real engine would read the weights (the trainer's
checkpoint may be on a volume this worker does not mount), and an NCCL source is answered 501,
as by every engine until a GPU test exists.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

from drivetrain.runtime.engines.base import EngineError, WeightSource

#: ``DRIVETRAIN_FAIL_WEIGHT_VERSIONS=v3,v7``: fail the load of these versions (fault injection)
FAIL_VERSIONS_ENV = "DRIVETRAIN_FAIL_WEIGHT_VERSIONS"


def nccl_not_implemented() -> EngineError:
    return EngineError(
        501,
        "source.nccl: weight transfer over NCCL is specified (docs/rl.md) but not implemented "
        "by this engine; use source.path",
        "not_implemented",
        "source.nccl",
    )


class SimulatedWeights:
    def __init__(self, load_s: float = 0.0, fail_versions: Iterable[str] | None = None) -> None:
        if load_s < 0:
            raise ValueError("--weight-load-ms: expected a number >= 0")
        self.load_s = load_s
        env = os.environ.get(FAIL_VERSIONS_ENV, "")
        chosen = fail_versions if fail_versions is not None else env.split(",")
        self.fail_versions = {v.strip() for v in chosen if v.strip()}
        self.loads = 0

    async def load_weights(self, version: str, source: WeightSource) -> None:
        if source.nccl is not None:
            raise nccl_not_implemented()
        if self.load_s:
            await asyncio.sleep(self.load_s)
        if version in self.fail_versions:
            raise EngineError(500, f"simulated load failure of version {version!r}", "load_failed")
        self.loads += 1

    async def restore_weights(self) -> bool:
        return True

    def keep_weights(self) -> None:
        return None
