"""The event loop an object lives on, looked up once instead of on every call.

On CPython 3.11 every ``asyncio.get_running_loop()`` makes a ``getpid()`` system call (its check
against a loop inherited across ``fork``).  On the frontend's per-request and per-frame paths
that came to about 14 calls per streamed request and ~6 % of its CPU time under streaming load
(docs/performance.md), so objects that live on one loop take it once, through ``OnOneLoop``.
"""

from __future__ import annotations

import asyncio


class OnOneLoop:
    """A mixin for objects used on one event loop only (the frontend's, a worker's)."""

    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop as of the first use (which must be on that loop)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop
