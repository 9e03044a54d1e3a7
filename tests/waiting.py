"""Waiting in a test for something another thread or process does: poll a check until it holds.

A readiness wait, not a timing assertion: the timeout only bounds a hung test (30 s by default,
a bound for a loaded 2-core machine); how fast something happens is measured in benchmarks/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def _attempts(
    check: Callable[[], T], timeout: float, what: str, details: Callable[[], str] | None
) -> Generator[None, None, T]:
    """One ``check`` per step until it holds (its value is the generator's return value); an
    ``AssertionError`` it raises counts as "not yet"; past the timeout, an ``AssertionError``
    naming ``what``, the last value (or assertion) and ``details()``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            message = f"{what}: not within {timeout:g} s; last: {last!r}"
            raise AssertionError(f"{message}\n{details()}" if details else message)
        yield


def eventually(
    check: Callable[[], T],
    timeout: float = 30.0,
    *,
    what: str = "condition",
    details: Callable[[], str] | None = None,
    interval: float = 0.05,
) -> T:
    """Call ``check`` until it returns a truthy value, and return that value.  On timeout an
    ``AssertionError`` names ``what``, the last value and ``details()`` (for example the logs
    of the processes awaited); an ``AssertionError`` from ``check`` counts as "not yet"."""
    attempts = _attempts(check, timeout, what, details)
    while True:
        try:
            next(attempts)
        except StopIteration as held:
            return held.value
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], T],
    timeout: float = 30.0,
    *,
    what: str = "condition",
    details: Callable[[], str] | None = None,
    interval: float = 0.05,
) -> T:
    """``eventually`` in an event loop: the loop runs between the checks."""
    attempts = _attempts(check, timeout, what, details)
    while True:
        try:
            next(attempts)
        except StopIteration as held:
            return held.value
        await asyncio.sleep(interval)
