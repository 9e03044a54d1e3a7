"""Routers over plain targets (pure choice logic, no network)."""

from __future__ import annotations

import pytest

from drivetrain.runtime.frontend.registry import Target
from drivetrain.runtime.frontend.router import LeastLoaded, RandomRouter, RoundRobin, make_router
from drivetrain.runtime.transport.client import RequestPlaneClient


def targets(*loads: int) -> list[Target]:
    made = []
    for i, load in enumerate(loads):
        client = RequestPlaneClient(f"127.0.0.1:{9000 + i}")
        client.streams = dict.fromkeys(range(load))  # type: ignore[arg-type]
        made.append(Target(f"i{i}", client.address, client))
    return made


def test_round_robin_cycles_per_model() -> None:
    router, pool = RoundRobin(), targets(0, 0, 0)
    assert [router.pick("a", pool).instance_id for _ in range(4)] == ["i0", "i1", "i2", "i0"]
    assert router.pick("b", pool).instance_id == "i0"


def test_least_loaded_picks_the_fewest_in_flight() -> None:
    pool = targets(3, 1, 2)
    assert {LeastLoaded(seed=s).pick("a", pool).instance_id for s in range(20)} == {"i1"}


def test_least_loaded_spreads_ties() -> None:
    pool = targets(0, 0, 5)
    assert {LeastLoaded(seed=s).pick("a", pool).instance_id for s in range(30)} == {"i0", "i1"}


def test_random_uses_every_target() -> None:
    router, pool = RandomRouter(seed=1), targets(0, 0, 0)
    assert {router.pick("a", pool).instance_id for _ in range(60)} == {"i0", "i1", "i2"}


def test_unknown_router_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="--router"):
        make_router("power-of-two")
