"""Objects that live on one event loop look it up once (``runtime/eventloop.py``)."""

from __future__ import annotations

import asyncio

import pytest

from drivetrain.runtime.eventloop import OnOneLoop


async def test_the_loop_is_the_running_one_and_is_looked_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = OnOneLoop()
    assert owner.loop is asyncio.get_running_loop()

    def looked_up_again() -> asyncio.AbstractEventLoop:
        raise AssertionError("get_running_loop() called again (a getpid() syscall on 3.11)")

    monkeypatch.setattr(asyncio, "get_running_loop", looked_up_again)
    assert owner.loop is asyncio.get_event_loop()


def test_first_use_outside_a_running_loop_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        _ = OnOneLoop().loop
