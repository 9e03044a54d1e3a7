"""Restart policy: exponential backoff with a cap, and a give-up after fast crashes in a row."""

from __future__ import annotations

from drivetrain.local.backoff import RestartPolicy


def test_first_restart_waits_the_initial_delay() -> None:
    assert RestartPolicy(initial_delay=0.5).delay(0) == 0.5
    assert RestartPolicy(initial_delay=0.5).delay(1) == 0.5


def test_delay_doubles_after_each_fast_crash() -> None:
    policy = RestartPolicy(initial_delay=0.5, factor=2, max_delay=100, max_fast_crashes=10)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_delay_is_capped() -> None:
    policy = RestartPolicy(initial_delay=1, factor=10, max_delay=3, max_fast_crashes=10)
    assert policy.delay(5) == 3


def test_gives_up_after_the_allowed_fast_crashes() -> None:
    policy = RestartPolicy(max_fast_crashes=3)
    assert policy.delay(2) is not None
    assert policy.delay(3) is None


def test_a_run_shorter_than_the_window_is_a_fast_crash() -> None:
    policy = RestartPolicy(fast_crash_window=10)
    assert policy.is_fast(9.9)
    assert not policy.is_fast(10.0)
